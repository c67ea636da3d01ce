// A batch coordinator's restart (`retryUndecided`, lib/core/coordinator-recovery.ts): a
// transaction begun and never decided is prepared again, with its operations, rather than
// aborted; without the flag (the service) it is aborted, as presumed abort has it.
import { expect, test } from 'bun:test'
import {
  begin,
  recoverCoordinator,
  resume,
  type CoordinatorEnv,
  type CoordinatorRecord,
  type Op,
} from '../../lib/core/index.ts'

const T = 't1'
const PS: readonly string[] = ['p0', 'p1']
const ops: Record<string, Op[]> = {
  p0: [{ op: 'add', key: 'a', amount: -1 }],
  p1: [{ op: 'add', key: 'b', amount: 1 }],
}
const service: CoordinatorEnv = {
  prng: () => 0,
  timeoutMs: 1000,
  backoff: { baseMs: 10, capMs: 80 },
}
const batch: CoordinatorEnv = { ...service, retryUndecided: true }

function beginRecord(env: CoordinatorEnv): CoordinatorRecord {
  const [, [persist]] = begin(T, PS, 0, env, ops)
  if (persist?.type !== 'persist' || !persist.lazy) throw new Error('expected a lazy begin')
  return persist.record
}

test('the begin record carries the operations only where a restart asks again', () => {
  expect(beginRecord(batch)).toEqual({ type: 'begin', txn: T, participants: PS, ops })
  expect(beginRecord(service)).toEqual({ type: 'begin', txn: T, participants: PS })
})

test('restarted, a batch coordinator prepares an undecided transaction again', () => {
  const [recovered] = [...recoverCoordinator([beginRecord(batch)], 5000).values()]
  const [state, actions] = resume(recovered!, batch, 5000)
  expect(state.phase).toBe('preparing')
  expect(state.deadline).toBe(6000)
  expect(actions).toEqual(
    PS.map((to) => ({
      type: 'send',
      to,
      message: { type: 'prepare', txn: T, participants: PS, ops: ops[to] },
    })),
  )
})

test('restarted, the service aborts it (presumed abort)', () => {
  const [recovered] = [...recoverCoordinator([beginRecord(service)], 5000).values()]
  const [state, actions] = resume(recovered!, service, 5000)
  expect(state.decision).toBe('abort')
  expect(actions[0]).toMatchObject({ type: 'persist', record: { type: 'decision' } })
})

test('a decided transaction is never prepared again: its decision is sent again', () => {
  const decision: CoordinatorRecord = { type: 'decision', txn: T, decision: 'abort' }
  const [recovered] = [...recoverCoordinator([beginRecord(batch), decision], 5000).values()]
  const [state, actions] = resume(recovered!, batch, 5000)
  expect(state.decision).toBe('abort')
  expect(actions.every((a) => a.type === 'send' && a.message.type === 'decide')).toBe(true)
})
