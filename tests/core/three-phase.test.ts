// Three-phase commit at a participant (lib/core/three-phase.ts): each transition persists before
// it replies, stale attempts are refused, and termination decides only with a quorum.
import { describe, expect, test } from 'bun:test'
import {
  defaultParticipantEnv,
  participantStep,
  quorum,
  unknownTxn,
  type ParticipantAction,
  type ParticipantEvent,
  type ParticipantTxn,
  type PeerReport,
} from '../../lib/core/index.ts'

const env = { ...defaultParticipantEnv, inDoubtAfterMs: 100 }
const PEERS = ['http://p0', 'http://p1', 'http://p2']

/** A participant p0 of three, prepared in three-phase commit. */
function prepared(change: Partial<ParticipantTxn['three'] & object> = {}): ParticipantTxn {
  const three = { self: PEERS[0]!, lastElected: 0, lastAttempt: -1, terminating: null, highest: 0 }
  const t = { ...unknownTxn('t'), peers: PEERS, vote: 'yes' as const, preparedAt: 0, askAt: 100 }
  return { ...t, state: 'prepared', three: { ...three, ...change } }
}

/** The coordinator's precommit (attempt 0). */
const PRECOMMIT = { type: 'pre', txn: 't', decision: 'commit', attempt: 0, now: 5 } as const

const step = (state: ParticipantTxn, event: ParticipantEvent) => participantStep(state, event, env)
const types = (actions: ParticipantAction[]) => actions.map((a) => a.type)
const reply = (actions: ParticipantAction[]) =>
  actions.find((a) => a.type === 'reply')?.reply as Record<string, unknown> | undefined

test('a quorum is a majority', () => {
  expect([1, 2, 3, 4, 5].map(quorum)).toEqual([1, 2, 2, 3, 3])
})

describe('pre (precommit, preabort)', () => {
  test('a prepared participant precommits in the attempt, durably before it answers', () => {
    const [next, actions] = step(prepared(), PRECOMMIT)
    expect(next.state).toBe('precommitted')
    expect([next.three?.lastElected, next.three?.lastAttempt]).toEqual([0, 0])
    expect(types(actions)).toEqual(['persist', 'reply'])
    expect(reply(actions)).toMatchObject({ kind: 'pre', state: 'precommitted', attempt: 0 })
  })

  test('a message of an older attempt is refused and changes nothing', () => {
    const state = prepared({ lastElected: 3 })
    const [next, actions] = step(state, {
      type: 'pre',
      txn: 't',
      decision: 'commit',
      attempt: 2,
      now: 5,
    })
    expect(next).toBe(state)
    expect(reply(actions)).toMatchObject({ kind: 'superseded', lastElected: 3 })
  })

  test('a decided participant answers its outcome; one that never prepared refuses', () => {
    const committed = { ...prepared(), state: 'committed' as const }
    const event = { type: 'pre', txn: 't', decision: 'abort', attempt: 1, now: 5 } as const
    expect(reply(step(committed, event)[1])).toMatchObject({ kind: 'outcome', state: 'committed' })
    expect(reply(step(unknownTxn('t'), event)[1])).toMatchObject({ kind: 'conflict' })
  })
})

describe('state-request', () => {
  test('a later attempt is joined durably, then reported to', () => {
    const [next, actions] = step(prepared(), {
      type: 'state-request',
      txn: 't',
      attempt: 2,
      now: 5,
    })
    expect(next.three?.lastElected).toBe(2)
    expect(types(actions)).toEqual(['persist', 'reply'])
    expect(reply(actions)).toMatchObject({
      kind: 'report',
      report: { state: 'prepared', lastElected: 2, lastAttempt: -1 },
    })
  })

  test('the same or an older attempt is refused', () => {
    const event = { type: 'state-request', txn: 't', attempt: 2, now: 5 } as const
    expect(reply(step(prepared({ lastElected: 2 }), event)[1])).toMatchObject({
      kind: 'superseded',
    })
  })

  test('a participant that never voted aborts before it reports', () => {
    const [next, actions] = step(unknownTxn('t'), {
      type: 'state-request',
      txn: 't',
      attempt: 1,
      now: 5,
    })
    expect(next.state).toBe('aborted')
    expect(types(actions)).toEqual(['persist', 'reply'])
    expect(reply(actions)).toMatchObject({ kind: 'report', report: { state: 'aborted' } })
  })
})

