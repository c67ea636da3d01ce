// GET /events: Server-Sent Events, one `summary` event per interval for every viewer (built
// once, sent to all), whatever the load: the stream is sampled, never one event per
// transaction, so a viewer never falls behind. The participants are probed while anyone watches.
import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { Summaries } from './summary.ts'

export const INTERVAL_MS = 250
const PROBE_EVERY = 4 // intervals: once a second

export class EventStream {
  readonly #viewers = new Set<(data: string) => void>()
  #stop: (() => void) | null = null
  #ticks = 0
  /** The last summary sent: what a new viewer sees first. */
  #latest: string | null = null

  constructor(
    readonly summaries: Summaries,
    readonly every: (ms: number, fn: () => void) => () => void,
  ) {}

  /** The SSE response of one viewer, open until it goes away. */
  respond(c: Context): Response {
    return streamSSE(c, async (stream) => {
      const { promise: gone, resolve } = Promise.withResolvers<void>()
      const send = (data: string) => {
        void stream.writeSSE({ event: 'summary', data }).catch(() => resolve())
      }
      stream.onAbort(() => resolve())
      // While others watch, the latest summary; else a fresh one (the latest may be old).
      const fresh = this.#stop === null
      this.#join(send)
      send(fresh || this.#latest === null ? this.#summary() : this.#latest)
      await gone
      this.#leave(send)
    })
  }

  #join(send: (data: string) => void): void {
    this.#viewers.add(send)
    if (this.#stop !== null) return
    void this.summaries.probe()
    this.#stop = this.every(INTERVAL_MS, () => this.#tick())
  }

  #leave(send: (data: string) => void): void {
    this.#viewers.delete(send)
    if (this.#viewers.size > 0 || this.#stop === null) return
    this.#stop()
    this.#stop = null
  }

  #summary(): string {
    return (this.#latest = JSON.stringify(this.summaries.next()))
  }

  #tick(): void {
    this.#ticks += 1
    if (this.#ticks % PROBE_EVERY === 0) void this.summaries.probe()
    const data = this.#summary()
    for (const send of this.#viewers) send(data)
  }
}
