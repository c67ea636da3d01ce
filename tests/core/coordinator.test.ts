// Tables over the coordinator's core (lib/core/coordinator.ts), in the manner of etcd's
// raft_paper_test: each row names the protocol rule it checks (init, step, check the exact state
// and actions).
import { describe, expect, test } from 'bun:test'
import {
  backoffMs,
  begin,
  coordinatorStep,
  peersOf,
  recoverCoordinator,
  resume,
  tally,
  wakeAt,
  type Ballot,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorEvent,
  type CoordinatorMessage,
  type CoordinatorRecord,
  type CoordinatorTxn,
  type Decision,
  type Retry,
  type Tally,
  type Vote,
} from '../../lib/core/index.ts'

const T = 't1'
const CANNOT_COMMIT_ABORTED = 'Cannot commit transaction "t1" as it is already aborted'

const PS = ['p0', 'p1', 'p2'] as const
const START = 100
const TIMEOUT = 1000
const env: CoordinatorEnv = {
  prng: () => 0,
  timeoutMs: TIMEOUT,
  backoff: { baseMs: 10, capMs: 1000 },
}

const prepareMsg: CoordinatorMessage = { type: 'prepare', txn: T, participants: PS }

function sendPrepare(to: string): CoordinatorAction {
  return { type: 'send', to, message: prepareMsg }
}

function sendDecide(to: string, decision: Decision): CoordinatorAction {
  return { type: 'send', to, message: { type: 'decide', txn: T, decision } }
}

function logged(record: CoordinatorRecord): CoordinatorAction {
  return { type: 'persist', record }
}

/** A record nothing waits for: it rides the next flush, and a crash may lose it. */
function lazily(record: CoordinatorRecord): CoordinatorAction {
  return { type: 'persist', record, lazy: true }
}

const beginRecord: CoordinatorRecord = { type: 'begin', txn: T, participants: PS }
/** A decision record; `to` names those owed it when not everyone is. */
const decisionRecord = (decision: Decision, to?: readonly string[]): CoordinatorRecord => ({
  type: 'decision',
  txn: T,
  decision,
  participants: PS,
  ...(to ? { to } : {}),
})
const doneRecord: CoordinatorRecord = { type: 'done', txn: T }

function fresh(ids: readonly string[], attempt = 0): Record<string, Retry> {
  return Object.fromEntries(ids.map((id) => [id, { attempt, retryAt: null }]))
}

const vote = (from: string, v: Ballot, reason?: string, now = START + 1): CoordinatorEvent =>
  reason === undefined
    ? { type: 'vote', from, vote: v, now }
    : { type: 'vote', from, vote: v, reason, now }
const ack = (from: string, now = START + 2): CoordinatorEvent => ({ type: 'ack', from, now })
const tick = (now: number): CoordinatorEvent => ({ type: 'tick', now })
const unreachable = (to: string, now: number): CoordinatorEvent => ({
  type: 'unreachable',
  to,
  now,
})

/** Feeds events to the coordinator one by one; returns the last state and each step's actions. */
function drive(
  state: CoordinatorTxn,
  events: readonly CoordinatorEvent[],
  e: CoordinatorEnv = env,
): [CoordinatorTxn, CoordinatorAction[][]] {
  const steps: CoordinatorAction[][] = []
  for (const event of events) {
    const [next, actions] = coordinatorStep(state, event, e)
    state = next
    steps.push(actions)
  }
  return [state, steps]
}

function started(e: CoordinatorEnv = env): CoordinatorTxn {
  return begin(T, PS, START, e)[0]
}

function decided(decision: Decision): CoordinatorTxn {
  const votes = decision === 'commit' ? PS.map((p) => vote(p, 'yes')) : [vote('p1', 'no', 'full')]
  return drive(started(), votes)[0]
}

const preparing: CoordinatorTxn = {
  txn: T,
  participants: PS,
  phase: 'preparing',
  decision: null,
  logged: false,
  unlogged: null,
  votes: {},
  reasons: {},
  acks: [],
  refusals: {},
  deadline: START + TIMEOUT,
  outstanding: fresh(PS),
}

