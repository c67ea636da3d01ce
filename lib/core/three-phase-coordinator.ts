// Three-phase commit at the coordinator: attempt 0 of E3PC (./three-phase.ts has the
// participants' side and their termination). Its rules:
// - prepare as in two-phase commit; a `no` or the prepare timeout aborts, as nobody can be
//   precommitted yet (no read-only votes and no one-phase commit: every participant counts in
//   the quorums);
// - all `yes`: the precommit record is forced, then precommit is sent to every participant;
// - once a quorum (a majority) is precommitted, commit is decided, forced and sent to all;
// - there is no timeout after precommit: a participant that answers with an outcome (it was
//   terminated without us) tells the decision, which is then recorded and sent; one that is in
//   a later termination attempt refuses, and is asked again after a backoff;
// - after a restart, a transaction precommitting is sent precommit again, never aborted.
import { quorum } from './three-phase.ts'
import type { CoordinatorAction, CoordinatorEnv, CoordinatorTxn } from './coordinator-types.ts'
import { decide, inFlight } from './coordinator.ts'
import type { Decision } from './types.ts'

type Step = [CoordinatorTxn, CoordinatorAction[]]

/** Every participant voted yes: force the precommit record, then send precommit to all. */
export function precommit(state: CoordinatorTxn): Step {
  const next: CoordinatorTxn = {
    ...state,
    phase: 'precommitting',
    acks: [],
    outstanding: inFlight(state.participants, 0),
  }
  const record = { type: 'precommit', txn: state.txn, participants: state.participants } as const
  return [
    next,
    [{ type: 'persist', record }, ...state.participants.map((to) => precommitTo(next, to))],
  ]
}

export function precommitTo(state: CoordinatorTxn, to: string): CoordinatorAction {
  return { type: 'send', to, message: { type: 'pre', txn: state.txn } }
}

/** A participant is precommitted: with a quorum of them, commit. */
export function onPreAck(state: CoordinatorTxn, from: string, env: CoordinatorEnv): Step {
  if (state.phase !== 'precommitting' || state.outstanding[from] === undefined) return [state, []]
  if (state.unlogged !== null) return [state, []] // the precommit record is not durable yet
  const outstanding: Record<string, CoordinatorTxn['outstanding'][string]> = {}
  for (const id in state.outstanding) if (id !== from) outstanding[id] = state.outstanding[id]!
  const next: CoordinatorTxn = { ...state, acks: [...state.acks, from], outstanding }
  if (next.acks.length < quorum(state.participants.length)) return [next, []]
  return decide({ ...next, precommitted: next.acks }, 'commit', env)
}

/** A participant answered precommit with its outcome: a termination decided without us. */
export function onLearned(state: CoordinatorTxn, decision: Decision, env: CoordinatorEnv): Step {
  if (state.phase !== 'precommitting') return [state, []]
  return decide({ ...state, precommitted: state.acks }, decision, env)
}
