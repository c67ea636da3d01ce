// How the coordinator's messages reach a participant: batched. Messages for one participant that
// are queued while a request to it is in flight travel together in the next POST /batch (at most
// MAX_BATCH each, MAX_IN_FLIGHT requests at a time for prepares and as many for decisions), so at
// high load many transactions share one HTTP request; alone, a message leaves at once. A
// participant without /batch gets single requests to the classic endpoints. The bodies and the
// meaning of the answers are the codec's (lib/wire/coordinator.ts).
import type { CoordinatorEvent, CoordinatorMessage } from '../core/index.ts'
import { bunPorts, type Ports } from './ports.ts'
import { decodeAnswer, decodeBatchReplies, encodeMessage, pathOf } from '../wire/coordinator.ts'
import type { WireItem } from '../wire/coordinator.ts'
import { MAX_BATCH } from '../wire/participant.ts'

export { MAX_BATCH }
const MAX_IN_FLIGHT = 2

type Queued = {
  to: string
  message: CoordinatorMessage
  coordinator: string | undefined
  onEvent: (event: CoordinatorEvent) => void
}
type Peer = { queue: Queued[]; inFlight: number; batches: boolean }

export class MessageSender {
  readonly #peers = new Map<string, Peer>()
  /** Requests sent (a batch on a participant's channel counts as one), for benchmarks. */
  requests = 0
  /** The other coordinators on a shared log, named in every prepare (see lib/store/pg-log.ts). */
  others: readonly string[] = []

  /** `alwaysBatch`: even a lone message goes through /batch, which answers once the outcome is
   * in the log without waiting for state.txt (the service's choice; batch mode keeps the
   * classic endpoints, so the exercise's files are written when the coordinator exits). */
  constructor(
    readonly requestMs: number,
    readonly alwaysBatch = false,
    readonly ports: Ports = bunPorts,
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
      for (const q of batch) this.#answer(q, await this.#single(to, q))
      return
    }
    const messages = batch.map((q) =>
      encodeMessage(q.message, q.coordinator, true, q.to, this.others),
    )
    const reply = await this.#request(`${to}/batch`, { messages })
    if (reply?.status === 404 || reply?.status === 405) {
      peer.batches = false // an older participant: single requests from now on
      for (const q of batch) this.#answer(q, await this.#single(to, q))
      return
    }
    const replies = reply?.status === 200 ? decodeBatchReplies(reply.body, batch.length) : null
    batch.forEach((q, i) => this.#answer(q, replies?.[i] ?? null))
  }

  #single(to: string, q: Queued): Promise<WireItem | null> {
    const body = encodeMessage(q.message, q.coordinator, false, q.to, this.others)
    return this.#request(`${to}/${pathOf(q.message)}`, body)
  }

  #request(url: string, body: object): Promise<WireItem | null> {
    this.requests += 1
    return this.ports.request('POST', url, body, this.requestMs)
  }

  /** Hands `q` its event. A callback that throws (a bug) must not keep the rest of its batch
   * from theirs: the core waits for an answer to every message it believes is in flight. */
  #answer(q: Queued, reply: WireItem | null): void {
    try {
      const now = this.ports.now()
      q.onEvent(decodeAnswer(q.to, q.message, reply?.status ?? null, reply?.body ?? null, now))
    } catch (error) {
      console.error(
        `coordinator: handling the answer to ${q.message.type} ${q.message.txn}: ${error}`,
      )
    }
  }
}
