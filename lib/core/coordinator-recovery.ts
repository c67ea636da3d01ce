// A restarted coordinator: its state rebuilt from the log, then each transaction resumed.
import { resumeOnePhase } from './one-phase.ts'
import { abortsLazily, resumeLazyAbort, resumePreparing } from './presumed-abort.ts'
import { precommitTo } from './three-phase-coordinator.ts'
import {
  decideTo,
  inFlight,
  opsOf,
  prepareTo,
  preparing,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorRecord,
  type CoordinatorTxn,
} from './coordinator.ts'

type Step = [CoordinatorTxn, CoordinatorAction[]]

/** After a restart: a transaction still preparing is aborted (presumed abort) or, with
 * `retryUndecided`, prepared again; a decided one has its decision sent again to everyone who
 * has not acknowledged it. */
export function resume(state: CoordinatorTxn, env: CoordinatorEnv, now: number): Step {
  if (state.phase === 'preparing' && state.onePhase) return resumeOnePhase(state)
  if (state.phase === 'preparing' && env.retryUndecided) return prepareAgain(state, env, now)
  if (state.phase === 'preparing') return resumePreparing(state, env)
  if (state.phase === 'done') return [state, []]
  if (state.phase === 'precommitting') {
    const next = { ...state, acks: [], outstanding: inFlight(state.participants, 0) }
    return [next, state.participants.map((to) => precommitTo(next, to))]
  }
  if (state.decision === 'abort' && abortsLazily('abort', env)) return resumeLazyAbort(state)
  const pending = Object.keys(state.outstanding)
  const next = { ...state, outstanding: inFlight(pending, 0) }
  return [next, pending.map((to) => decideTo(next, to))]
}

/** No decision was logged, so none was sent: asking every participant again is as safe as the
 * first time. One that voted yes answers yes again; one that aborted meanwhile (it voted no,
 * or a peer in doubt asked it) answers no. */
export function prepareAgain(state: CoordinatorTxn, env: CoordinatorEnv, now: number): Step {
  const next: CoordinatorTxn = {
    ...state,
    votes: {},
    reasons: {},
    deadline: now + env.timeoutMs,
    outstanding: inFlight(state.participants, 0),
  }
  return [next, state.participants.map((to) => prepareTo(next, to))]
}

/** Rebuilds every transaction's state from the coordinator's records, in their order. */
export function recoverCoordinator(
  records: Iterable<CoordinatorRecord>,
  now: number,
): Map<string, CoordinatorTxn> {
  const txns = new Map<string, CoordinatorTxn>()
  for (const r of records) {
    let prior = txns.get(r.txn)
    if (r.type === 'begin') {
      const begun = { ...preparing(r.txn, r.participants), deadline: now }
      const protocol = r.protocol ? { protocol: r.protocol } : {}
      const onePhase = r.onePhase ? { onePhase: true as const } : {}
      txns.set(r.txn, { ...begun, ...onePhase, ...opsOf(r), ...protocol })
    } else if (r.type === 'precommit') {
      // Precommit was being sent: after a restart it is sent again, never aborted.
      prior ??= preparing(r.txn, r.participants)
      const outstanding = inFlight(r.participants, 0)
      txns.set(r.txn, { ...prior, phase: 'precommitting', protocol: '3pc', acks: [], outstanding })
    } else if (r.type === 'decision' && (prior || r.participants)) {
      prior ??= preparing(r.txn, r.participants!)
      // Acks are not logged, so after a restart everyone owed the decision is sent it again.
      const owed = r.to ?? prior.participants
      const acks = prior.participants.filter((id) => !owed.includes(id))
      const outstanding = inFlight(owed, 0)
      const phase: CoordinatorTxn['phase'] = owed.length === 0 ? 'done' : 'deciding' // owed none
      const protocol = r.protocol ? { protocol: r.protocol } : {}
      const decided = { phase, decision: r.decision, logged: true, acks, outstanding, ...protocol }
      txns.set(r.txn, { ...prior, ...decided })
    } else if (prior && r.type === 'done') {
      txns.set(r.txn, { ...prior, phase: 'done', acks: prior.participants, outstanding: {} })
    }
  }
  return txns
}
