// The coordinator's side of a participant's channel (lib/http/channel.ts): one WebSocket per
// participant, opened by the first POST /batch to it, that carries every batch after it. An
// answer finds its request by the frame's id. A frame not answered in its time is no answer
// (null), as a request that timed out is, and it closes the channel, as an aborted fetch drops
// its connection: the next batch opens a new one rather than wait behind a connection that may
// be dead. A channel that closes leaves its frames unanswered (null): the core sends them again,
// and every message is idempotent. A participant whose channel fails before it answered a frame
// (one without channels, or behind a proxy that refuses WebSockets or mishandles them) gets plain
// requests for a while: REFUSED_MS, twice as long after each failure in a row, at most
// MAX_REFUSED_MS, so a middlebox that takes an upgrade and then passes nothing costs a timed-out
// batch ever more rarely.
import type { WireReply } from './ports.ts'

export const REFUSED_MS = 10_000
export const MAX_REFUSED_MS = 300_000

export type ChannelOptions = {
  /** The headers of the upgrade request (the proof of the secret, when there is one). */
  headers: (url: string) => Record<string, string>
  tls?: object | undefined
}

/** Bun's WebSocket, which takes headers and TLS options (the DOM's type takes protocols). */
type Open = new (
  url: string,
  options: { headers: Record<string, string>; tls?: object },
) => WebSocket

type Pending = { resolve: (reply: WireReply | null) => void; timer: ReturnType<typeof setTimeout> }

class Channel {
  readonly #pending = new Map<number, Pending>()
  #next = 1
  readonly #ws: WebSocket
  /** Whether the channel opened (false once it failed or closed first). */
  readonly opened: Promise<boolean>
  /** Whether it opened: a batch on it then need not wait for `opened`. */
  ready = false
  closed = false
  /** Whether this end closed it (a timeout, a node that stops), not the participant. */
  closedHere = false
  /** Whether a frame was answered on it: a channel that works. */
  answered = false

  constructor(
    url: string,
    options: ChannelOptions,
    readonly onClose: (channel: Channel) => void,
  ) {
    const tls = options.tls ? { tls: options.tls } : {}
    this.#ws = new (WebSocket as unknown as Open)(url, { headers: options.headers(url), ...tls })
    this.opened = new Promise((resolve) => {
      this.#ws.onopen = () => {
        this.ready = true
        resolve(true)
      }
      this.#ws.onerror = () => resolve(false)
      this.#ws.onclose = () => {
        resolve(false)
        this.#drop()
      }
    })
    this.#ws.onmessage = (event) => this.#received(String(event.data))
  }

  send(body: string, proof: string, timeoutMs: number): Promise<WireReply | null> {
    if (this.closed) return Promise.resolve(null)
    const id = this.#next++
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        resolve(null)
        this.close()
      }, timeoutMs)
      this.#pending.set(id, { resolve, timer })
      try {
        this.#ws.send(`${id}\n${proof}\n${body}`)
      } catch {
        this.close() // a socket closing under us: no answer, as for a reset connection
      }
    })
  }

  close(): void {
    this.closedHere = true
    this.#ws.close()
    this.#drop()
  }

  #drop(): void {
    if (this.closed) return
    this.closed = true
    this.onClose(this)
    for (const p of this.#pending.values()) settle(p, null)
    this.#pending.clear()
  }

  #received(text: string): void {
    const first = text.indexOf('\n')
    const second = first < 0 ? -1 : text.indexOf('\n', first + 1)
    const id = Number(text.slice(0, first))
    const pending = second < 0 ? undefined : this.#pending.get(id)
    if (pending === undefined) return // answered after its time, or not a frame of ours
    this.#pending.delete(id)
    this.answered = true
    let body: unknown = null
    try {
      body = JSON.parse(text.slice(second + 1))
    } catch {}
    settle(pending, { status: Number(text.slice(first + 1, second)), body })
  }
}

/** `promise`'s value, or null if it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

function settle(p: Pending, reply: WireReply | null): void {
  clearTimeout(p.timer)
  p.resolve(reply)
}

/** The channels of one node, by participant. */
export class Channels {
  readonly #open = new Map<string, Channel>()
  /** By participant: until when it gets plain requests, and for how long the last time. */
  readonly #refused = new Map<string, { until: number; ms: number }>()

  constructor(readonly options: ChannelOptions) {}

  /** The answer to POST `origin`/batch of `body` over the channel to `origin`; undefined when
   * there is none (the caller sends a plain request). */
  async request(
    origin: string,
    body: string,
    proof: string,
    timeoutMs: number,
  ): Promise<WireReply | null | undefined> {
    const channel = this.#channel(origin)
    if (channel === null) return undefined
    if (channel.ready) return channel.send(body, proof, timeoutMs)
    const started = Date.now()
    const opened = await within(channel.opened, timeoutMs)
    // An upgrade not answered in the request's time (a participant paused, a proxy waiting on
    // a dead backend) is no answer, as a request's would be; so is a channel this end closed
    // meanwhile (a node that stops sends nothing more).
    if (opened === null) channel.close()
    if (opened === null || channel.closedHere) return null
    if (!opened) return undefined // refused: a plain request instead
    return channel.send(body, proof, Math.max(1, timeoutMs - (Date.now() - started)))
  }

  /** Closes every channel (a node that stops: an open WebSocket keeps a process running). */
  close(): void {
    const open = [...this.#open.values()]
    this.#open.clear()
    for (const channel of open) channel.close()
  }

  #channel(origin: string): Channel | null {
    const existing = this.#open.get(origin)
    if (existing !== undefined && !existing.closed) return existing
    if ((this.#refused.get(origin)?.until ?? 0) > Date.now()) return null
    const url = `${origin.replace(/^http/, 'ws')}/channel`
    try {
      const channel = new Channel(url, this.options, (closed) => {
        if (this.#open.get(origin) === closed) this.#open.delete(origin)
        if (closed.answered) this.#refused.delete(origin)
        else this.#refuse(origin)
      })
      this.#open.set(origin, channel)
      return channel
    } catch {
      this.#refuse(origin) // a URL or TLS options Bun's WebSocket takes no channel with
      return null
    }
  }

  #refuse(origin: string): void {
    const last = this.#refused.get(origin)?.ms
    const ms = last === undefined ? REFUSED_MS : Math.min(2 * last, MAX_REFUSED_MS)
    this.#refused.set(origin, { until: Date.now() + ms, ms })
  }
}
