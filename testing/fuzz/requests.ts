// What every fuzzed request is made of, whichever node it goes to: a method, a path, headers
// and a body (text, or bytes that are not UTF-8), and the shapes shared by both nodes' bodies
// (one field mutated, an extra or repeated key, a body spoiled as text).
import fc from 'fast-check'
import { corrupted, hostileValue, objectText, q, type Entries, type Text } from './json.ts'

export type FuzzRequest = {
  method: string
  /** The path with its query, as sent. */
  path: string
  headers: Record<string, string>
  body?: string | Uint8Array
}

/** Methods, some in lower case (fetch upper-cases the standard ones, not `patch`) and some no
 * route knows. */
export const METHODS = [
  ...['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'],
  ...['post', 'get', 'patch', 'TRACE', 'CONNECT', 'PROPFIND', 'M-SEARCH'],
]

/** GET and HEAD (in any case) carry no body. */
export const bodyless = (method: string) => /^(GET|HEAD)$/i.test(method)

/** One line for a report: the body cut short, bytes shown as hex. */
export function describeRequest(r: FuzzRequest): string {
  const body =
    r.body === undefined
      ? ''
      : typeof r.body === 'string'
        ? r.body
        : `bytes ${Buffer.from(r.body).toString('hex')}`
  const shown = body.length > 300 ? `${body.slice(0, 300)}… (${body.length} chars)` : body
  return `${r.method} ${r.path.slice(0, 300)} ${JSON.stringify(r.headers)} ${JSON.stringify(shown)}`
}

/** A request with a short description, so that a failure report never prints 1 MiB. */
export function request(r: FuzzRequest): FuzzRequest {
  return Object.assign(r, { [fc.toStringMethod]: () => describeRequest(r) })
}

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      undefined,
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'application/json; charset=latin1',
      'garbage',
    ),
  },
)

const accept = fc.constantFrom(
  undefined,
  undefined,
  'application/json',
  'application/json',
  'text/plain',
  '*/*',
  'application/json;q=0',
  'text/html, application/json',
)

/** Content-Type and Accept, each present or not, right or wrong. */
export const headers: fc.Arbitrary<Record<string, string>> = fc
  .record({ type: contentType, accept })
  .map(({ type, accept }) => ({
    ...(type === undefined ? {} : { 'content-type': type }),
    ...(accept === undefined ? {} : { accept }),
  }))

/** `entries` as sent, or with one thing wrong: a field missing, a field of the wrong type or
 * size, an unknown field, a repeated key (the last one wins in JSON.parse), a key renamed. */
export function almost(valid: fc.Arbitrary<Entries>, weight = 5): fc.Arbitrary<Entries> {
  return valid.chain((entries) => {
    const n = entries.length
    const at = fc.nat({ max: Math.max(0, n - 1) })
    const keyAt = (i: number) => entries[i]?.[0] ?? 'txn'
    const without = (i: number) => entries.filter((_, j) => j !== i)
    const mutations: fc.Arbitrary<Entries>[] = [
      fc.tuple(at, hostileValue).map(([i, v]) => entries.map((e, j) => (j === i ? [e[0], v] : e))),
      fc
        .tuple(fc.constantFrom('x', 'TXN', 'txn ', '', '__proto__', 'constructor'), hostileValue)
        .map(([k, v]) => [...entries, [k, v] as const]),
      fc.tuple(at, hostileValue).map(([i, v]) => [...entries, [keyAt(i), v] as const]),
      fc.tuple(at, hostileValue).map(([i, v]) => [[keyAt(i), v] as const, ...entries]),
      at.map((i) => entries.map((e, j) => (j === i ? [e[0].toUpperCase() + ' ', e[1]] : e))),
    ]
    if (n > 0) mutations.push(at.map(without))
    return fc.oneof(
      { weight, arbitrary: fc.constant(entries) },
      ...mutations.map((arbitrary) => ({ weight: 1, arbitrary })),
    )
  })
}

const BAD_BYTES = [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80], [0xfe, 0xff]]

