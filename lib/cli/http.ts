// Calls to the coordinator service and its participants: which coordinator (`--coordinator`,
// `$TWOPHASE_COORDINATOR`), and one JSON request whose every failure is one line to print.
import { UsageError, parseMs } from './args.ts'
import { requestHeaders } from '../node/ports.ts'
import {
  SECURITY_FLAGS,
  readClientTokens,
  readSecurity,
  schemeOf,
  type Security,
  type SecurityValues,
} from './security.ts'
import { CLIENT_TIMEOUT, DEFAULT_COORDINATOR } from './usage.ts'

export { DEFAULT_COORDINATOR }

/** The flags every command takes: where the coordinator is, how long to wait, how to print. */
export const CLIENT_FLAGS = {
  coordinator: { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  'token-file': { type: 'string' },
  ...SECURITY_FLAGS,
} as const

export type Target = { url: string; json: boolean; timeoutMs: number }

type ClientValues = SecurityValues & {
  coordinator?: string
  json?: boolean
  timeout?: string
  'token-file'?: string
}

/** What this client's requests carry: the secret's proof or a client token, and TLS. */
type ClientCredentials = { secret: string | null; token: string | null; tls: Security['tls'] }

let credentials: ClientCredentials = { secret: null, token: null, tls: null }

/** Reads the client's credentials from its flags and environment (once per command). */
function useCredentials(values: ClientValues): Security {
  const security = readSecurity(values, process.env)
  const tokenFile = values['token-file'] ?? process.env.TWOPHASE_TOKEN_FILE
  const token = tokenFile ? (readClientTokens(tokenFile)[0] ?? null) : null
  if (tokenFile && token === null) throw new UsageError(`--token-file ${tokenFile}: no token in it`)
  credentials = { secret: security.secret, token, tls: security.tls }
  return security
}

function authHeaders(method: string, url: string, body: string): Record<string, string> {
  const headers = requestHeaders(method, url, body, credentials.secret)
  if (credentials.secret === null && credentials.token !== null) {
    headers.authorization = `Bearer ${credentials.token}`
  }
  return headers
}

/** Where the coordinator is, how to print, and how long one answer may take: `wait` is the
 * command's default (start and submit wait for a decision, the rest only read). */
export function targetOf(values: ClientValues, wait: keyof typeof CLIENT_TIMEOUT = 'read'): Target {
  const security = useCredentials(values)
  const given = values.coordinator ?? (process.env.TWOPHASE_COORDINATOR || DEFAULT_COORDINATOR)
  return {
    url: coordinatorUrl(given, schemeOf(security)),
    json: values.json ?? false,
    timeoutMs: parseMs(values.timeout ?? String(CLIENT_TIMEOUT[wait]), 'timeout'),
  }
}

/** `--coordinator`: `host:port` or an http(s) URL, as a base URL without a trailing slash. */
export function coordinatorUrl(value: string, scheme: 'http' | 'https' = 'http'): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `${scheme}://${value}`
  try {
    const url = new URL(withScheme)
    if (url.protocol === 'http:' || url.protocol === 'https:') {
      return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`
    }
  } catch {}
  throw new UsageError(`invalid --coordinator ${JSON.stringify(value)}: expected an http(s) URL`)
}

/** No answer within the time a request was given: the node may be up but busy or stuck. */
export class NoAnswer extends Error {}

/** A request whose answer is JSON; a failure (unreachable, an error answer) throws one line. */
export async function call(
  base: string,
  path: string,
  who: string,
  timeoutMs: number,
  init: RequestInit = {},
  accept: number[] = [],
): Promise<{ status: number; body: any }> {
  let response: Response
  let text: string
  try {
    const url = `${base}${path}`
    const body = typeof init.body === 'string' ? init.body : ''
    const headers = { ...authHeaders(init.method ?? 'GET', url, body), ...(init.headers ?? {}) }
    response = await fetch(url, {
      ...init,
      headers: headers as Record<string, string>,
      ...(credentials.tls ? { tls: credentials.tls } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    })
    text = await response.text()
  } catch (error) {
    if ((error as { name?: unknown } | null)?.name !== 'TimeoutError') {
      throw new Error(`cannot reach ${who} at ${base}`)
    }
    throw new NoAnswer(`${who} at ${base} did not answer ${path} within ${timeoutMs} ms`)
  }
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    throw new Error(`${who} at ${base} answered ${path} with HTTP ${response.status}, not JSON`)
  }
  if (response.ok || accept.includes(response.status)) return { status: response.status, body }
  const message = `${who} refused ${path} (HTTP ${response.status}): ${body?.error ?? text}`
  // A 400 or 413 means the request was malformed, which is the command line's fault.
  throw response.status === 400 || response.status === 413
    ? new UsageError(message)
    : new Error(message)
}

/** The participants' URLs in the coordinator's order, which is what `--on INDEX` counts in. */
export async function participantUrls(target: Target): Promise<string[]> {
  const { body: status } = await call(target.url, '/status', 'the coordinator', target.timeoutMs)
  return (status.participants as { url: string }[]).map((p) => p.url)
}
