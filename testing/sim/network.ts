// The simulated network: the nodes' `request` port. A request travels to the addressed node's
// real Hono app as real JSON, and its answer travels back; either may be delayed, reordered,
// dropped or duplicated, a cut node hears nothing, and an unanswered request times out.
import type { Hono } from 'hono'
import type { WireReply } from '../../lib/node/ports.ts'
import type { Random } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export type NetFaults = { drop: number; duplicate: number }

/** What the network needs of a node: whether it runs (and which life of it), and its app.
 * `stalledUntil`: the process is stopped (SIGSTOP) until then, and runs nothing meanwhile. */
export type Host = {
  id: string
  up: boolean
  epoch: number
  app: Hono | null
  stalledUntil?: number
}

export type Observer = {
  /** A request leaves `from` (before any drop: what the sender did is what counts). */
  onRequest(from: string, to: string, path: string, body: unknown): void
  /** `host` answers a request with `reply` (as it leaves the node). */
  onAnswer(host: string, path: string, body: unknown, reply: WireReply): void
}

const MAX_DELAY_MS = 12

export class SimNetwork {
  /** node id → when its cut heals */
  readonly cut = new Map<string, number>()
  /** A partition that splits the nodes in two: one side, and when it heals. */
  split: { side: ReadonlySet<string>; until: number } | null = null
  counts = { drops: 0, duplicates: 0 }

  constructor(
    readonly sched: Scheduler,
    readonly rng: Random,
    readonly hosts: Map<string, Host>,
    readonly faults: () => NetFaults,
    readonly observer: Observer,
    readonly log: (line: string) => void,
  ) {}

  /** The `request` port of `from` in its life `epoch`. */
  request(
    from: Host,
    epoch: number,
    method: 'GET' | 'POST',
    url: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<WireReply | null> {
    const { host: to, pathname: path } = new URL(url)
    const { promise, resolve } = Promise.withResolvers<WireReply | null>()
    let settled = false
    const finish = (reply: WireReply | null) => {
      if (settled || from.epoch !== epoch || !from.up) return
      settled = true
      resolve(reply)
    }
    this.sched.at(this.sched.now + timeoutMs, () => this.whenRunning(from, () => finish(null)))
    if (method === 'POST') this.observer.onRequest(from.id, to, path, body)
    const text = body === null ? undefined : JSON.stringify(body)
    const copies = this.rng.chance(this.faults().duplicate) ? 2 : 1
    if (copies === 2) this.counts.duplicates += 1
    for (let i = 0; i < copies; i++) {
      if (this.#lost(from.id, to, `${method} ${path}`)) continue
      const serve = () =>
        void this.#serve(from.id, to, method, url, path, text).then((reply) => {
          if (reply === null || this.#lost(to, from.id, `reply to ${path}`)) return
          const back = () => this.whenRunning(from, () => finish(reply))
          this.sched.at(this.sched.now + this.#delay(), back)
        })
      this.sched.at(this.sched.now + this.#delay(), () =>
        this.whenRunning(this.hosts.get(to), serve),
      )
    }
    return promise
  }

  /** The addressed node's app answers, if it runs and is reachable; null when it cannot. */
  async #serve(
    from: string,
    to: string,
    method: string,
    url: string,
    path: string,
    text: string | undefined,
  ): Promise<WireReply | null> {
    const host = this.hosts.get(to)
    if (!host || !host.up || host.app === null || this.#isCut(from, to)) return null
    const epoch = host.epoch
    const headers = { 'content-type': 'application/json', accept: 'application/json' }
    const response = await host.app.fetch(new Request(url, { method, headers, body: text }))
    const answer = await response.text()
    if (!host.up || host.epoch !== epoch) return null // it crashed before it could answer
    let json: unknown = null
    try {
      json = JSON.parse(answer)
    } catch {}
    const reply = { status: response.status, body: json }
    this.observer.onAnswer(to, path, text === undefined ? null : JSON.parse(text), reply)
    return reply
  }

  /** Runs `fn` now, or once `host` wakes if it is stalled: a stopped process reads nothing,
   * and its timers fire only when it runs again. */
  whenRunning(host: Host | undefined, fn: () => void): void {
    const until = host?.stalledUntil ?? 0
    if (until > this.sched.now) this.sched.at(until, () => this.whenRunning(host, fn))
    else fn()
  }

  #lost(from: string, to: string, what: string): boolean {
    if (!this.#isCut(from, to) && !this.rng.chance(this.faults().drop)) return false
    this.counts.drops += 1
    this.log(`drop ${from}->${to} ${what}`)
    return true
  }

  #isCut(from: string, to: string): boolean {
    const split = this.split
    if (split !== null && split.side.has(from) !== split.side.has(to)) return true
    return this.cut.has(from) || this.cut.has(to)
  }

  #delay(): number {
    return this.rng.int(1, MAX_DELAY_MS)
  }
}
