// What a participant needs from the place its data and log live: SQLite beside it, or
// PostgreSQL with its own prepared transactions.
import type { Ballot, Effect, Json, Op, ParticipantRecord, PrepareContext } from '../core/index.ts'

export type { PrepareContext }

/** A participant record as a store keeps it: a `prepared` one carries its operations. */
export type StoredRecord = ParticipantRecord & { ops?: readonly Op[] }

export type Verdict = { vote: Ballot; reason?: string }

export interface ParticipantStore {
  /** Whether a `yes` may commit at once (one phase): the writes and the commit record in one
   * atomic, durable write whose failure leaves nothing behind. PostgreSQL's cannot promise it:
   * a COMMIT can succeed while the connection dies, and a retry would apply the writes twice. */
  readonly onePhase: boolean
  /** Whether it keeps three-phase commit's states (precommitted, preaborted) and attempts. */
  readonly threePhase?: boolean
  /** Whether it runs `sql` operations (PostgreSQL's, lib/store/pg-sql.ts); a store without it
   * votes `no` on them. */
  readonly sql?: boolean
  /** Every record, oldest first; rebuilds the store's prepared work and locks as it goes. */
  load(): Promise<ParticipantRecord[]>
  /** Checks `ops` against the committed data and the locks (no wait) and, on `yes`, takes a
   * lock on every key they touch. Nothing is durable yet: `persist` of `prepared` makes it so. */
  check(txn: string, ops: readonly Op[], context?: PrepareContext): Promise<Verdict>
  /** Makes `record` durable; `apply` or `release` of the transaction's work is atomic with it. */
  /** `lazy`: the record may wait a moment to share a later flush (a store without group
   * commit ignores it); the promise still resolves only once it is durable. */
  persist(record: ParticipantRecord, effect?: Effect, lazy?: boolean): Promise<void>
  /** Drops the work and locks of a `yes` whose `prepared` record could not be made durable. */
  discard(txn: string): Promise<void>
  /** The committed value of `key`, or undefined when absent. */
  get(key: string): Promise<Json | undefined>
  list(prefix: string, limit: number): Promise<{ key: string; value: Json }[]>
  /** Keys locked now, by the transaction holding each. */
  locks(): Map<string, string>
  /** Forced writes so far (SQLite commits or PostgreSQL commits), for benchmarks and tests. */
  readonly flushes: number
  /** A store that checkpoints (see Checkpoints below) has these three. */
  readonly checkpoints?: Checkpoints<ParticipantRecord>
  close(): Promise<void>
}

/** Checkpoints of a log: a finished transaction's records folded into one (lib/core/
 * checkpoint.ts), kept apart from the live records that start-up reads. */
export interface Checkpoints<R> {
  /** Replaces `txn`'s records by `record`, with a later flush (atomically, nobody waits). */
  fold(txn: string, record: R): void
  /** The folded record of `txn`, if it was folded. */
  folded(txn: string): R | undefined
  /** Every record, folded or live, in log order: for views of the whole history. */
  history(): Iterable<R>
  /** What those views show of it, if the log can say so without parsing every record: `each`
   * called once for every transaction's outcome (a decision; committed or aborted), in log
   * order, or with `inLogOrder` false in any order. */
  outcomes?(each: (txn: string, outcome: string) => void, inLogOrder?: boolean): void
}

/** Thrown when the store cannot be reached (database down): the request may be retried. */
export class StoreUnavailable extends Error {}

/** What the coordinator needs from its log: DurableLog (SQLite) beside it, or the simulator's. */
export interface CoordinatorLog<R> {
  /** Every record, oldest first. */
  records(): R[]
  /** Resolves once `record` is durable; a `lazy` one may wait to share a later flush. */
  append(record: R, effect: undefined, lazy: boolean): Promise<void>
  /** Forced writes so far. */
  readonly flushes: number
  /** A log that checkpoints has these. */
  readonly checkpoints?: Checkpoints<R>
  /** Writes what is still pending, then closes (a log in a database: once it resolves). */
  close(): void | Promise<void>
}

/** A log several coordinators share (PostgreSQL: ./pg-log.ts), each under a lease. */
export interface SharedLog<R> extends CoordinatorLog<R> {
  /** Makes `txn` this coordinator's, durably, before anything of it is sent; false when the log
   * already has it; `orphan` when the log has it as this coordinator's and unfinished though
   * this one never ran it (its claim's answer was lost): it is to be recovered from the log. */
  claim(
    txn: string,
    participants: readonly string[],
    protocol: '2pc' | '3pc',
  ): Promise<boolean | 'orphan'>
  /** Every record of `txn`, whoever wrote it (empty: no coordinator on the log ran it). */
  lookup(txn: string): Promise<R[]>
  /** Renews this coordinator's lease (throws once it was taken over). */
  renew(): Promise<void>
  /** Takes over the coordinators whose lease ran out: the records of what is now this one's. */
  takeOver(): Promise<R[]>
  /** The unfinished transactions this coordinator owns on the log: to find one it lost track
   * of (a takeover or a claim that was written, but whose answer was lost). */
  unfinished(): Promise<string[]>
  /** The coordinators on the log. */
  members(): Promise<LogMember[]>
  readonly leaseMs: number
  /** Called once, when this coordinator finds its lease taken over. */
  onFenced: (error: Error) => void
}

export type LogMember = {
  url: string
  epoch: number
  leaseUntil: string
  live: boolean
  takenBy: string | null
}