describe('begin', () => {
  // Rule: the coordinator logs that a transaction began before it asks for votes, so that a
  // restart can abort it (presumed abort; Durability rules).
  // Rule: presumed abort: no forced write before prepare; the begin record is lazy.
  test('begin logs the begin record lazily and sends every prepare', () => {
    const [state, actions] = begin(T, PS, START, env)
    expect(state).toEqual(preparing)
    expect(actions).toEqual([lazily(beginRecord), ...PS.map(sendPrepare)])
  })

  test('begin without participants is a programmer error', () => {
    expect(() => begin(T, [], START, env)).toThrow('assertion')
  })
})

describe('tally', () => {
  // Rule: unanimity, not majority: one no loses, all yes wins, anything else is pending.
  const rows: { rule: string; votes: Record<string, Vote>; want: Tally }[] = [
    { rule: 'no votes yet is pending', votes: {}, want: 'pending' },
    { rule: 'some yes votes is pending', votes: { p0: 'yes', p1: 'yes' }, want: 'pending' },
    { rule: 'all yes wins', votes: { p0: 'yes', p1: 'yes', p2: 'yes' }, want: 'won' },
    { rule: 'one no loses while others are pending', votes: { p1: 'no' }, want: 'lost' },
    {
      rule: 'one no loses against two yes',
      votes: { p0: 'yes', p1: 'no', p2: 'yes' },
      want: 'lost',
    },
    { rule: 'all no loses', votes: { p0: 'no', p1: 'no', p2: 'no' }, want: 'lost' },
    {
      rule: 'a foreign no does not count',
      votes: { p0: 'yes', p1: 'yes', p2: 'yes', px: 'no' },
      want: 'won',
    },
    {
      rule: 'a foreign yes does not count',
      votes: { p0: 'yes', p1: 'yes', px: 'yes' },
      want: 'pending',
    },
  ]
  test.each(rows)('$rule', ({ votes, want }) => {
    expect(tally(PS, votes)).toBe(want)
  })
})

describe('coordinatorStep: votes', () => {
  // Rule: all yes → commit; the commit decision is durable BEFORE the first commit is sent
  // (Durability rules).
  test('all yes decides commit, persisted before every decide send', () => {
    const [state, steps] = drive(
      started(),
      PS.map((p) => vote(p, 'yes')),
    )
    expect(steps).toEqual([
      [],
      [],
      [logged(decisionRecord('commit')), ...PS.map((p) => sendDecide(p, 'commit'))],
    ])
    expect(state).toEqual({
      ...preparing,
      phase: 'deciding',
      decision: 'commit',
      votes: { p0: 'yes', p1: 'yes', p2: 'yes' },
      outstanding: fresh(PS),
    })
  })

  // Rule: any no → abort; a participant that voted no aborted on its own, so it is not sent the
  // abort and counts as acknowledged.
  test('one no decides abort at once and skips the participant that voted no', () => {
    const [state, steps] = drive(started(), [vote('p0', 'yes'), vote('p1', 'no', 'disk full')])
    expect(steps).toEqual([
      [],
      [
        logged(decisionRecord('abort', ['p0', 'p2'])),
        sendDecide('p0', 'abort'),
        sendDecide('p2', 'abort'),
      ],
    ])
    expect(state).toEqual({
      ...preparing,
      phase: 'deciding',
      decision: 'abort',
      votes: { p0: 'yes', p1: 'no' },
      reasons: { p1: 'disk full' },
      acks: ['p1'],
      outstanding: fresh(['p0', 'p2']),
    })
  })

  // Rule: unanimity: the first no decides; the votes after it change nothing.
  test('a first no decides abort at once, later votes are ignored', () => {
    const [state, steps] = drive(
      started(),
      PS.map((p) => vote(p, 'no')),
    )
    expect(steps).toEqual([
      [
        logged(decisionRecord('abort', ['p1', 'p2'])),
        sendDecide('p1', 'abort'),
        sendDecide('p2', 'abort'),
      ],
      [],
      [],
    ])
    expect(state.votes).toEqual({ p0: 'no' })
  })

  test('when every participant voted no, the abort is done at once: nobody is owed it', () => {
    const [s0] = begin(T, ['p0'], START, env)
    const [state, actions] = coordinatorStep(s0, vote('p0', 'no'), env)
    const record = { ...decisionRecord('abort', []), participants: ['p0'] }
    expect(actions).toEqual([logged(record), lazily(doneRecord)])
    expect(state).toEqual({
      ...preparing,
      participants: ['p0'],
      phase: 'done',
      decision: 'abort',
      votes: { p0: 'no' },
      acks: ['p0'],
      outstanding: {},
    })
  })

  // Rule: late, duplicate and foreign votes are normal on a lossy network: they are ignored.
  type Row = { rule: string; before: CoordinatorEvent[]; event: CoordinatorEvent }
  const ignored: Row[] = [
    { rule: 'a duplicate yes is ignored', before: [vote('p0', 'yes')], event: vote('p0', 'yes') },
    {
      rule: 'a second, different vote is ignored: the first one counts',
      before: [vote('p0', 'yes')],
      event: vote('p0', 'no', 'changed my mind'),
    },
    { rule: 'a foreign vote is ignored', before: [], event: vote('px', 'no') },
    {
      rule: 'a vote after a commit decision is ignored',
      before: PS.map((p) => vote(p, 'yes')),
      event: vote('p1', 'no'),
    },
    {
      rule: 'a late vote after the timeout abort is ignored',
      before: [tick(START + TIMEOUT)],
      event: vote('p0', 'yes', undefined, START + TIMEOUT + 1),
    },
    {
      rule: 'a vote after done is ignored',
      before: [...PS.map((p) => vote(p, 'yes')), ...PS.map((p) => ack(p))],
      event: vote('p0', 'no'),
    },
  ]
  test.each(ignored)('$rule', ({ before, event }) => {
    const [state] = drive(started(), before)
    expect(coordinatorStep(state, event, env)).toEqual([state, []])
  })
})

