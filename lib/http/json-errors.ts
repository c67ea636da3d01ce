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
      onError: (c) => c.json({ error: `request body is larger than ${MAX_BODY_BYTES} bytes` }, 413),
    }),
  )
  app.notFound((c) => c.json({ error: `no such endpoint: ${c.req.method} ${c.req.path}` }, 404))
  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse()
    // The store (a database) is down: the request may be retried, so say so.
    if (error instanceof StoreUnavailable) return c.json({ error: error.message }, 503)
    console.error(error)
    return c.json({ error: 'internal error' }, 500)
  })
}

function notAllowed(c: Context, methods: string[]): Response {
  const error = `method ${c.req.method} is not allowed on ${c.req.path}; use ${methods.join(', ')}`
  return c.json({ error }, 405, { Allow: methods.join(', ') })
}

/** How long a request body may take to arrive: a slow or short one gets a timely 408. */
export const BODY_TIMEOUT_MS = 5000

/** The request body as a JSON object, or a 4xx saying why it is not one. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const text = await bodyText(c)
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
