// The coordinator's words: its view of a transaction, its records, messages, events, actions.
import type { Backoff } from './backoff.ts'
import type { Op } from './ops.ts'
import type { Ballot, Decision, Prng } from './types.ts'

/** `precommitting`: three-phase commit, between the votes and the decision (./three-phase-
 * coordinator.ts). */
export type CoordinatorPhase = 'preparing' | 'precommitting' | 'deciding' | 'done'

/** One outstanding message to a participant: `retryAt` is null while a send is in flight. */
export type Retry = Readonly<{ attempt: number; retryAt: number | null }>

export type CoordinatorTxn = Readonly<{
  txn: string
  participants: readonly string[]
  phase: CoordinatorPhase
  /** Set once, never changed. A commit is logged before anyone hears of it; a presumed abort
   * may be sent first (a lost one is still an abort); a one-phase decision is the participant's
   * own outcome, durable in its log. */
  decision: Decision | null
  /** The decision is durable (or, in one phase, settled by the participant's own log): only
   * then is anyone asking told it, and the client answered. */
  logged: boolean
  /** A record the log could not write, to be written again at `retryAt` (null while it is
   * being written): what depends on it (the sends after a forced one, the client's answer
   * after a decision) waits for it. */
  unlogged: Unlogged | null
  votes: Readonly<Record<string, Ballot>>
  reasons: Readonly<Record<string, string>>
  acks: readonly string[]
  /** Participants that refused the decision (a heuristic outcome contradicts it). */
  refusals: Readonly<Record<string, string>>
  /** Until when prepare may take; after it, a participant that has not voted counts as `no`. */
  deadline: number
  /** Participants that still owe a vote (preparing) or an acknowledgement (deciding). */
  outstanding: Readonly<Record<string, Retry>>
  /** The data operations each participant is asked to prepare (in memory only where a restart
   * aborts an undecided transaction; logged with the begin record in one phase and with
   * `retryUndecided`, where a restart asks the participants again). */
  ops?: Readonly<Record<string, readonly Op[]>>
  /** One participant, asked to prepare and commit in one step: its outcome is the decision. */
  onePhase?: true
  /** Three-phase commit (while precommitting, `acks` holds who precommitted). */
  protocol?: '3pc'
  /** Three-phase: who was precommitted when commit was decided (a quorum at least). */
  precommitted?: readonly string[]
}>

export type Unlogged = Readonly<{
  record: CoordinatorRecord
  lazy: boolean
  attempt: number
  retryAt: number | null
}>

export type CoordinatorRecord =
  | {
      type: 'begin'
      txn: string
      participants: readonly string[]
      /** One phase, or `retryUndecided`: the operations too, since a restart asks again. */
      onePhase?: true
      ops?: Readonly<Record<string, readonly Op[]>>
      protocol?: '3pc'
    }
  /** Three-phase: every participant voted yes and precommit is being sent; forced, so that a
   * restart never aborts what a quorum may have precommitted. */
  | { type: 'precommit'; txn: string; participants: readonly string[] }
  /** `participants` makes a decision recoverable without its (lazy) begin record; `to`, when
   * not all of them, names those owed it (not the `no` and `read-only` voters). */
  | {
      type: 'decision'
      txn: string
      decision: Decision
      participants?: readonly string[]
      to?: readonly string[]
      /** Three-phase (kept by a checkpoint's folded record). */
      protocol?: '3pc'
    }
  | { type: 'done'; txn: string }

export type CoordinatorMessage =
  | {
      type: 'prepare'
      txn: string
      participants: readonly string[]
      ops?: readonly Op[]
      onePhase?: true
      /** Three-phase: the recipient is told who it is among `participants`. */
      protocol?: '3pc'
    }
  | { type: 'decide'; txn: string; decision: Decision }
  /** Three-phase: precommit, in the coordinator's attempt (0). */
  | { type: 'pre'; txn: string }

export type CoordinatorEvent =
  | { type: 'vote'; from: string; vote: Ballot; reason?: string; now: number }
  | { type: 'ack'; from: string; now: number }
  /** Three-phase: the participant is precommitted (durably). */
  | { type: 'pre-ack'; from: string; now: number }
  /** A one-phase participant's answer: it committed (or aborted) on its own. */
  | { type: 'outcome'; from: string; decision: Decision; now: number }
  /** The participant answered the decision with a refusal (409): its outcome differs. */
  | { type: 'refused'; from: string; error: string; now: number }
  /** A send got no answer (refused connection, timeout, 5xx): try again after a backoff. */
  | { type: 'unreachable'; to: string; now: number }
  | { type: 'tick'; now: number }
  /** `record` is durable now. */
  | { type: 'logged'; record: CoordinatorRecord }
  /** The log could not write `record` (disk full, I/O error); nothing after it was done. */
  | { type: 'persist-failed'; record: CoordinatorRecord; lazy: boolean; now: number }

export type CoordinatorAction =
  /** `lazy`: nothing after it waits for it, and a crash may lose it; it only saves work.
   * `settled`: the decision it records is already durable elsewhere (a one-phase participant's
   * log), so it may be told before this record is written. */
  | { type: 'persist'; record: CoordinatorRecord; lazy?: true; settled?: true }
  | { type: 'send'; to: string; message: CoordinatorMessage }

export type CoordinatorEnv = Readonly<{
  prng: Prng
  timeoutMs: number
  backoff: Backoff
  /** Aborts are neither forced nor acknowledged: the abort record rides a later flush, each
   * participant is sent the abort once, and the transaction is done. One that misses it asks
   * when in doubt and hears abort, as it would about a transaction never heard of. Both modes
   * presume abort; the classic batch coordinator keeps this off and waits for every
   * participant to acknowledge its abort. */
  lazyAborts?: boolean
  /** After a restart, a transaction begun and never decided is prepared again instead of
   * aborted (the batch coordinator: the operator asked for it, and no decision was sent, so
   * nobody can hold another outcome; a participant that aborted meanwhile votes no). Its begin
   * record then carries the operations. */
  retryUndecided?: boolean
  /** A transaction with a single participant is committed in one phase (the service's mode). */
  onePhase?: boolean
  /** Other coordinators answer from this log (a shared log in PostgreSQL): a decision settled
   * elsewhere (one phase: the participant's log holds it) is still written again when its
   * write fails, or they would answer it as undecided. */
  sharedLog?: boolean
}>