describe('coordinatorStep: timeouts and retries', () => {
  // Rule: a participant that has not voted by the deadline counts as no (any timeout → abort).
  test('a tick at the deadline with a silent participant aborts with a reason', () => {
    const [state, steps] = drive(started(), [vote('p0', 'yes'), tick(START + TIMEOUT)])
    const silent = 'no vote before the prepare timeout'
    expect(steps[1]).toEqual([
      logged(decisionRecord('abort')),
      ...PS.map((p) => sendDecide(p, 'abort')),
    ])
    expect(state).toEqual({
      ...preparing,
      phase: 'deciding',
      decision: 'abort',
      votes: { p0: 'yes' },
      reasons: { p1: silent, p2: silent },
      outstanding: fresh(PS),
    })
  })

  test('a tick before the deadline does nothing', () => {
    const state = started()
    expect(coordinatorStep(state, tick(START + TIMEOUT - 1), env)).toEqual([state, []])
  })

  // Rule: connections refused are retried with exponential backoff and jitter (Compatibility).
  test('unreachable schedules a retry; a tick at/after retryAt resends to that peer alone', () => {
    const [s1, a1] = coordinatorStep(started(), unreachable('p1', 200), env)
    expect(a1).toEqual([])
    expect(s1.outstanding).toEqual({ ...fresh(PS), p1: { attempt: 0, retryAt: 205 } })

    expect(coordinatorStep(s1, tick(204), env)).toEqual([s1, []])

    const [s2, a2] = coordinatorStep(s1, tick(205), env)
    expect(a2).toEqual([sendPrepare('p1')])
    expect(s2.outstanding).toEqual({ ...fresh(PS), p1: { attempt: 1, retryAt: null } })

    // The second failure waits twice as long (base 10 · 2^1, halved by the jitter of prng 0).
    const [s3] = coordinatorStep(s2, unreachable('p1', 300), env)
    expect(s3.outstanding.p1).toEqual({ attempt: 1, retryAt: 310 })
    const [s4, a4] = coordinatorStep(s3, tick(400), env)
    expect(a4).toEqual([sendPrepare('p1')])
    expect(s4.outstanding.p1).toEqual({ attempt: 2, retryAt: null })
  })

  test('the retry delay uses the passed-in prng', () => {
    const e: CoordinatorEnv = { ...env, prng: () => 0.5 }
    const [state] = coordinatorStep(started(e), unreachable('p2', 200), e)
    expect(state.outstanding.p2).toEqual({ attempt: 0, retryAt: 207.5 })
  })

  test('a tick resends to every due participant and to no other', () => {
    const [state, steps] = drive(started(), [
      unreachable('p0', 200),
      unreachable('p2', 250),
      tick(260),
    ])
    expect(steps[2]).toEqual([sendPrepare('p0'), sendPrepare('p2')])
    expect(state.outstanding).toEqual({
      ...fresh(['p0', 'p2'], 1),
      p1: { attempt: 0, retryAt: null },
    })
  })

  type Row = { rule: string; before: CoordinatorEvent[]; event: CoordinatorEvent }
  const ignored: Row[] = [
    {
      rule: 'a second unreachable while a retry is scheduled keeps the first retryAt',
      before: [unreachable('p1', 200)],
      event: unreachable('p1', 300),
    },
    {
      rule: 'unreachable for a participant that already voted is ignored',
      before: [vote('p1', 'yes')],
      event: unreachable('p1', 200),
    },
    {
      rule: 'unreachable for a foreign peer is ignored',
      before: [],
      event: unreachable('px', 200),
    },
    {
      rule: 'unreachable after done is ignored',
      before: [...PS.map((p) => vote(p, 'yes')), ...PS.map((p) => ack(p))],
      event: unreachable('p0', 200),
    },
    {
      rule: 'a tick after done does nothing',
      before: [...PS.map((p) => vote(p, 'yes')), ...PS.map((p) => ack(p))],
      event: tick(START + 10 * TIMEOUT),
    },
  ]
  test.each(ignored)('$rule', ({ before, event }) => {
    const [state] = drive(started(), before)
    expect(coordinatorStep(state, event, env)).toEqual([state, []])
  })

  // Rule: the decision is set once and never changes; the deciding phase retries forever, because
  // prepared participants block until they hear it (Protocol rules).
  test('a tick past the prepare deadline while deciding never turns commit into abort', () => {
    const [state, steps] = drive(decided('commit'), [
      tick(START + 5 * TIMEOUT),
      unreachable('p2', START + 5 * TIMEOUT),
      tick(START + 6 * TIMEOUT),
    ])
    expect(steps).toEqual([[], [], [sendDecide('p2', 'commit')]])
    expect(state.decision).toBe('commit')
    expect(state.phase).toBe('deciding')
    expect(state.outstanding).toEqual({ ...fresh(['p0', 'p1']), p2: { attempt: 1, retryAt: null } })
  })
})