/** `text` with bytes that are not UTF-8 spliced in (a server decodes them to U+FFFD). */
function withBadBytes(text: Text): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.nat({ max: text.length }), fc.constantFrom(...BAD_BYTES)).map(([at, bad]) => {
    const encoder = new TextEncoder()
    return new Uint8Array([
      ...encoder.encode(text.slice(0, at)),
      ...bad,
      ...encoder.encode(text.slice(at)),
    ])
  })
}

/** The body of `entries`: mostly as JSON, sometimes spoiled as text or as bytes. */
export function bodyOf(entries: fc.Arbitrary<Entries>): fc.Arbitrary<string | Uint8Array> {
  return entries.chain((e) => {
    const text = objectText(e)
    return fc.oneof(
      { weight: 12, arbitrary: fc.constant(text) },
      { weight: 2, arbitrary: corrupted(text) },
      { weight: 1, arbitrary: withBadBytes(text) },
    )
  })
}

/** A POST of `body` to `path`, with any headers. */
export function post(path: string, body: fc.Arbitrary<string | Uint8Array>) {
  return fc
    .tuple(body, headers)
    .map(([b, h]) => request({ method: 'POST', path, headers: h, body: b }))
}

/** A GET (sometimes a HEAD) of `path`. */
export function get(path: fc.Arbitrary<string>) {
  return fc
    .tuple(path, fc.constantFrom('GET', 'GET', 'GET', 'HEAD'), headers)
    .map(([p, method, h]) => request({ method, path: p, headers: h }))
}

/** Any method on one of `paths`, with or without a body (never on GET or HEAD, which cannot
 * carry one). Most are wrong for their path. */
export function anyMethod(paths: readonly string[]) {
  return fc
    .tuple(fc.constantFrom(...METHODS), fc.constantFrom(...paths), headers, fc.option(fc.json()))
    .map(([method, path, h, body]) => {
      const none = bodyless(method) || body === null
      return request({ method, path, headers: h, ...(none ? {} : { body }) })
    })
}

/** Paths that name no endpoint (on either node), or name one badly. */
const UNKNOWN_PATHS = [
  '/',
  '/prepare/',
  '/Prepare',
  '//prepare',
  '/prepare/x',
  '/transactions/',
  '/kv/',
  '/kv/a/b',
  '/%',
  '/%zz',
  '/%00',
  '/..%2fprepare',
  '/status/',
  '/healthz/x',
  '/index.html',
  '/.env',
  `/${'a'.repeat(5000)}`,
]

/** A path no route takes: listed ones, random ones, and random text (encoded by the URL). */
export const unknownPath: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...UNKNOWN_PATHS),
  fc.webPath().filter((p) => p.length > 1),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).map((s) => `/x/${s}`),
)

/** A request to a path no route takes, with any method. */
export const unknownRequest = fc
  .tuple(unknownPath, fc.constantFrom(...METHODS), headers, fc.option(fc.json()))
  .map(([path, method, h, body]) => {
    const none = bodyless(method) || body === null
    return request({ method, path, headers: h, ...(none ? {} : { body }) })
  })

/** A path segment for an id or a key: valid ones, encoded ones, and broken encodings. */
export function segment(valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: valid.map(encodeURIComponent) },
    { weight: 1, arbitrary: valid },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        '%ED%A0%80',
        '%E0%A4%A',
        '%zz',
        '%00',
        '%2F',
        '..',
        '.',
        't'.repeat(128),
        't'.repeat(129),
        'a%20b',
        '%F0%9F%98%80',
        '-a',
      ),
    },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }).map(encodeURI) },
  )
}

/** Text of a valid field or of a wrong one in its place (a quoted `valid` most of the time). */
export function field(valid: fc.Arbitrary<string>, wrong: readonly Text[]): fc.Arbitrary<Text> {
  return fc.oneof(
    { weight: 8, arbitrary: valid.map(q) },
    { weight: 2, arbitrary: fc.constantFrom(...wrong) },
  )
}
