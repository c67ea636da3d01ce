// One-phase commit: a transaction with a single participant needs no vote to agree on, so the
// coordinator (the service, `env.onePhase`) asks it to prepare and commit in one step. Its rules:
// - the begin record is forced and carries the operations: the participant may commit on its
//   own, so a restarted coordinator must know to ask it again (onePhaseBegin, resumeOnePhase);
// - there is no prepare timeout: it is asked until it answers (hasPrepareTimeout);
// - the participant's outcome is the decision, already durable in its log (onOutcome);
// - the participant commits with one forced write and answers the outcome, and a repeated
//   one-phase prepare gets that outcome again (onOnePhaseChecked, repeatedOnePhase);
// - a store that cannot commit atomically in one step (PostgreSQL) takes two phases instead.
import {
  inFlight,
  lazyDone,
  opsOf,
  prepareTo,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorRecord,
  type CoordinatorTxn,
} from './coordinator.ts'
import {
  answerPrepare,
  outcomeReply,
  persistOf,
  type ParticipantAction,
  type ParticipantTxn,
} from './participant.ts'
import type { Decision } from './types.ts'

type Step = [CoordinatorTxn, CoordinatorAction[]]
type ParticipantStep = [ParticipantTxn, ParticipantAction[]]

export function commitsInOnePhase(participants: readonly string[], env: CoordinatorEnv): boolean {
  return env.onePhase === true && participants.length === 1
}

/** Forced, with the operations: a restart asks the participant again. */
export function onePhaseBegin(state: CoordinatorTxn): CoordinatorAction {
  const { txn, participants } = state
  const record: CoordinatorRecord = {
    type: 'begin',
    txn,
    participants,
    onePhase: true,
    ...opsOf(state),
  }
  return { type: 'persist', record }
}

/** One phase has no prepare timeout: the participant may have committed, so it is asked
 * again until it answers. */
export function hasPrepareTimeout(state: CoordinatorTxn): boolean {
  return state.onePhase !== true
}

/** The participant's own outcome is the decision. It is durable in the participant's log
 * already, so the record of it is lazy and settled; the begin record, forced, is what lets a
 * restarted coordinator ask again. */
export function onOutcome(state: CoordinatorTxn, from: string, decision: Decision): Step {
  if (state.phase !== 'preparing' || !state.onePhase || state.outstanding[from] === undefined) {
    return [state, []]
  }
  const next: CoordinatorTxn = {
    ...state,
    phase: 'done',
    decision,
    logged: true,
    votes: { [from]: decision === 'commit' ? 'yes' : 'no' },
    acks: [from],
    outstanding: {},
  }
  const record: CoordinatorRecord = {
    type: 'decision',
    txn: state.txn,
    decision,
    participants: state.participants,
  }
  return [next, [{ type: 'persist', record, lazy: true, settled: true }, lazyDone(state.txn)]]
}

/** After a restart: the participant may have committed before the crash; asking again is
 * safe, as it answers a repeated one-phase prepare with the outcome it recorded. */
export function resumeOnePhase(state: CoordinatorTxn): Step {
  const next = { ...state, outstanding: inFlight(state.participants, 0) }
  return [next, state.participants.map((to) => prepareTo(next, to))]
}

/** The participant's checks hold, so it commits now. The commit record (with the writes) is
 * the only forced write, and the answer is the outcome, not a vote. */
export function onOnePhaseChecked(state: ParticipantTxn): ParticipantStep {
  if (state.state !== 'unknown') return answerPrepare(state, true)
  const next: ParticipantTxn = { ...state, state: 'committed', vote: 'yes' }
  return [next, [persistOf(next, 'apply'), outcomeReply(state.txn, 'committed')]]
}

/** A repeated one-phase prepare learns the outcome it already caused. */
export function repeatedOnePhase(state: ParticipantTxn): ParticipantStep {
  return [state, [outcomeReply(state.txn, 'committed')]]
}