describe('coordinatorStep: acknowledgements', () => {
  test('acks from everyone persist done, after the last ack only', () => {
    const [state, steps] = drive(
      decided('commit'),
      PS.map((p) => ack(p)),
    )
    expect(steps).toEqual([[], [], [lazily(doneRecord)]])
    expect(state).toEqual({
      ...preparing,
      phase: 'done',
      decision: 'commit',
      votes: { p0: 'yes', p1: 'yes', p2: 'yes' },
      acks: ['p0', 'p1', 'p2'],
      outstanding: {},
    })
  })

  // Rule: a participant that voted no needs no abort and owes no ack.
  test('an abort is done once everyone but the no voter has acknowledged', () => {
    const [state, steps] = drive(decided('abort'), [ack('p2'), ack('p0')])
    expect(steps).toEqual([[], [lazily(doneRecord)]])
    expect(state.phase).toBe('done')
    expect(state.acks).toEqual(['p1', 'p2', 'p0'])
  })

  // Rule: a refusal (409: a heuristic outcome contradicts the decision) ends the delivery to that
  // participant, and is recorded.
  test('refused counts as delivered and is recorded in refusals', () => {
    const error = CANNOT_COMMIT_ABORTED
    const [state, steps] = drive(decided('commit'), [
      ack('p0'),
      { type: 'refused', from: 'p1', error, now: START + 3 },
      ack('p2'),
    ])
    expect(steps).toEqual([[], [], [lazily(doneRecord)]])
    expect(state.phase).toBe('done')
    expect(state.decision).toBe('commit')
    expect(state.acks).toEqual(['p0', 'p1', 'p2'])
    expect(state.refusals).toEqual({ p1: error })
  })

  type Row = { rule: string; from: CoordinatorTxn; event: CoordinatorEvent }
  const ignored: Row[] = [
    { rule: 'an ack while preparing is ignored', from: started(), event: ack('p0') },
    {
      rule: 'a duplicate ack is ignored',
      from: drive(decided('commit'), [ack('p0')])[0],
      event: ack('p0'),
    },
    { rule: 'an ack from a foreign peer is ignored', from: decided('commit'), event: ack('px') },
    {
      rule: 'an ack from the participant that voted no (and was sent nothing) is ignored',
      from: decided('abort'),
      event: ack('p1'),
    },
    {
      rule: 'a refusal after done is ignored',
      from: drive(
        decided('commit'),
        PS.map((p) => ack(p)),
      )[0],
      event: { type: 'refused', from: 'p0', error: 'late', now: START + 9 },
    },
  ]
  test.each(ignored)('$rule', ({ from, event }) => {
    expect(coordinatorStep(from, event, env)).toEqual([from, []])
  })
})

