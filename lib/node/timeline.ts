// What happened to each recent transaction, and when, as the coordinator's shell reported it
// (lib/node/observe.ts): the dashboard's timelines and its list of recent decisions. Bounded: the
// last `limit` transactions begun, at most MAX_ENTRIES events each, and the last RECENT decided.
import type { CoordinatorEvent, CoordinatorMessage, CoordinatorTxn } from '../core/index.ts'
import type { CoordinatorObserver } from './observe.ts'
import { Fifo } from './fifo.ts'

export type TimelineEntry = { at: number; event: string; participant?: string; detail?: string }
export type TxnTimeline = { txn: string; began: number; entries: TimelineEntry[] }

/** Each transaction's events past this many (retries to a participant down) are dropped. */
const MAX_ENTRIES = 64
const RECENT = 50

export class Timeline implements CoordinatorObserver {
  readonly #txns = new Map<string, TxnTimeline>()
  /** The same ids, oldest first: the one dropped when there are too many. */
  readonly #begun = new Fifo<string>()
  /** The last RECENT transactions decided, oldest first. */
  readonly recent: string[] = []
  /** Decisions since start-up. */
  readonly decided = { commit: 0, abort: 0 }

  constructor(
    readonly now: () => number,
    readonly limit = 2000,
  ) {}

  /** The timeline of `txn`, if it is among the last `limit` begun. */
  of(txn: string): TxnTimeline | undefined {
    return this.#txns.get(txn)
  }

  changed(before: CoordinatorTxn | undefined, after: CoordinatorTxn): void {
    if (before === undefined) this.#begin(after.txn)
    const decided = (t: CoordinatorTxn | undefined) => t?.logged === true && t.decision !== null
    if (decided(after) && !decided(before)) {
      this.decided[after.decision!] += 1
      this.recent.push(after.txn)
      if (this.recent.length > RECENT) this.recent.shift()
      this.#add(after.txn, { event: 'decision durable', detail: after.decision! })
    }
    if (after.phase === 'done' && before?.phase !== 'done') this.#add(after.txn, { event: 'done' })
  }

  sent(to: string, message: CoordinatorMessage): void {
    const name = message.type === 'decide' ? message.decision : message.type
    this.#add(message.txn, {
      event: `${name === 'pre' ? 'precommit' : name} sent`,
      participant: to,
    })
  }

  answered(txn: string, event: CoordinatorEvent): void {
    const entry = entryOf(event)
    if (entry !== null) this.#add(txn, entry)
  }

  #begin(txn: string): void {
    const at = this.now()
    if (!this.#txns.has(txn)) this.#begun.push(txn)
    this.#txns.set(txn, { txn, began: at, entries: [{ at, event: 'begin' }] })
    if (this.#txns.size > this.limit) this.#txns.delete(this.#begun.shift()!)
  }

  #add(txn: string, entry: Omit<TimelineEntry, 'at'>): void {
    const timeline = this.#txns.get(txn)
    if (timeline === undefined || timeline.entries.length >= MAX_ENTRIES) return
    // Field by field, not `{ at, ...entry }`: a spread copies by walking the object's properties,
    // and this runs for every message and answer of every transaction.
    const { event, participant, detail } = entry
    const added: TimelineEntry = { at: this.now(), event }
    if (participant !== undefined) added.participant = participant
    if (detail !== undefined) added.detail = detail
    timeline.entries.push(added)
  }
}

/** An answer as a timeline entry: a vote, an acknowledgement, a refusal, no answer. */
function entryOf(event: CoordinatorEvent): Omit<TimelineEntry, 'at'> | null {
  switch (event.type) {
    case 'vote':
      return { event: `vote ${event.vote}`, participant: event.from, ...reason(event.reason) }
    case 'ack':
      return { event: 'ack', participant: event.from }
    case 'pre-ack':
      return { event: 'precommitted', participant: event.from }
    case 'outcome':
      return { event: `outcome ${event.decision}`, participant: event.from }
    case 'refused':
      return { event: 'refused', participant: event.from, detail: event.error }
    case 'unreachable':
      return { event: 'no answer', participant: event.to }
    default:
      return null
  }
}

function reason(text: string | undefined): { detail?: string } {
  return text === undefined ? {} : { detail: text }
}
