// What every HTTP face of a node shares: JSON errors for every bad request, a body limit, and a
// JSON body reader that turns malformed input into a 400 instead of an exception.
import type { Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { methodNotAllowed } from 'hono/method-not-allowed'
import { StoreUnavailable } from '../store/store.ts'
import { MAX_BODY_BYTES, jsonProblem } from '../wire/limits.ts'

export { MAX_BODY_BYTES }

export function httpError(
  status: 400 | 404 | 409 | 413 | 422 | 503,
  message: string,
): HTTPException {
  return new HTTPException(status, { res: Response.json({ error: message }, { status }) })
}

/** Installs the error handling on `app`; call before its routes are added. */
export function useJsonErrors(app: Hono): void {
  app.use(methodNotAllowed({ app, onMethodNotAllowed: notAllowed }))
  app.use(
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json({ error: TOO_LARGE }, 413),
    }),
  )
  app.notFound((c) => c.json({ error: `no such endpoint: ${c.req.method} ${c.req.path}` }, 404))
  app.onError((error, c) => {
    const answer = thrownAnswer(error)
    return answer instanceof Response ? answer : c.json({ error: answer.error }, answer.status)
  })
}

/** The 413's message: a body past MAX_BODY_BYTES. */
export const TOO_LARGE = `request body is larger than ${MAX_BODY_BYTES} bytes`

/** What a request that threw is answered: an HTTP error, its own response; a store that is down
 * (a database), a 503, since the request may be retried; anything else (a bug), a 500, logged. */
export function thrownAnswer(error: unknown): Response | { status: 500 | 503; error: string } {
  if (error instanceof HTTPException) return error.getResponse()
  if (error instanceof StoreUnavailable) return { status: 503, error: error.message }
  console.error(error)
  return { status: 500, error: 'internal error' }
}

function notAllowed(c: Context, methods: string[]): Response {
  const error = `method ${c.req.method} is not allowed on ${c.req.path}; use ${methods.join(', ')}`
  return c.json({ error }, 405, { Allow: methods.join(', ') })
}

/** How long a request body may take to arrive: a slow or short one gets a timely 408. */
export const BODY_TIMEOUT_MS = 5000

/** The request body as a JSON object, or a 4xx saying why it is not one. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  return jsonObjectOf(await bodyText(c))
}

/** `text` as a JSON object, or a 4xx saying why it is not one. */
export function jsonObjectOf(text: string): Record<string, unknown> {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw httpError(400, 'request body is not valid JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw httpError(400, 'request body must be a JSON object')
  }
  const problem = jsonProblem(body)
  if (problem !== null) throw httpError(400, `request body refused: ${problem}`)
  return body as Record<string, unknown>
}

/** The body as text, within BODY_TIMEOUT_MS (Hono keeps it, so a second read is free). */
export async function bodyText(c: Context): Promise<string> {
  let timer: Timer | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = `request body not received within ${BODY_TIMEOUT_MS} ms`
      reject(new HTTPException(408, { res: Response.json({ error }, { status: 408 }) }))
    }, BODY_TIMEOUT_MS)
  })
  try {
    return await Promise.race([c.req.text(), late])
  } catch (error) {
    if (error instanceof HTTPException) throw error
    throw httpError(400, 'request body could not be read') // the client went away mid-body
  } finally {
    clearTimeout(timer)
  }
}

/** True when the client asked for JSON rather than the classic plain-text answers. */
export function wantsJson(c: Context): boolean {
  return (c.req.header('accept') ?? '').includes('application/json')
}