describe('resume and recoverCoordinator', () => {
  // Rule: presumed abort: a transaction with no durable decision is aborted after a restart, and
  // the abort is logged before it is sent to every participant (none of their votes are known).
  test('resume of a preparing transaction persists abort and sends it to all', () => {
    const [state, actions] = resume(started(), env, 0)
    expect(actions).toEqual([
      logged(decisionRecord('abort')),
      ...PS.map((p) => sendDecide(p, 'abort')),
    ])
    expect(state).toEqual({
      ...preparing,
      phase: 'deciding',
      decision: 'abort',
      outstanding: fresh(PS),
    })
  })

  test('resume of a preparing transaction forgets in-memory votes and aborts everyone', () => {
    const [, actions] = resume(drive(started(), [vote('p0', 'yes'), vote('p1', 'yes')])[0], env, 0)
    expect(actions).toEqual([
      logged(decisionRecord('abort')),
      ...PS.map((p) => sendDecide(p, 'abort')),
    ])
  })

  // Rule: run again after a crash, the coordinator re-delivers the decision it recorded instead
  // of deciding anew (Compatibility).
  test('resume of a deciding transaction resends the decision to everyone not acked', () => {
    const [before] = drive(decided('commit'), [ack('p0'), unreachable('p2', 500)])
    const [state, actions] = resume(before, env, 0)
    expect(actions).toEqual([sendDecide('p1', 'commit'), sendDecide('p2', 'commit')])
    expect(state).toEqual({ ...before, outstanding: fresh(['p1', 'p2']) })
  })

  test('resume of a done transaction does nothing', () => {
    const [done] = drive(
      decided('commit'),
      PS.map((p) => ack(p)),
    )
    expect(resume(done, env, 0)).toEqual([done, []])
  })

  const recovered: Omit<CoordinatorTxn, 'phase' | 'decision' | 'logged'> = {
    txn: T,
    participants: PS,
    votes: {},
    reasons: {},
    acks: [],
    refusals: {},
    deadline: 0,
    outstanding: {},
    unlogged: null,
  }

  type Row = { rule: string; records: CoordinatorRecord[]; want: CoordinatorTxn[] }
  const rows: Row[] = [
    { rule: 'an empty log knows no transaction', records: [], want: [] },
    {
      rule: 'begin alone comes back preparing, without a decision',
      records: [beginRecord],
      want: [{ ...recovered, phase: 'preparing', decision: null, logged: false }],
    },
    // Votes and acks are not logged: every participant is owed the decision again.
    {
      rule: 'begin then decision comes back deciding, owed to every participant',
      records: [beginRecord, decisionRecord('commit')],
      want: [
        {
          ...recovered,
          phase: 'deciding',
          decision: 'commit',
          logged: true,
          outstanding: fresh(PS),
        },
      ],
    },
    {
      rule: 'begin, decision, done comes back done, acknowledged by all',
      records: [beginRecord, decisionRecord('abort'), doneRecord],
      want: [{ ...recovered, phase: 'done', decision: 'abort', logged: true, acks: [...PS] }],
    },
    {
      rule: 'transactions are folded independently, in log order',
      records: [
        beginRecord,
        { type: 'begin', txn: 't2', participants: ['p0'] },
        decisionRecord('commit'),
        { type: 'decision', txn: 't2', decision: 'abort' },
        { type: 'done', txn: 't2' },
      ],
      want: [
        {
          ...recovered,
          phase: 'deciding',
          decision: 'commit',
          logged: true,
          outstanding: fresh(PS),
        },
        {
          ...recovered,
          txn: 't2',
          participants: ['p0'],
          phase: 'done',
          decision: 'abort',
          logged: true,
          acks: ['p0'],
        },
      ],
    },
  ]
  test.each(rows)('$rule', ({ records, want }) => {
    expect([...recoverCoordinator(records, 0).values()]).toEqual(want)
  })

  // Rule: presumed abort and re-delivery, end to end: crash after each record, recover, resume.
  type Crash = { rule: string; records: CoordinatorRecord[]; want: CoordinatorAction[] }
  const crashes: Crash[] = [
    {
      rule: 'a crash after begin aborts on restart',
      records: [beginRecord],
      want: [logged(decisionRecord('abort')), ...PS.map((p) => sendDecide(p, 'abort'))],
    },
    {
      rule: 'a crash after a commit decision re-delivers commit to all on restart',
      records: [beginRecord, decisionRecord('commit')],
      want: PS.map((p) => sendDecide(p, 'commit')),
    },
    {
      rule: 'a crash after done sends nothing on restart',
      records: [beginRecord, decisionRecord('commit'), doneRecord],
      want: [],
    },
  ]
  test.each(crashes)('$rule', ({ records, want }) => {
    const state = recoverCoordinator(records, 0).get(T)!
    expect(resume(state, env, 0)[1]).toEqual(want)
  })

  // Rule: the log holds exactly begin, decision, done; replaying it gives back the outcome.
  test('the records of a live run recover to its outcome, and resume sends nothing more', () => {
    const log: CoordinatorRecord[] = []
    const collect = (actions: CoordinatorAction[]) => {
      for (const a of actions) if (a.type === 'persist') log.push(a.record)
    }
    const [first, beginActions] = begin(T, PS, START, env)
    collect(beginActions)
    const events = [...PS.map((p) => vote(p, 'yes')), ...PS.map((p) => ack(p))]
    const [state, steps] = drive(first, events)
    steps.forEach(collect)
    expect(log).toEqual([beginRecord, decisionRecord('commit'), doneRecord])
    const back = recoverCoordinator(log, 0).get(T)!
    expect([back.phase, back.decision, back.acks]).toEqual([
      state.phase,
      state.decision,
      state.acks,
    ])
    expect(resume(back, env, 0)).toEqual([back, []])
  })
})

