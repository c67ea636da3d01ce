// Three-phase commit at the coordinator (lib/core/three-phase-coordinator.ts): the precommit
// record before any precommit, commit only with a quorum, no timeout after precommit, what a
// participant's outcome tells it, and a restart that precommits again.
import { expect, test } from 'bun:test'
import {
  begin,
  coordinatorStep,
  recoverCoordinator,
  resume,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorEvent,
  type CoordinatorRecord,
  type CoordinatorTxn,
} from '../../lib/core/index.ts'

const PS = ['p0', 'p1', 'p2']
const env: CoordinatorEnv = { prng: () => 0, timeoutMs: 1000, backoff: { baseMs: 10, capMs: 100 } }
const step = (s: CoordinatorTxn, e: CoordinatorEvent) => coordinatorStep(s, e, env)
const kinds = (actions: CoordinatorAction[]) =>
  actions.map((a) =>
    a.type === 'send' ? `send ${a.message.type} ${a.to}` : `persist ${a.record.type}`,
  )

/** Every participant voted yes. */
function votedYes(): [CoordinatorTxn, CoordinatorAction[]] {
  let [state] = begin('t', PS, 0, env, {}, '3pc')
  let actions: CoordinatorAction[] = []
  for (const from of PS) [state, actions] = step(state, { type: 'vote', from, vote: 'yes', now: 1 })
  return [state, actions]
}

test('a three-phase prepare names every participant and the protocol', () => {
  const [, actions] = begin('t', PS, 0, env, {}, '3pc')
  const send = actions.find((a) => a.type === 'send')
  expect(send).toMatchObject({ message: { type: 'prepare', participants: PS, protocol: '3pc' } })
})

test('all yes: the precommit record is forced, then precommit goes to everyone', () => {
  const [state, actions] = votedYes()
  expect(state.phase).toBe('precommitting')
  expect(kinds(actions)).toEqual(['persist precommit', 'send pre p0', 'send pre p1', 'send pre p2'])
  expect(actions[0]).not.toHaveProperty('lazy')
})

test('commit is decided (forced, then sent) once a quorum is precommitted, not before', () => {
  const [state] = votedYes()
  const [one, none] = step(state, { type: 'pre-ack', from: 'p0', now: 2 })
  expect([one.phase, none]).toEqual(['precommitting', []])
  const [two, actions] = step(one, { type: 'pre-ack', from: 'p1', now: 3 })
  expect([two.phase, two.decision, two.precommitted]).toEqual(['deciding', 'commit', ['p0', 'p1']])
  expect(kinds(actions)).toEqual([
    'persist decision',
    'send decide p0',
    'send decide p1',
    'send decide p2',
  ])
})

test('no timeout after precommit: the clock alone never aborts it', () => {
  const [state] = votedYes()
  const [later, actions] = step(state, { type: 'tick', now: 1_000_000 })
  expect([later.phase, later.decision, actions]).toEqual(['precommitting', null, []])
})

test('an outcome a termination reached without the coordinator is recorded and sent', () => {
  const [state] = votedYes()
  const [next, actions] = step(state, { type: 'outcome', from: 'p2', decision: 'abort', now: 4 })
  expect(next.decision).toBe('abort')
  expect(kinds(actions)[0]).toBe('persist decision')
})

test('after a restart, a transaction precommitting is sent precommit again, never aborted', () => {
  const records = [
    { type: 'begin', txn: 't', participants: PS, protocol: '3pc' },
    { type: 'precommit', txn: 't', participants: PS },
  ] as const
  const recovered = recoverCoordinator(records, 10).get('t')!
  expect([recovered.phase, recovered.protocol]).toEqual(['precommitting', '3pc'])
  const [again, actions] = resume(recovered, env, 10)
  expect(again.decision).toBeNull()
  expect(kinds(actions)).toEqual(['send pre p0', 'send pre p1', 'send pre p2'])
})

test('while the precommit record is unwritten, nothing that depends on it is sent', () => {
  const [state, actions] = votedYes()
  const { record } = actions[0] as { record: CoordinatorRecord }
  const failed: CoordinatorEvent = { type: 'persist-failed', record, lazy: false, now: 2 }
  const [unlogged] = step(state, failed)
  // A retry of a precommit falls due before the record's own rewrite: it waits.
  const due = step(unlogged, { type: 'unreachable', to: 'p0', now: 2 })[0]
  const [, sends] = step(
    { ...due, unlogged: { ...due.unlogged!, retryAt: 10_000 } },
    { type: 'tick', now: 100 },
  )
  expect(sends).toEqual([])
})

test('a read-only vote counts as no: a participant that forgot cannot be precommitted', () => {
  let [state] = begin('t', PS, 0, env, {}, '3pc')
  ;[state] = step(state, { type: 'vote', from: 'p0', vote: 'read-only', now: 1 })
  expect([state.decision, state.votes.p0]).toEqual(['abort', 'no'])
})
