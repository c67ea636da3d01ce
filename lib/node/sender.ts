// How the coordinator's messages reach a participant: batched. Messages for one participant that
// are queued while a request to it is in flight travel together in the next POST /batch (at most
// MAX_BATCH each, MAX_IN_FLIGHT requests at a time for prepares and as many for decisions), so at
// high load many transactions share one HTTP request; alone, a message leaves at once. A
// participant without /batch gets single requests to the classic endpoints.
import type { CoordinatorEvent, CoordinatorMessage } from '../core/index.ts'

export const MAX_BATCH = 256
const MAX_IN_FLIGHT = 2

type Reply = { status: number; body: Record<string, unknown> | null }
type Queued = {
  to: string
  message: CoordinatorMessage
  coordinator: string | undefined
  onEvent: (event: CoordinatorEvent) => void
}
type Peer = { queue: Queued[]; inFlight: number; batches: boolean }

export class MessageSender {
  readonly #peers = new Map<string, Peer>()
  /** HTTP requests sent, for benchmarks. */
  requests = 0

  /** `alwaysBatch`: even a lone message goes through /batch, which answers once the outcome is
   * in the log without waiting for state.txt (the service's choice; batch mode keeps the
   * classic endpoints, so the exercise's files are written when the coordinator exits). */
  constructor(
    readonly requestMs: number,
    readonly alwaysBatch = false,
  ) {}

  /** Sends `message` to `to`; `onEvent` is called with the core's event for whatever happened
   * (a callback, not a promise per message: at full load this runs for every message). */
  send(
    to: string,
    message: CoordinatorMessage,
    coordinator: string | undefined,
    onEvent: (event: CoordinatorEvent) => void,
  ): void {
    // Prepares and decisions queue apart: a batch of commits, which a participant may answer
    // a moment later to share a flush, never holds up the prepares behind it.
    const peer = this.#peer(`${to} ${message.type}`)
    peer.queue.push({ to, message, coordinator, onEvent })
    this.#pump(to, peer)
  }

  #peer(key: string): Peer {
    let peer = this.#peers.get(key)
    if (!peer) this.#peers.set(key, (peer = { queue: [], inFlight: 0, batches: true }))
    return peer
  }

  #pump(to: string, peer: Peer): void {
    while (peer.queue.length > 0 && peer.inFlight < MAX_IN_FLIGHT) {
      const batch = peer.queue.splice(0, peer.batches ? MAX_BATCH : 1)
      peer.inFlight += 1
      void this.#post(to, peer, batch).finally(() => {
        peer.inFlight -= 1
        this.#pump(to, peer)
      })
    }
  }

  async #post(to: string, peer: Peer, batch: Queued[]): Promise<void> {
    if (!peer.batches || (batch.length === 1 && !this.alwaysBatch)) {
      for (const q of batch) answer(q, await this.#single(to, q))
      return
    }
    const messages = batch.map((q) => bodyOf(q.message, q.coordinator, true))
    const reply = await this.#request(`${to}/batch`, { messages })
    if (reply?.status === 404 || reply?.status === 405) {
      peer.batches = false // an older participant: single requests from now on
      for (const q of batch) answer(q, await this.#single(to, q))
      return
    }
    const replies = reply?.status === 200 ? (reply.body?.replies as Reply[] | undefined) : undefined
    batch.forEach((q, i) => answer(q, replies?.[i] ?? null))
  }

  #single(to: string, q: Queued): Promise<Reply | null> {
    return this.#request(`${to}/${pathOf(q.message)}`, bodyOf(q.message, q.coordinator, false))
  }

  async #request(url: string, body: object): Promise<Reply | null> {
    this.requests += 1
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.requestMs),
      })
      const json = (await response.json().catch(() => null)) as Record<string, unknown> | null
      return { status: response.status, body: json }
    } catch {
      return null
    }
  }
}

/** Hands `q` its event. A callback that throws (a bug) must not keep the rest of its batch from
 * theirs: the core waits for an answer to every message it believes is in flight. */
function answer(q: Queued, reply: Reply | null): void {
  try {
    if (reply === null) q.onEvent({ type: 'unreachable', to: q.to, now: Date.now() })
    else q.onEvent(eventOf(q.to, q.message, reply.status, reply.body))
  } catch (error) {
    console.error(
      `coordinator: handling the answer to ${q.message.type} ${q.message.txn}: ${error}`,
    )
  }
}

function pathOf(message: CoordinatorMessage): string {
  return message.type === 'prepare' ? 'prepare' : message.decision
}

/** The JSON body of `message`: for its own endpoint, or as an item of a batch (`typed`). Built
 * field by field, not spread: at full load this runs for every message. */
function bodyOf(message: CoordinatorMessage, coordinator: string | undefined, typed: boolean) {
  const body: Record<string, unknown> = typed ? { type: pathOf(message) } : {}
  body.txn = message.txn
  if (message.type !== 'prepare') return body
  body.participants = message.participants
  if (coordinator) body.coordinator = coordinator
  if (message.ops) body.ops = message.ops
  if (message.onePhase) body.onePhase = true
  return body
}

/** The core's event for a participant's answer to `message`. */
export function eventOf(
  from: string,
  message: CoordinatorMessage,
  status: number,
  reply: Record<string, unknown> | null,
): CoordinatorEvent {
  const now = Date.now()
  const error = typeof reply?.error === 'string' ? reply.error : `HTTP ${status}`
  if (status >= 500 || status === 408 || status === 429)
    return { type: 'unreachable', to: from, now }
  if (message.type === 'prepare') {
    // A one-phase participant answers with the outcome it reached on its own.
    const state = reply?.state
    if (status === 200 && message.onePhase && (state === 'committed' || state === 'aborted')) {
      return { type: 'outcome', from, decision: state === 'committed' ? 'commit' : 'abort', now }
    }
    const vote = reply?.vote
    if (status === 200 && (vote === 'yes' || vote === 'no' || vote === 'read-only')) {
      const reason = typeof reply?.reason === 'string' ? reply.reason : undefined
      return { type: 'vote', from, vote, reason, now }
    }
    // A participant that refuses the request or answers nonsense has not promised anything.
    return { type: 'vote', from, vote: 'no', reason: `refused prepare: ${error}`, now }
  }
  if (status === 200) return { type: 'ack', from, now }
  return { type: 'refused', from, error, now }
}
