// A write the log or store could not make (a full disk, an I/O error), in the cores
// (lib/core/coordinator.ts, lib/core/participant.ts): nothing of the failed step happened, a
// decision is written again rather than changed or told, and a participant keeps what is on
// its disk. Each row names the rule it checks.
import { describe, expect, test } from 'bun:test'
import {
  begin,
  coordinatorAnswer,
  coordinatorStep,
  participantStep,
  unknownTxn,
  wakeAt,
  type CoordinatorEnv,
  type CoordinatorEvent,
  type CoordinatorRecord,
  type CoordinatorTxn,
  type ParticipantEnv,
  type ParticipantEvent,
  type ParticipantTxn,
  type PersistAction,
} from '../../lib/core/index.ts'

const T = 't1'
const PS = ['p0', 'p1'] as const
const env: CoordinatorEnv = { prng: () => 0, timeoutMs: 1000, backoff: { baseMs: 10, capMs: 80 } }
const lazy: CoordinatorEnv = { ...env, lazyAborts: true }

function step(state: CoordinatorTxn, event: CoordinatorEvent, e = env) {
  return coordinatorStep(state, event, e)
}

/** Both voted yes: the commit decision is the step's first action, forced, then its sends. */
function committing(): [CoordinatorTxn, CoordinatorRecord] {
  let [state] = begin(T, PS, 0, env)
  ;[state] = step(state, { type: 'vote', from: 'p0', vote: 'yes', now: 1 })
  const [decided, actions] = step(state, { type: 'vote', from: 'p1', vote: 'yes', now: 2 })
  const first = actions[0]!
  if (first.type !== 'persist' || first.lazy) throw new Error('expected a forced persist first')
  return [decided, first.record]
}

describe('the coordinator', () => {
  test('a failed commit write is written again after a backoff, with the sends it held', () => {
    const [decided, record] = committing()
    const [failed, none] = step(decided, { type: 'persist-failed', record, lazy: false, now: 3 })
    expect(none).toEqual([])
    expect(failed.unlogged).toEqual({ record, lazy: false, attempt: 0, retryAt: 8 })
    expect(wakeAt(failed)).toBe(8)
    expect(step(failed, { type: 'tick', now: 7 })[1]).toEqual([]) // not yet due
    const [again, actions] = step(failed, { type: 'tick', now: 8 })
    const decide = { type: 'decide', txn: T, decision: 'commit' } as const
    expect(actions).toEqual([
      { type: 'persist', record },
      { type: 'send', to: 'p0', message: decide },
      { type: 'send', to: 'p1', message: decide },
    ])
    expect(again.decision).toBe('commit') // never changed
    const [done] = step(again, { type: 'logged', record })
    expect(done.logged).toBe(true)
    expect(done.unlogged).toBeNull()
  })

  test('a decision not yet durable is told to nobody: the coordinator says preparing', () => {
    const [decided, record] = committing()
    expect(coordinatorAnswer(decided)).toBe('preparing')
    const [failed] = step(decided, { type: 'persist-failed', record, lazy: false, now: 3 })
    expect(coordinatorAnswer(failed)).toBe('preparing')
    expect(coordinatorAnswer(step(decided, { type: 'logged', record })[0])).toBe('commit')
  })

  test('each failure of the same record waits longer', () => {
    const [decided, record] = committing()
    let [state] = step(decided, { type: 'persist-failed', record, lazy: false, now: 3 })
    ;[state] = step(state, { type: 'tick', now: 8 })
    ;[state] = step(state, { type: 'persist-failed', record, lazy: false, now: 9 })
    expect(state.unlogged).toEqual({ record, lazy: false, attempt: 1, retryAt: 19 })
  })

  test('a lazy begin or done record that fails is not written again: none is needed', () => {
    const [started] = begin(T, PS, 0, env)
    const beginRecord: CoordinatorRecord = { type: 'begin', txn: T, participants: PS }
    const failed = { type: 'persist-failed', record: beginRecord, lazy: true, now: 1 } as const
    expect(step(started, failed)).toEqual([started, []])
    const done: CoordinatorRecord = { type: 'done', txn: T }
    expect(step(started, { ...failed, record: done })).toEqual([started, []])
  })

  test('a lazy abort whose record failed is written again, lazily, even once done', () => {
    let [state] = begin(T, PS, 0, lazy)
    const [aborted, actions] = step(state, { type: 'vote', from: 'p0', vote: 'no', now: 1 }, lazy)
    expect(aborted.phase).toBe('done')
    const record = (actions[0] as PersistAction & { record: CoordinatorRecord }).record
    ;[state] = step(aborted, { type: 'persist-failed', record, lazy: true, now: 2 }, lazy)
    expect(wakeAt(state)).toBe(7)
    const [, again] = step(state, { type: 'tick', now: 7 }, lazy)
    expect(again).toEqual([{ type: 'persist', record, lazy: true }])
  })

  test('a failed one-phase decision: settled on its own log, written again on a shared one', () => {
    const one: CoordinatorEnv = { ...env, onePhase: true }
    const shared: CoordinatorEnv = { ...one, sharedLog: true }
    const [started] = begin(T, ['p0'], 0, one)
    const outcome = { type: 'outcome', from: 'p0', decision: 'commit', now: 1 } as const
    const [committed, actions] = step(started, outcome, one)
    expect(committed.phase).toBe('done')
    const record = (actions[0] as PersistAction & { record: CoordinatorRecord }).record
    const failed = { type: 'persist-failed', record, lazy: true, now: 2 } as const
    // The participant's log holds the outcome, and a restart asks it again: nothing to redo.
    expect(step(committed, failed, one)).toEqual([committed, []])
    // Other coordinators answer from a shared log: without the record, they would say preparing.
    const [state] = step(committed, failed, shared)
    expect(wakeAt(state)).toBe(7)
    const [, again] = step(state, { type: 'tick', now: 7 }, shared)
    expect(again).toEqual([{ type: 'persist', record, lazy: true }])
  })
})

