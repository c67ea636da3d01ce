// Presumed abort: a transaction the coordinator has no durable commit record of is aborted.
// Both modes presume abort; its rules:
// - only a commit decision must be forced; the begin record is lazy (lazyBegin), and so is the
//   done record (lazyDone in ./coordinator.ts);
// - a restart aborts what the log shows still preparing (resumePreparing), unless the
//   coordinator prepares it again (`retryUndecided`: the batch coordinator);
// - asked about a transaction it has no record of, the coordinator answers `unknown`, which
//   means abort (coordinatorAnswer and outcomeFromCoordinator in ./termination.ts);
// - a participant's `no` record may be lost (optional in ./participant.ts);
// - with `env.lazyAborts` (the service) an abort is not forced either, is sent once and never
//   acknowledged: a participant that missed it asks when in doubt and hears abort
//   (abortsLazily, resumeLazyAbort). The classic batch coordinator waits for every ack.
import {
  decide,
  decideTo,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorTxn,
} from './coordinator.ts'
import type { Decision } from './types.ts'

type Step = [CoordinatorTxn, CoordinatorAction[]]

/** Lazy: a restart that finds no record of the transaction presumes it aborted; the record
 * only lets a restarted coordinator tell the participants at once (or, with `retryUndecided`,
 * ask them again: then it carries the operations). */
export function lazyBegin(state: CoordinatorTxn, env: CoordinatorEnv): CoordinatorAction {
  const { txn, participants } = state
  const ops = env.retryUndecided && state.ops ? { ops: state.ops } : {}
  const protocol = state.protocol ? { protocol: state.protocol } : {}
  const record = { type: 'begin', txn, participants, ...ops, ...protocol } as const
  return { type: 'persist', record, lazy: true }
}

/** Whether `decision` is an abort that is neither forced nor acknowledged. */
export function abortsLazily(decision: Decision, env: CoordinatorEnv): boolean {
  return decision === 'abort' && env.lazyAborts === true
}

/** After a restart, a transaction still preparing is aborted. */
export function resumePreparing(state: CoordinatorTxn, env: CoordinatorEnv): Step {
  return decide({ ...state, votes: {} }, 'abort', env)
}

/** After a restart, a lazy abort found in the log is sent once more, and is done. */
export function resumeLazyAbort(state: CoordinatorTxn): Step {
  const next = { ...state, phase: 'done' as const, outstanding: {} }
  return [next, state.participants.map((to) => decideTo(next, to))]
}
