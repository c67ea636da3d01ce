// A checkpoint's folded record rebuilds the same final state as the records it replaces, and
// nothing unfinished is ever folded.
import { describe, expect, test } from 'bun:test'
import {
  coordinatorAnswer,
  coordinatorFold,
  participantFold,
  recoverCoordinator,
  recoverParticipant,
  type CoordinatorRecord,
  type ParticipantRecord,
} from '../../lib/core/index.ts'

const P = ['http://p0', 'http://p1']

describe('participantFold', () => {
  const runs: Record<string, ParticipantRecord[]> = {
    'committed after yes': [
      { txn: 't', state: 'prepared', vote: 'yes', coordinator: 'http://c', at: 5, digest: 'd' },
      { txn: 't', state: 'committed', vote: 'yes', digest: 'd' },
    ],
    'aborted after a no': [{ txn: 't', state: 'aborted', vote: 'no', reason: 'lock held' }],
    'aborted unseen': [{ txn: 't', state: 'aborted' }],
    'resolved by an operator': [
      { txn: 't', state: 'prepared', vote: 'yes', at: 5 },
      { txn: 't', state: 'committed', vote: 'yes', heuristic: true },
    ],
  }
  for (const [name, records] of Object.entries(runs)) {
    test(`${name}: replaying the fold gives the outcome, vote, reason, digest`, () => {
      const state = recoverParticipant(records, 100).get('t')!
      const fold = participantFold(state)!
      const again = recoverParticipant([fold], 100).get('t')!
      const essentials = (s: typeof state) => [s.state, s.vote, s.reason, s.heuristic, s.digest]
      expect(essentials(again)).toEqual(essentials(state))
    })
  }

  test('a prepared transaction is never folded', () => {
    const state = recoverParticipant([{ txn: 't', state: 'prepared', vote: 'yes' }], 0).get('t')!
    expect(participantFold(state)).toBeNull()
  })
})

describe('coordinatorFold', () => {
  const begin: CoordinatorRecord = { type: 'begin', txn: 't', participants: P }
  const commit: CoordinatorRecord = { type: 'decision', txn: 't', decision: 'commit' }

  test('a done transaction folds into its decision, owed to nobody: done after a restart', () => {
    const state = recoverCoordinator([begin, commit, { type: 'done', txn: 't' }], 0).get('t')!
    const fold = coordinatorFold(state)!
    const again = recoverCoordinator([fold], 0).get('t')!
    expect([again.phase, again.decision, again.logged, again.participants]).toEqual([
      'done',
      'commit',
      true,
      P,
    ])
    expect(coordinatorAnswer(again)).toBe(coordinatorAnswer(state))
  })

  test('nothing still preparing or delivering is folded, nor a refused decision', () => {
    const preparing = recoverCoordinator([begin], 0).get('t')!
    const deciding = recoverCoordinator([begin, commit], 0).get('t')!
    expect(coordinatorFold(preparing)).toBeNull()
    expect(coordinatorFold(deciding)).toBeNull()
    const done = recoverCoordinator([begin, commit, { type: 'done', txn: 't' }], 0).get('t')!
    expect(coordinatorFold({ ...done, refusals: { [P[0]!]: 'heuristic abort' } })).toBeNull()
  })

  test('nor one with a record still to be written again (a shared log reads it)', () => {
    const done = recoverCoordinator([begin, commit, { type: 'done', txn: 't' }], 0).get('t')!
    const unlogged = { record: commit, lazy: true, attempt: 0, retryAt: 50 }
    expect(coordinatorFold({ ...done, unlogged })).toBeNull()
    expect(coordinatorFold(done)).not.toBeNull()
  })
})
