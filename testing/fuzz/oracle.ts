// What a right answer is: a 4xx with a JSON {"error": string}, or a 200 with the body its
// endpoint documents (docs/http-api.md), never a 5xx or anything else, and no stack trace or
// "internal error" anywhere. A problem is returned as one line; null means the answer is right.
import type { FuzzRequest } from './requests.ts'

export type Answer = { status: number; text: string; headers: Headers }

/** What a node knows now, to check an answer against (a committed transaction is committed). */
export type Facts = { txnState?: (txn: string) => string }

type Check = (body: any, request: FuzzRequest, facts: Facts) => string | null
type Route = {
  method: 'GET' | 'POST'
  path: RegExp
  check: Check
  text?: readonly string[]
  /** A body that need not be JSON (Prometheus's text, the dashboard's HTML): checked whole. */
  plain?: (text: string, request: FuzzRequest) => string | null
}

/** Words that only a crash puts in an answer or on the console. */
const LEAK =
  /internal error|\n\s+at |\bat \S+ \(.*:\d+:\d+\)|\.ts:\d+|\b(Type|Range|Reference)Error\b/i

export function leak(text: string): string | null {
  const found = LEAK.exec(text)
  return found === null ? null : `leaks ${JSON.stringify(found[0])} in ${JSON.stringify(text)}`
}

/** The problem with `answer` to `request` on a node whose routes are `routes`, or null. */
export function problemOf(
  routes: readonly Route[],
  request: FuzzRequest,
  answer: Answer,
  facts: Facts = {},
): string | null {
  const { status, text } = answer
  const leaked = leak(text)
  if (leaked !== null) return leaked
  if (status >= 500) return `status ${status}: ${text.slice(0, 200)}`
  if (status >= 400) return refusalProblem(request, answer)
  if (status !== 200) return `status ${status} is neither 200 nor a 4xx`
  const pathname = new URL(`http://localhost${request.path}`).pathname
  const head = request.method.toUpperCase() === 'HEAD'
  const method = head ? 'GET' : request.method.toUpperCase()
  const route = routes.find((r) => r.method === method && r.path.test(pathname))
  if (route === undefined) return `200 from no route: ${text.slice(0, 200)}`
  if (head) return text === '' ? null : 'a HEAD answer with a body'
  if (route.plain !== undefined) return route.plain(text, request)
  if (route.text !== undefined && !wantsJson(request)) {
    return route.text.includes(text) ? null : `plain answer ${JSON.stringify(text)}`
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return `200 whose body is not JSON: ${JSON.stringify(text.slice(0, 200))}`
  }
  const wrong = route.check(body, request, facts)
  return wrong === null ? null : `200 ${wrong}: ${text.slice(0, 300)}`
}

function refusalProblem(request: FuzzRequest, answer: Answer): string | null {
  const { status, text, headers } = answer
  if (status === 405 && !headers.get('allow')) return '405 without an Allow header'
  if (request.method.toUpperCase() === 'HEAD' && text === '') return null
  if (!(headers.get('content-type') ?? '').includes('application/json')) {
    return `${status} not JSON: content-type ${headers.get('content-type')}`
  }
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    return `${status} whose body is not JSON: ${JSON.stringify(text.slice(0, 200))}`
  }
  if (!isObject(body) || typeof body.error !== 'string' || body.error === '') {
    return `${status} without {"error": string}: ${text.slice(0, 200)}`
  }
  return null
}

export function wantsJson(request: FuzzRequest): boolean {
  return (request.headers.accept ?? '').includes('application/json')
}

export function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The request's body as the server reads it: its UTF-8 decoded as fetch's `text()` does (a
 * leading BOM dropped, bad bytes as U+FFFD), then parsed (the last of repeated keys wins). */
export function requestJson(request: FuzzRequest): any {
  const { body } = request
  if (body === undefined) return undefined
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body
  try {
    return JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    return undefined
  }
}

/** The path's last segment decoded, or null when it is not a valid encoding. */
export function lastSegment(request: FuzzRequest): string | null {
  const pathname = new URL(`http://localhost${request.path}`).pathname
  try {
    return decodeURIComponent(pathname.slice(pathname.lastIndexOf('/') + 1))
  } catch {
    return null
  }
}

/** Fields and their tests: a problem naming the first field that fails, or null. */
export function shape(body: unknown, fields: Record<string, (v: any) => boolean>): string | null {
  if (!isObject(body)) return 'body is not an object'
  for (const [name, test] of Object.entries(fields)) {
    if (!test(body[name])) return `field ${name} is ${JSON.stringify(body[name])}`
  }
  return null
}

export const isString = (v: unknown) => typeof v === 'string'
export const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0
export const oneOf =
  (...values: unknown[]) =>
  (v: unknown) =>
    values.includes(v)
export const orNull = (test: (v: unknown) => boolean) => (v: unknown) => v === null || test(v)
export const stringMap = (test: (v: unknown) => boolean) => (v: unknown) =>
  isObject(v) && Object.values(v).every(test)

export type { Route }