describe('read-only participants', () => {
  const ro = (p: string): CoordinatorEvent => vote(p, 'read-only')

  // Rule: read-only counts as yes in the tally, and a read-only voter is left out of phase two.
  test('a read-only voter is neither sent the commit nor owes an ack', () => {
    const [state, steps] = drive(started(), [vote('p0', 'yes'), ro('p1'), vote('p2', 'yes')])
    expect(steps.at(-1)).toEqual([
      logged(decisionRecord('commit', ['p0', 'p2'])),
      sendDecide('p0', 'commit'),
      sendDecide('p2', 'commit'),
    ])
    expect(state.acks).toEqual(['p1'])
    expect(Object.keys(state.outstanding)).toEqual(['p0', 'p2'])
  })

  test('nor is it sent the abort', () => {
    const [, steps] = drive(started(), [ro('p1'), vote('p0', 'no')])
    expect(steps.at(-1)).toEqual([
      logged(decisionRecord('abort', ['p2'])),
      sendDecide('p2', 'abort'),
    ])
  })

  test('when every participant only read, it commits with no phase two at all', () => {
    const [state, steps] = drive(started(), PS.map(ro))
    expect(steps.at(-1)).toEqual([logged(decisionRecord('commit', [])), lazily(doneRecord)])
    expect(state.phase).toBe('done')
  })

  // Rule: a read-only voter keeps no record, so asked in doubt after a restart it would abort
  // as if it had never voted: the prepare names only the others as peers to ask.
  test('participants whose operations only read are not named as peers', () => {
    const ops = {
      p0: [{ op: 'set', key: 'a', value: 1 }],
      p1: [{ op: 'check', key: 'b', equals: 2 }],
      p2: [],
    } as const
    const [state, actions] = begin(T, PS, START, env, ops)
    expect(peersOf(state)).toEqual(['p0', 'p2'])
    for (const a of actions) {
      if (a.type === 'send' && a.message.type === 'prepare') {
        expect(a.message.participants).toEqual(['p0', 'p2'])
      }
    }
  })

  test('without operations every participant is a peer', () => {
    expect(peersOf(started())).toEqual(PS)
  })
})

