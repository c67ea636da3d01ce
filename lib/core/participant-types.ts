// The participant's words: its view of a transaction, its records, events, actions, replies.
import type { Op } from './ops.ts'
import type { CoordinatorAnswer } from './termination.ts'
import type { Ballot, Decision, Vote } from './types.ts'

/** A participant's state of one transaction. A `prepared` participant has promised to commit on
 * request: it must never abort on its own (only a decision or an operator's heuristic moves it).
 * In three-phase commit it may move on to `precommitted` or `preaborted` (./three-phase.ts). */
export type ParticipantState =
  'unknown' | 'prepared' | 'precommitted' | 'preaborted' | 'committed' | 'aborted'

/** What a three-phase participant keeps besides its state (E3PC, ./three-phase.ts). */
export type ThreePhase = Readonly<{
  /** This participant as the coordinator names it among `peers` (all the participants). */
  self: string
  /** The last attempt it took part in: 0 is the coordinator's, 1 and on are terminations run
   * by an elected participant. A message of an older attempt is refused. Durable. */
  lastElected: number
  /** The last attempt in which it moved to precommitted or preaborted; -1: none. Durable. */
  lastAttempt: number
  /** The attempt it runs itself as the elected terminator, if any (in memory only). */
  terminating: Terminating | null
  /** The highest attempt it has heard of, to start the next one above it (in memory only). */
  highest: number
}>

/** A termination attempt this participant runs: collecting states, then pre-committing or
 * pre-aborting the members that joined, then deciding once a quorum of them moved. */
export type Terminating = Readonly<{
  attempt: number
  phase: 'collecting' | 'precommit' | 'preabort'
  members: readonly string[]
}>

/** What a participant tells a terminator that asked for its state in `attempt`. */
export type StateReport = Readonly<{
  state: ParticipantState
  lastElected: number
  lastAttempt: number
}>

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
  /** Other coordinators on the same shared log, asked in turn when `coordinator` gives no
   * answer (it may be gone: another took over its transactions). */
  coordinators?: readonly string[]
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
  /** Set for a three-phase transaction. */
  three?: ThreePhase
}>

/** What a participant persists. Replaying these records in order rebuilds its state. */
export type ParticipantRecord = Readonly<{
  txn: string
  state: 'prepared' | 'precommitted' | 'preaborted' | 'committed' | 'aborted'
  vote?: Vote
  reason?: string
  heuristic?: boolean
  coordinator?: string
  coordinators?: readonly string[]
  peers?: readonly string[]
  /** When it was logged (ms). */
  at?: number
  /** The digest of the operations a yes was given on. */
  digest?: string
  /** Three-phase commit: who it is among `peers`, and its attempt numbers. */
  three?: { self: string; lastElected: number; lastAttempt: number }
}>

/** Whom the participant asks if the transaction ends up in doubt, and when it was prepared. */
export type PrepareContext = {
  coordinator?: string
  coordinators?: readonly string[]
  peers?: readonly string[]
  at?: number
  /** Three-phase: who it is among `peers` (a store that recovers in doubt needs it). */
  three?: { self: string }
}

export type ParticipantEvent =
  | {
      type: 'prepare'
      txn: string
      now?: number
      coordinator?: string
      coordinators?: readonly string[]
      peers?: readonly string[]
      /** The only participant: prepare and commit in one step, answering the outcome. */
      onePhase?: boolean
      /** The data work this participant is asked to prepare. */
      ops?: readonly Op[]
      /** Part of a batch: its outcome record (a `no`, a one-phase commit) may share a flush. */
      shareFlush?: boolean
      /** A digest of `ops` (the shell's): what a repeated prepare is compared by. */
      opsDigest?: string
      /** Three-phase commit, and who this participant is among `peers`. */
      three?: { self: string }
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
  /** Three-phase: move to precommitted or preaborted in `attempt` (0: the coordinator's). */
  | {
      type: 'pre'
      txn: string
      decision: Decision
      attempt: number
      now: number
      shareFlush?: boolean
    }
  /** Three-phase: a terminator elected for `attempt` asks for our state. */
  | { type: 'state-request'; txn: string; attempt: number; now: number }
  /** Three-phase: what the members asked in our own `attempt` reported (null: no answer). */
  | {
      type: 'state-reports'
      txn: string
      attempt: number
      reports: readonly PeerReport[]
      now: number
    }
  /** Three-phase: which of the members asked to move in our `attempt` did. */
  | { type: 'pre-acks'; txn: string; attempt: number; acked: readonly string[]; now: number }

/** A peer's answer to our state request: its report, a refusal naming the later attempt it is
 * in, or null when it did not answer. */
export type PeerReport =
  | { peer: string; report: StateReport }
  | { peer: string; superseded: number }
  | { peer: string; report: null }

export type Reply =
  | { kind: 'vote'; txn: string; vote: Ballot; reason: string | null }
  /** Three-phase: it moved to precommitted or preaborted in `attempt`. */
  | { kind: 'pre'; txn: string; state: 'precommitted' | 'preaborted'; attempt: number }
  /** Three-phase: its state, for the terminator of `attempt`. */
  | { kind: 'report'; txn: string; attempt: number; report: StateReport }
  /** Three-phase: a message of an attempt older than the one it is in (`lastElected`). */
  | { kind: 'superseded'; txn: string; lastElected: number }
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
  /** Three-phase: the state to return to should the write fail (what the disk holds). */
  undo?: ParticipantTxn
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
  /** Three-phase termination: ask every other participant for its state in `attempt`
   * (`state-reports`)… */
  | { type: 'ask-states'; txn: string; attempt: number; peers: readonly string[] }
  /** …tell the members to move in `attempt` (`pre-acks`)… */
  | { type: 'send-pre'; txn: string; attempt: number; decision: Decision; to: readonly string[] }
  /** …and tell every other participant the outcome (nobody waits for their answers). */
  | { type: 'tell-outcome'; txn: string; decision: Decision; to: readonly string[] }
  | PersistAction
  /** Let go of the work and locks a check took, whose record never became durable. */
  | { type: 'discard'; txn: string }
  | { type: 'reply'; reply: Reply }

export type Effect = 'apply' | 'release'
