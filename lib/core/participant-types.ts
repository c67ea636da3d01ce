// The participant's words: its view of a transaction, its records, events, actions, replies.
import type { Op } from './ops.ts'
import type { CoordinatorAnswer } from './termination.ts'
import type { Ballot, Decision, Vote } from './types.ts'

/** A participant's state of one transaction. A `prepared` participant has promised to commit on
 * request: it must never abort on its own (only a decision or an operator's heuristic moves it). */
export type ParticipantState = 'unknown' | 'prepared' | 'committed' | 'aborted'

export type ParticipantTxn = Readonly<{
  txn: string
  state: ParticipantState
  /** The vote this participant gave, if it voted. */
  vote: Vote | null
  reason: string | null
  /** Set when an operator forced the outcome (`resolve`) instead of the coordinator. */
  heuristic: boolean
  /** Whom a prepared participant in doubt asks: the coordinator's URL and all participants'. */
  coordinator: string | null
  peers: readonly string[]
  /** When the yes vote was logged (ms); the in-doubt clock starts here. */
  preparedAt: number | null
  /** When to ask next about the outcome; null while a question is out or when not prepared. */
  askAt: number | null
  /** How many times it has asked without learning the outcome. */
  asks: number
  /** A digest of the operations it voted on (computed by the shell), so that a repeated
   * prepare carrying other operations is refused instead of answered with this vote. */
  digest: string | null
}>

/** What a participant persists. Replaying these records in order rebuilds its state. */
export type ParticipantRecord = Readonly<{
  txn: string
  state: 'prepared' | 'committed' | 'aborted'
  vote?: Vote
  reason?: string
  heuristic?: boolean
  coordinator?: string
  peers?: readonly string[]
  /** When it was logged (ms). */
  at?: number
  /** The digest of the operations a yes was given on. */
  digest?: string
}>

/** Whom the participant asks if the transaction ends up in doubt, and when it was prepared. */
export type PrepareContext = { coordinator?: string; peers?: readonly string[]; at?: number }

export type ParticipantEvent =
  | {
      type: 'prepare'
      txn: string
      now?: number
      coordinator?: string
      peers?: readonly string[]
      /** The only participant: prepare and commit in one step, answering the outcome. */
      onePhase?: boolean
      /** The data work this participant is asked to prepare. */
      ops?: readonly Op[]
      /** Part of a batch: its outcome record (a `no`, a one-phase commit) may share a flush. */
      shareFlush?: boolean
      /** A digest of `ops` (the shell's): what a repeated prepare is compared by. */
      opsDigest?: string
    }
  /** The result of the resource's own check (votes.txt, data ops), asked for by a `check`. */
  | {
      type: 'checked'
      txn: string
      vote: Ballot
      reason?: string
      now?: number
      /** The operations only read: whatever the verdict, nothing is kept (see onChecked). */
      readOnly?: boolean
      /** Asked in one phase: a yes commits at once. */
      onePhase?: boolean
      shareFlush?: boolean
    }
  /** `shareFlush`: the outcome record may wait a moment to share a later flush (a batch's
   * commits then share the fsync of the prepares that follow them). */
  | { type: 'decide'; txn: string; decision: Decision; shareFlush?: boolean }
  /** An operator's forced outcome for a transaction whose coordinator is gone for good. */
  | { type: 'resolve'; txn: string; decision: Decision }
  /** A peer in doubt asks what we know (cooperative termination). */
  | { type: 'decision-request'; txn: string }
  | { type: 'tick'; txn: string; now: number }
  /** What the coordinator said when asked in doubt; null when it gave no answer we understand. */
  | { type: 'coordinator-answer'; txn: string; answer: CoordinatorAnswer | null; now: number }
  /** What the peers said when asked in doubt: their states, null for those that did not answer. */
  | { type: 'peer-answers'; txn: string; states: readonly unknown[]; now: number }
  /** The store could not make `action`'s record durable (disk full, database down). */
  | { type: 'persist-failed'; txn: string; action: PersistAction; error: string; now: number }

export type Reply =
  | { kind: 'vote'; txn: string; vote: Ballot; reason: string | null }
  | { kind: 'outcome'; txn: string; state: 'committed' | 'aborted' }
  | { kind: 'uncertain'; txn: string }
  | { kind: 'conflict'; txn: string; error: string }
  /** The store failed: nothing changed, and the request may be retried (503). */
  | { kind: 'unavailable'; txn: string; error: string }

/** Make `record` durable; with `effect`, atomically with it: `apply` makes the prepared work
 * visible, `release` drops it; either way its locks are released. An `optional` record may be
 * lost (a `no` vote: under presumed abort, forgetting it is safe). `shareFlush`: it may wait a
 * moment for a later flush; what follows it still waits until it is durable. */
export type PersistAction = {
  type: 'persist'
  record: ParticipantRecord
  effect?: Effect
  optional?: true
  shareFlush?: true
}

export type ParticipantAction =
  /** Ask the resource (votes.txt, the store) for its verdict on `ops`; it answers `checked`,
   * echoing `readOnly`, `onePhase` and `shareFlush`. A `yes` takes the locks. */
  | {
      type: 'check'
      txn: string
      ops: readonly Op[]
      context: PrepareContext
      readOnly?: true
      onePhase?: true
      shareFlush?: true
    }
  /** In doubt: ask the coordinator first (it answers `coordinator-answer`)… */
  | { type: 'ask-coordinator'; txn: string; coordinator: string }
  /** …then every peer, in parallel (`peer-answers`): cooperative termination. */
  | { type: 'ask-peers'; txn: string; peers: readonly string[] }
  | PersistAction
  /** Let go of the work and locks a check took, whose record never became durable. */
  | { type: 'discard'; txn: string }
  | { type: 'reply'; reply: Reply }

export type Effect = 'apply' | 'release'
