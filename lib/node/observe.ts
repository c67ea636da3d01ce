// What a node tells whoever watches it (its metrics, the dashboard's timelines): hooks called
// by the shells as things happen, never consulted by the protocol. An observer only records; it
// must not throw, and it costs the hot path one call per event.
import type {
  CoordinatorEvent,
  CoordinatorMessage,
  CoordinatorTxn,
  ParticipantRecord,
} from '../core/index.ts'

export type CoordinatorObserver = {
  /** `txn` moved from `before` (undefined: it has just begun) to `after`. */
  changed?(before: CoordinatorTxn | undefined, after: CoordinatorTxn): void
  /** `message` left for participant `to`. */
  sent?(to: string, message: CoordinatorMessage): void
  /** What came back for `txn` (a vote, an ack, a refusal, no answer). */
  answered?(txn: string, event: CoordinatorEvent): void
}

export type ParticipantObserver = {
  /** `record` is durable; `preparedAt` is when the transaction's yes vote was logged. */
  recorded?(record: ParticipantRecord, preparedAt: number | null): void
  /** A protocol message of `type` (prepare, commit, abort, precommit, ...) was received. */
  received?(type: string): void
}