/** p0 past its in-doubt time: it starts an attempt; `reports` are what p1 and p2 answer. */
function terminate(state: ParticipantTxn, reports: PeerReport[]) {
  const [started, first] = step(state, { type: 'tick', txn: 't', now: 200 })
  const attempt = started.three!.terminating!.attempt
  const [next, actions] = step(started, {
    type: 'state-reports',
    txn: 't',
    attempt,
    reports,
    now: 210,
  })
  return { attempt, first, next, actions }
}

const report = (peer: string, state: string, lastAttempt = -1, lastElected = 1) =>
  ({ peer, report: { state, lastElected, lastAttempt } }) as PeerReport

describe('termination (E3PC)', () => {
  test('it joins its own attempt, above any heard of, before asking', () => {
    const { attempt, first } = terminate(prepared({ lastElected: 1, highest: 4 }), [])
    expect(attempt).toBe(5)
    expect(types(first)).toEqual(['persist', 'ask-states'])
  })

  test('any committed member decides commit and tells the others', () => {
    const { next, actions } = terminate(prepared(), [
      report(PEERS[1]!, 'committed'),
      { peer: PEERS[2]!, report: null },
    ])
    expect(next.state).toBe('committed')
    expect(types(actions)).toEqual(['persist', 'reply', 'tell-outcome'])
  })

  test('without a quorum it decides nothing and asks again later', () => {
    const nobody: PeerReport[] = PEERS.slice(1).map((peer) => ({ peer, report: null }))
    const { next, actions } = terminate(
      { ...prepared(), state: 'precommitted', three: { ...prepared().three!, lastAttempt: 0 } },
      nobody,
    )
    expect(next.state).toBe('precommitted')
    expect(actions).toEqual([])
    expect(next.askAt).toBeGreaterThan(210)
  })

  test('a precommitted member in the latest attempt: it precommits the members', () => {
    const { next, actions } = terminate(prepared(), [report(PEERS[1]!, 'precommitted', 0)])
    expect(next.state).toBe('precommitted')
    const send = actions.find((a) => a.type === 'send-pre')
    expect(send).toMatchObject({ decision: 'commit', to: [PEERS[1]] })
  })

  test('the latest attempt not all precommitted: it preaborts the members', () => {
    const old = report(PEERS[1]!, 'precommitted', 0)
    const latest = report(PEERS[2]!, 'preaborted', 1)
    const { next, actions } = terminate(prepared(), [old, latest])
    expect(next.state).toBe('preaborted')
    expect(actions.find((a) => a.type === 'send-pre')).toMatchObject({ decision: 'abort' })
  })

  test('a quorum that moved decides; fewer wait', () => {
    const { attempt, next } = terminate(prepared(), [report(PEERS[1]!, 'precommitted', 0)])
    const acks = (acked: string[]) =>
      step(next, { type: 'pre-acks', txn: 't', attempt, acked, now: 220 })[0]
    expect(acks([PEERS[1]!]).state).toBe('committed')
    expect(acks([]).state).toBe('precommitted')
  })
})

test('a failed write leaves the participant as its disk holds it', () => {
  const [next, actions] = step(prepared(), PRECOMMIT)
  const persist = actions.find((a) => a.type === 'persist')!
  const event = {
    type: 'persist-failed',
    txn: 't',
    action: persist,
    error: 'ENOSPC',
    now: 6,
  } as const
  const [back, replies] = step(next, event as ParticipantEvent)
  expect([back.state, back.three?.lastAttempt]).toEqual(['prepared', -1])
  expect(reply(replies)).toMatchObject({ kind: 'unavailable' })
})

test('an operator may still resolve a precommitted participant (heuristic)', () => {
  const pc = { ...prepared(), state: 'precommitted' as const }
  const [next] = step(pc, { type: 'resolve', txn: 't', decision: 'abort' })
  expect([next.state, next.heuristic]).toEqual(['aborted', true])
})