const penv: ParticipantEnv = {
  inDoubtAfterMs: 5000,
  prng: () => 0,
  backoff: { baseMs: 100, capMs: 5000 },
}

function pstep(state: ParticipantTxn, event: ParticipantEvent) {
  return participantStep(state, event, penv)
}

function failedWrite(state: ParticipantTxn, action: PersistAction): ParticipantEvent {
  return { type: 'persist-failed', txn: T, action, error: 'disk full', now: 10 }
}

const unavailable = {
  type: 'reply',
  reply: { kind: 'unavailable', txn: T, error: `cannot record ${T}: disk full` },
} as const

describe('the participant', () => {
  const prepareEvent: ParticipantEvent = { type: 'prepare', txn: T, now: 1 }
  const [, [check]] = pstep(unknownTxn(T), prepareEvent)
  const checkedYes = { type: 'checked', txn: T, vote: 'yes', now: 2 } as const

  test('a yes whose prepared record failed forgets the transaction and its locks', () => {
    expect(check?.type).toBe('check')
    const [prepared, [persist]] = pstep(unknownTxn(T), checkedYes)
    const [state, actions] = pstep(prepared, failedWrite(prepared, persist as PersistAction))
    expect(state).toEqual(unknownTxn(T))
    expect(actions).toEqual([{ type: 'discard', txn: T }, unavailable])
  })

  test('a commit whose record failed stays prepared, locks held, and asks again later', () => {
    const [prepared] = pstep(unknownTxn(T), checkedYes)
    const [committed, [persist]] = pstep(prepared, { type: 'decide', txn: T, decision: 'commit' })
    const [state, actions] = pstep(committed, failedWrite(committed, persist as PersistAction))
    expect(state).toEqual({ ...prepared, askAt: 10 + 5000 })
    expect(actions).toEqual([unavailable])
  })

  test('a one-phase commit whose record failed forgets the transaction', () => {
    const [committed, [persist]] = pstep(unknownTxn(T), { ...checkedYes, onePhase: true })
    expect(committed.state).toBe('committed')
    const [state, actions] = pstep(committed, failedWrite(committed, persist as PersistAction))
    expect(state).toEqual(unknownTxn(T))
    expect(actions).toEqual([{ type: 'discard', txn: T }, unavailable])
  })

  test('a no whose optional record failed still votes no, and never yes after', () => {
    const no = { type: 'checked', txn: T, vote: 'no', reason: 'full', now: 2 } as const
    const [aborted, [persist]] = pstep(unknownTxn(T), no)
    expect((persist as PersistAction).optional).toBe(true)
    const [state, actions] = pstep(aborted, failedWrite(aborted, persist as PersistAction))
    expect(state.state).toBe('aborted')
    expect(actions).toEqual([
      { type: 'discard', txn: T },
      { type: 'reply', reply: { kind: 'vote', txn: T, vote: 'no', reason: 'full' } },
    ])
    const [, again] = pstep(state, prepareEvent)
    expect(again).toEqual([
      { type: 'reply', reply: { kind: 'vote', txn: T, vote: 'no', reason: 'full' } },
    ])
  })

  test('in a batch, outcome records may share a flush, a prepared record never', () => {
    const [prepared, [persist]] = pstep(unknownTxn(T), { ...checkedYes, shareFlush: true })
    expect((persist as PersistAction).shareFlush).toBeUndefined()
    const no = { type: 'checked', txn: T, vote: 'no', now: 2, shareFlush: true } as const
    expect((pstep(unknownTxn(T), no)[1][0] as PersistAction).shareFlush).toBe(true)
    const commit = { type: 'decide', txn: T, decision: 'commit', shareFlush: true } as const
    expect((pstep(prepared, commit)[1][0] as PersistAction).shareFlush).toBe(true)
  })
})
