// A prepared participant in doubt (lib/core/in-doubt.ts): the order in which it asks, and what
// each answer makes of it. Rule: it asks the coordinator first and its peers only when the
// coordinator gives no answer it understands; it never decides on its own.
import { describe, expect, test } from 'bun:test'
import {
  participantStep,
  recoverParticipant,
  unknownTxn,
  type ParticipantRecord,
  type CoordinatorAnswer,
  type ParticipantEnv,
  type ParticipantEvent,
  type ParticipantState,
  type ParticipantTxn,
} from '../../lib/core/index.ts'

const T = 't1'
const C = 'http://127.0.0.1:8000'
const PEERS = ['http://127.0.0.1:9001', 'http://127.0.0.1:9002']
const env: ParticipantEnv = {
  inDoubtAfterMs: 100,
  prng: () => 0,
  backoff: { baseMs: 100, capMs: 800 },
}

const prepared: ParticipantTxn = {
  ...unknownTxn(T),
  state: 'prepared',
  vote: 'yes',
  coordinator: C,
  peers: PEERS,
  preparedAt: 0,
  askAt: 100,
}
const asking: ParticipantTxn = { ...prepared, askAt: null }

function step(state: ParticipantTxn, event: ParticipantEvent) {
  return participantStep(state, event, env)
}

const answer = (a: CoordinatorAnswer | null): ParticipantEvent => ({
  type: 'coordinator-answer',
  txn: T,
  answer: a,
  now: 200,
})
const peers = (...states: unknown[]): ParticipantEvent => ({
  type: 'peer-answers',
  txn: T,
  states,
  now: 200,
})
const askPeers = { type: 'ask-peers', txn: T, peers: PEERS } as const
/** Nobody knew: ask again after the backoff (base 100, halved by the jitter of prng 0). */
const later: ParticipantTxn = { ...prepared, askAt: 250, asks: 1 }

describe('in doubt', () => {
  test('past the in-doubt time it asks the coordinator first', () => {
    const [state, actions] = step(prepared, { type: 'tick', txn: T, now: 100 })
    expect(state).toEqual(asking)
    expect(actions).toEqual([{ type: 'ask-coordinator', txn: T, coordinator: C }])
  })

  test('without a coordinator to ask, it asks the peers', () => {
    const [, actions] = step({ ...prepared, coordinator: null }, { type: 'tick', txn: T, now: 100 })
    expect(actions).toEqual([askPeers])
  })

  test.each([
    ['commit', 'committed'],
    ['abort', 'aborted'],
    ['unknown', 'aborted'], // presumed abort: no record of it means it never committed
  ] as const)('the coordinator answering %p settles it %p', (a, want) => {
    const [state, actions] = step(asking, answer(a))
    expect(state.state).toBe(want)
    expect(actions[0]?.type).toBe('persist')
  })

  test('a coordinator still deciding will tell it: it asks nobody else, and asks later', () => {
    expect(step(asking, answer('preparing'))).toEqual([later, []])
  })

  test('a coordinator that gave no answer it understands sends it to the peers', () => {
    expect(step(asking, answer(null))).toEqual([asking, [askPeers]])
  })

  test.each([
    [['prepared', 'committed'], 'committed'],
    [[null, 'aborted'], 'aborted'],
  ] as [unknown[], ParticipantState][])('peers answering %p settle it %p', (states, want) => {
    expect(step(asking, peers(...states))[0].state).toBe(want)
  })

  test('peers that are prepared too, or silent, settle nothing: it stays prepared', () => {
    expect(step(asking, peers('prepared', null))).toEqual([later, []])
  })

  test('an answer that comes when no question is out changes nothing', () => {
    expect(step(prepared, answer('commit'))).toEqual([prepared, []])
    const committed: ParticipantTxn = { ...asking, state: 'committed' }
    expect(step(committed, peers('aborted'))).toEqual([committed, []])
  })

  test('with coordinators sharing a log, each ask goes to the next of them in turn', () => {
    const others = ['http://127.0.0.1:8001', 'http://127.0.0.1:8002']
    const shared: ParticipantTxn = { ...prepared, coordinators: others }
    const asked = [0, 1, 2, 3].map((asks) => {
      const [, actions] = step({ ...shared, asks }, { type: 'tick', txn: T, now: 100 })
      return (actions[0] as { coordinator: string }).coordinator
    })
    expect(asked).toEqual([C, ...others, C])
  })

  test('whom to ask, other coordinators included, is in the prepared record and recovered', () => {
    const others = ['http://127.0.0.1:8001']
    const event = { type: 'prepare', txn: T, now: 0, coordinator: C, coordinators: others } as const
    const [, actions] = step(unknownTxn(T), event)
    expect(actions[0]).toMatchObject({ type: 'check', context: { coordinators: others } })
    const [voted, persisted] = step(
      { ...unknownTxn(T), coordinator: C, coordinators: others },
      { type: 'checked', txn: T, vote: 'yes', now: 0 },
    )
    expect(voted.coordinators).toEqual(others)
    const record = (persisted[0] as { record: ParticipantRecord }).record
    expect(record.coordinators).toEqual(others)
    expect(recoverParticipant([record], 0, env).get(T)!.coordinators).toEqual(others)
  })
})
