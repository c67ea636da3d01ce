// What a node takes from the world: a clock, timers and a network. Production passes Bun's
// (`bunPorts`); the simulator (testing/sim) passes a virtual clock and a seeded network, so the
// same nodes run in both. Durable storage is a port too: the participant's ParticipantStore,
// the coordinator's CoordinatorLog, and each node's View.
import { proofOf } from '../wire/auth.ts'
import { MAX_BODY_BYTES } from '../wire/limits.ts'
import { Channels } from './channel.ts'

/** A reply as it came off the wire: its status and parsed JSON body (null when not JSON). */
export type WireReply = { status: number; body: unknown }

export type Ports = Readonly<{
  /** Milliseconds, as `Date.now()`. */
  now: () => number
  /** Calls `fn` every `ms`; the returned function stops it. */
  every: (ms: number, fn: () => void) => () => void
  /** Resolves after `ms`. */
  sleep: (ms: number) => Promise<void>
  /** One HTTP request with a JSON body (GET without one); null when no answer came in
   * `timeoutMs` (refused, reset, timed out): the caller's core decides what that means. */
  request: (
    method: 'GET' | 'POST',
    url: string,
    body: unknown,
    timeoutMs: number,
  ) => Promise<WireReply | null>
  /** A line for the operator (a write that failed, an answer not carried out). */
  warn: (line: string) => void
  /** Lets go of what the requests hold open (a node that stops). */
  close?: () => void
}>

/** What a node's requests carry: proof of the cluster's secret, and its TLS identity and the CA
 * it trusts (PEM texts). */
export type HttpOptions = {
  secret?: string | null
  tls?: { ca?: string; cert?: string; key?: string } | null
}

/** Bun's clock, timers and fetch; requests signed and over TLS as `options` say. */
export function httpPorts(options: HttpOptions = {}): Ports {
  const channels = new Channels({
    headers: (url) => requestHeaders('GET', url, '', options.secret),
    tls: options.tls ?? undefined,
  })
  return {
    now: () => Date.now(),
    every(ms, fn) {
      const timer = setInterval(fn, ms)
      return () => clearInterval(timer)
    },
    sleep: (ms) => Bun.sleep(ms),
    request: (method, url, body, timeoutMs) =>
      method === 'POST' && url.endsWith('/batch')
        ? batchJson(url, body, timeoutMs, options, channels)
        : fetchJson(method, url, body, timeoutMs, options),
    warn: (line) => console.error(line),
    close: () => channels.close(),
  }
}

export const bunPorts: Ports = httpPorts()

/** Headers for a request of `text` to `url`: JSON, and the proof of the secret if there is one. */
export function requestHeaders(
  method: string,
  url: string,
  text: string,
  secret: string | null | undefined,
): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
  }
  if (secret) {
    const { pathname, search } = new URL(url)
    const signed = { method, path: pathname + search, body: text }
    headers.authorization = proofOf(secret, signed, Date.now())
  }
  return headers
}

/** A POST /batch: over the participant's channel (./channel.ts), or as a plain request when it
 * has none. */
async function batchJson(
  url: string,
  body: unknown,
  timeoutMs: number,
  options: HttpOptions,
  channels: Channels,
): Promise<WireReply | null> {
  const text = JSON.stringify(body)
  const proof = requestHeaders('POST', url, text, options.secret).authorization ?? ''
  const origin = url.slice(0, -'/batch'.length)
  // A body larger than a participant reads goes as a request, to be refused alone (a 413):
  // as a frame past the limit it would close the channel and every batch in flight on it.
  const large = text.length > MAX_BODY_BYTES / 4 && Buffer.byteLength(text) > MAX_BODY_BYTES
  const reply = large ? undefined : await channels.request(origin, text, proof, timeoutMs)
  return reply !== undefined ? reply : fetchJson('POST', url, body, timeoutMs, options, text)
}

async function fetchJson(
  method: 'GET' | 'POST',
  url: string,
  body: unknown,
  timeoutMs: number,
  options: HttpOptions,
  text = method === 'POST' ? JSON.stringify(body) : '',
): Promise<WireReply | null> {
  try {
    const response = await fetch(url, {
      method,
      headers: requestHeaders(method, url, text, options.secret),
      ...(method === 'POST' ? { body: text } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    })
    const json = (await response.json().catch(() => null)) as unknown
    return { status: response.status, body: json }
  } catch {
    return null
  }
}

/** `promise`'s value, or `late` once `ms` have passed, by `ports`' clock. The timer stops as soon
 * as the promise settles, where a `ports.sleep` raced against it runs out its time: a wait that
 * every transaction makes (POST /transactions waiting for its acknowledgements) left one timer
 * running per transaction answered, for the whole wait (a second by default). */
export async function orAfter<T, L>(
  ports: Ports,
  promise: Promise<T>,
  ms: number,
  late: L,
): Promise<T | L> {
  let stop = () => {}
  const timeout = new Promise<L>((resolve) => {
    stop = ports.every(ms, () => resolve(late))
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    stop()
  }
}

/** What a node shows in a text file (state.txt, decision.txt): FileView on disk, or memory. */
export interface View {
  /** Writes the file now (someone waits for it). */
  refresh(): Promise<void>
  /** Writes it soon (nobody waits). */
  refreshSoon(): void
  /** Writes what a pending refreshSoon would have (a clean stop). */
  settle(): Promise<void>
}

/** Where a node without a view (`--no-views`) shows nothing. */
export const NO_VIEW: View = {
  refresh: async () => {},
  refreshSoon: () => {},
  settle: async () => {},
}
