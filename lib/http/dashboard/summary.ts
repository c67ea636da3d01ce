// What the dashboard shows, built once per interval for every viewer: decisions per second,
// transactions in flight by phase, the latest decisions with each vote and reason, heuristic
// outcomes, and each participant as last probed. At any load it is one pass over the
// transactions in memory and a bounded list, so the page never falls behind.
import type { CoordinatorNode } from '../../node/coordinator-node.ts'
import type { Timeline } from '../../node/timeline.ts'
import type { CoordinatorTxn } from '../../core/index.ts'

export type ParticipantView = {
  url: string
  /** null until the first probe has answered or failed. */
  reachable: boolean | null
  ms: number | null
  prepared: number
  inDoubt: { txn: string; waitedMs: number }[]
  locks: number
}

const SHOWN = 20

export class Summaries {
  #last: { at: number; commit: number; abort: number } | null = null
  #probing = false
  participants: ParticipantView[]

  constructor(
    readonly node: CoordinatorNode,
    readonly timeline: Timeline,
    readonly urls: readonly string[],
  ) {
    this.participants = urls.map((url) => ({ ...unprobed(url), reachable: null }))
  }

  /** The picture now; rates are over the time since the previous call. */
  next() {
    const at = this.node.ports.now()
    const { commit, abort } = this.timeline.decided
    const last = this.#last ?? { at: at - 1000, commit, abort }
    const seconds = Math.max(0.001, (at - last.at) / 1000)
    this.#last = { at, commit, abort }
    return {
      at,
      rate: { commit: (commit - last.commit) / seconds, abort: (abort - last.abort) / seconds },
      totals: { commit, abort },
      ...this.#scan(),
      recent: this.timeline.recent
        .slice(-SHOWN)
        .reverse()
        .flatMap((id) => this.#row(id)),
      participants: this.participants,
    }
  }

  /** In flight by phase, and the heuristic outcomes among the transactions in memory. */
  #scan() {
    const inFlight = { preparing: 0, precommitting: 0, deciding: 0 }
    const heuristic: ReturnType<typeof rowOf>[] = []
    for (const t of this.node.txns.values()) {
      if (t.phase !== 'done') inFlight[t.phase] += 1
      if (Object.keys(t.refusals).length > 0 && heuristic.length < SHOWN) heuristic.push(rowOf(t))
    }
    return { inFlight, heuristic }
  }

  #row(id: string) {
    const t = this.node.txn(id)
    return t === undefined ? [] : [rowOf(t)]
  }

  /** Asks every participant for its /status (at most `ms` each). */
  async probe(ms = 1000): Promise<void> {
    if (this.#probing) return // the last round is still waiting for a slow participant
    this.#probing = true
    try {
      this.participants = await Promise.all(this.urls.map((url) => probe(this.node, url, ms)))
    } finally {
      this.#probing = false
    }
  }
}

function rowOf(t: CoordinatorTxn) {
  return {
    id: t.txn,
    decision: t.logged ? t.decision : null,
    phase: t.phase,
    protocol: t.protocol ?? '2pc',
    votes: Object.fromEntries(t.participants.map((p) => [p, t.votes[p] ?? null])),
    reasons: t.reasons,
    refusals: t.refusals,
    acks: t.acks.length,
  }
}

function unprobed(url: string): ParticipantView {
  return { url, reachable: false, ms: null, prepared: 0, inDoubt: [], locks: 0 }
}

async function probe(node: CoordinatorNode, url: string, ms: number): Promise<ParticipantView> {
  const started = performance.now()
  const reply = await node.ports.request('GET', `${url}/status`, null, ms)
  if (reply === null || reply.status !== 200) return unprobed(url)
  const body = reply.body as {
    prepared?: unknown[]
    inDoubt?: { txn: string; waitedMs: number }[]
    locks?: Record<string, string>
  }
  return {
    url,
    reachable: true,
    ms: Math.round(performance.now() - started),
    prepared: body.prepared?.length ?? 0,
    inDoubt: (body.inDoubt ?? []).slice(0, 5).map((d) => ({ txn: d.txn, waitedMs: d.waitedMs })),
    locks: Object.keys(body.locks ?? {}).length,
  }
}
