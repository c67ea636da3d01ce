// Calls to the coordinator service and its participants: which coordinator (`--coordinator`,
// `$TWOPHASE_COORDINATOR`), and one JSON request whose every failure is one line to print.
import { UsageError, parseMs } from './args.ts'
import { CLIENT_TIMEOUT, DEFAULT_COORDINATOR } from './usage.ts'

export { DEFAULT_COORDINATOR }

/** The flags every command takes: where the coordinator is, how long to wait, how to print. */
export const CLIENT_FLAGS = {
  coordinator: { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
} as const

export type Target = { url: string; json: boolean; timeoutMs: number }

type ClientValues = { coordinator?: string; json?: boolean; timeout?: string }

/** Where the coordinator is, how to print, and how long one answer may take: `wait` is the
 * command's default (start and submit wait for a decision, the rest only read). */
export function targetOf(values: ClientValues, wait: keyof typeof CLIENT_TIMEOUT = 'read'): Target {
  const given = values.coordinator ?? (process.env.TWOPHASE_COORDINATOR || DEFAULT_COORDINATOR)
  return {
    url: coordinatorUrl(given),
    json: values.json ?? false,
    timeoutMs: parseMs(values.timeout ?? String(CLIENT_TIMEOUT[wait]), 'timeout'),
  }
}

/** `--coordinator`: `host:port` or an http(s) URL, as a base URL without a trailing slash. */
export function coordinatorUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
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
    response = await fetch(`${base}${path}`, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>) },
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