describe('presumed abort (the service)', () => {
  const pa: CoordinatorEnv = { ...env, lazyAborts: true }

  // Rule: an abort is not forced: its record is lazy, the aborts leave at once, nobody is asked
  // to acknowledge, and the transaction is done without a done record.
  test('an abort is logged lazily, sent once and done at once', () => {
    const [state, steps] = drive(started(pa), [vote('p0', 'yes'), vote('p1', 'no', 'full')], pa)
    expect(steps.at(-1)).toEqual([
      lazily(decisionRecord('abort', ['p0', 'p2'])),
      sendDecide('p0', 'abort'),
      sendDecide('p2', 'abort'),
      lazily(doneRecord),
    ])
    expect(state.phase).toBe('done')
    expect(state.outstanding).toEqual({})
    expect(wakeAt(state)).toBeNull()
  })

  test('an acknowledgement or a lost abort afterwards changes nothing', () => {
    const [state] = drive(started(pa), [vote('p1', 'no')], pa)
    for (const event of [ack('p0'), unreachable('p2', START + 3), tick(START + 5000)]) {
      expect(coordinatorStep(state, event, pa)).toEqual([state, []])
    }
  })

  // Rule: only the commit decision is forced, before the first commit leaves.
  test('a commit is still forced and acknowledged', () => {
    const [state, steps] = drive(
      started(pa),
      PS.map((p) => vote(p, 'yes')),
      pa,
    )
    expect(steps.at(-1)).toEqual([
      logged(decisionRecord('commit')),
      ...PS.map((p) => sendDecide(p, 'commit')),
    ])
    expect(state.phase).toBe('deciding')
  })

  test('the prepare timeout aborts without a forced write', () => {
    const [state, steps] = drive(started(pa), [tick(START + TIMEOUT)], pa)
    expect(steps[0]![0]).toEqual(lazily(decisionRecord('abort')))
    expect(state.phase).toBe('done')
  })

  // Rule: after a restart, an abort found in the log is sent once more and is done.
  test('resume of a logged abort sends it to everyone once and is done', () => {
    const [back] = [...recoverCoordinator([beginRecord, decisionRecord('abort')], 0).values()]
    const [state, actions] = resume(back!, pa, 0)
    expect(actions).toEqual(PS.map((p) => sendDecide(p, 'abort')))
    expect(state.phase).toBe('done')
  })

  // Rule: after a restart the decision goes again only to those owed it: a read-only or a `no`
  // voter is not, and a decision nobody is owed is done.
  test('a recovered decision is owed only to those its record names', () => {
    const [back] = [...recoverCoordinator([decisionRecord('commit', ['p0', 'p2'])], 0).values()]
    expect(back?.outstanding).toEqual(fresh(['p0', 'p2']))
    expect(back?.acks).toEqual(['p1'])
    const [none] = [...recoverCoordinator([decisionRecord('abort', [])], 0).values()]
    expect(none?.phase).toBe('done')
  })

  // Rule: the decision record names the participants, so a lost (lazy) begin loses nothing.
  test('a decision without its begin record recovers', () => {
    const [back] = [...recoverCoordinator([decisionRecord('commit')], 0).values()]
    expect(back?.participants).toEqual(PS)
    expect(back?.phase).toBe('deciding')
    expect(back?.outstanding).toEqual(fresh(PS))
  })
})

