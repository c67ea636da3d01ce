// Calls to the coordinator service and its participants: which coordinator (`--coordinator`,
// `$TWOPHASE_COORDINATOR`), and one JSON request whose every failure is one line to print.
import { UsageError } from './args.ts'

export const DEFAULT_COORDINATOR = 'http://127.0.0.1:8000'

/** The flags every command takes: where the coordinator is and how to print. */
export const CLIENT_FLAGS = {
  coordinator: { type: 'string' },
  json: { type: 'boolean' },
} as const

export type Target = { url: string; json: boolean }

export function targetOf(values: { coordinator?: string; json?: boolean }): Target {
  const given = values.coordinator ?? (process.env.TWOPHASE_COORDINATOR || DEFAULT_COORDINATOR)
  return { url: baseUrl(given), json: values.json ?? false }
}

/** `host:port` or an http(s) URL, as a base URL without a trailing slash. */
function baseUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  try {
    const url = new URL(withScheme)
    if (url.protocol === 'http:' || url.protocol === 'https:') {
      return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`
    }
  } catch {}
  throw new UsageError(`invalid --coordinator ${JSON.stringify(value)}: expected an http(s) URL`)
}

/** A request whose answer is JSON; a failure (unreachable, an error answer) throws one line. */
export async function call(
  base: string,
  path: string,
  who: string,
  init: RequestInit = {},
  accept: number[] = [],
): Promise<{ status: number; body: any }> {
  let response: Response
  try {
    response = await fetch(`${base}${path}`, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>) },
    })
  } catch {
    throw new Error(`cannot reach ${who} at ${base}`)
  }
  const text = await response.text()
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
  const { body: status } = await call(target.url, '/status', 'the coordinator')
  return (status.participants as { url: string }[]).map((p) => p.url)
}