describe('one-phase commit (the service)', () => {
  const one: CoordinatorEnv = { ...env, onePhase: true, lazyAborts: true }
  const single = () => begin(T, ['p0'], START, one)
  const onePrepare: CoordinatorMessage = {
    type: 'prepare',
    txn: T,
    participants: ['p0'],
    onePhase: true,
  }
  const oneDecision = (decision: Decision): CoordinatorRecord => ({
    type: 'decision',
    txn: T,
    decision,
    participants: ['p0'],
  })
  const outcomeOf = (decision: Decision): CoordinatorEvent => ({
    type: 'outcome',
    from: 'p0',
    decision,
    now: START + 1,
  })

  // Rule: with a single participant, its own outcome is the decision. The begin record is
  // forced (a restarted coordinator must know to ask it), and the prepare says one phase.
  test('a single participant is asked in one phase, after a forced begin', () => {
    const [state, actions] = single()
    expect(actions).toEqual([
      logged({ type: 'begin', txn: T, participants: ['p0'], onePhase: true }),
      { type: 'send', to: 'p0', message: onePrepare },
    ])
    expect(state.onePhase).toBe(true)
  })

  test('two participants or more are asked in two phases as ever', () => {
    const [state, actions] = begin(T, PS, START, one)
    expect(state.onePhase).toBeUndefined()
    expect(actions[0]).toEqual(lazily(beginRecord))
  })

  test("the participant's outcome is the decision: settled, logged lazily, done at once", () => {
    const [state, actions] = coordinatorStep(single()[0], outcomeOf('commit'), one)
    expect(actions).toEqual([
      { type: 'persist', record: oneDecision('commit'), lazy: true, settled: true },
      lazily(doneRecord),
    ])
    expect(state).toMatchObject({ phase: 'done', decision: 'commit', acks: ['p0'] })
  })

  // Rule: no prepare timeout in one phase: the participant may have committed, so the
  // coordinator asks again until it answers.
  test('a silent participant is asked again, never aborted by the timeout', () => {
    const [lost] = coordinatorStep(single()[0], unreachable('p0', START + 1), one)
    const [state, actions] = coordinatorStep(lost, tick(START + TIMEOUT * 10), one)
    expect(state.phase).toBe('preparing')
    expect(actions).toEqual([{ type: 'send', to: 'p0', message: onePrepare }])
  })

  test('after a restart it asks the participant again instead of presuming abort', () => {
    const begun: CoordinatorRecord = {
      type: 'begin',
      txn: T,
      participants: ['p0'],
      onePhase: true,
    }
    const [back] = [...recoverCoordinator([begun], 0).values()]
    const [state, actions] = resume(back!, one, 0)
    expect(state.phase).toBe('preparing')
    expect(actions).toEqual([{ type: 'send', to: 'p0', message: onePrepare }])
  })

  // Rule: a restart sends the operations again, so the begin record carries them.
  test('the operations survive a restart in the begin record and are sent again', () => {
    const ops = { p0: [{ op: 'add', key: 'n', amount: 1 }] } as const
    const [, actions] = begin(T, ['p0'], START, one, ops)
    const begun = (actions[0] as { record: CoordinatorRecord }).record
    expect(begun).toEqual({ type: 'begin', txn: T, participants: ['p0'], onePhase: true, ops })
    const [back] = [...recoverCoordinator([begun], 0).values()]
    const [, again] = resume(back!, one, 0)
    expect(again).toEqual([{ type: 'send', to: 'p0', message: { ...onePrepare, ops: ops.p0 } }])
  })

  test('a participant that prepares instead (a store without one phase) gets a commit', () => {
    const [, actions] = coordinatorStep(single()[0], vote('p0', 'yes'), one)
    expect(actions).toEqual([logged(oneDecision('commit')), sendDecide('p0', 'commit')])
  })
})

describe('wakeAt', () => {
  // Rule: a shell need only tick a transaction once `wakeAt` has passed; before it, a tick
  // changes nothing.
  const rows: { rule: string; state: () => CoordinatorTxn; want: number | null }[] = [
    { rule: 'preparing wakes at the deadline', state: () => started(), want: START + TIMEOUT },
    {
      rule: 'a retry before the deadline wakes it earlier',
      state: () => drive(started(), [unreachable('p1', START + 5)])[0],
      want: START + 5 + backoffMs(0, env.prng, env.backoff),
    },
    {
      rule: 'deciding with every send in flight needs no tick',
      state: () => decided('commit'),
      want: null,
    },
    {
      rule: 'done needs no tick',
      state: () =>
        drive(
          decided('commit'),
          PS.map((p) => ack(p)),
        )[0],
      want: null,
    },
  ]
  for (const row of rows) {
    test(row.rule, () => {
      const state = row.state()
      expect(wakeAt(state)).toBe(row.want)
      if (row.want !== null) {
        expect(coordinatorStep(state, tick(row.want - 1), env)).toEqual([state, []])
        expect(coordinatorStep(state, tick(row.want), env)[0]).not.toEqual(state)
      }
    })
  }
})
