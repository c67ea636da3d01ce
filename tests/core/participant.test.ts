// Tables over the participant's core (lib/core/participant.ts), in the manner of etcd's
// raft_paper_test: each row names the protocol rule it checks (init, step, check the exact state
// and actions).
import { describe, expect, test } from 'bun:test'
import {
  participantStep,
  recoverParticipant,
  unknownTxn,
  type Ballot,
  type Decision,
  type Effect,
  type ParticipantAction,
  type ParticipantEnv,
  type ParticipantEvent,
  type ParticipantRecord,
  type ParticipantTxn,
} from '../../lib/core/index.ts'

const T = 't1'

const IN_DOUBT_MS = 5000
const penv: ParticipantEnv = {
  inDoubtAfterMs: IN_DOUBT_MS,
  prng: () => 0,
  backoff: { baseMs: 100, capMs: 5000 },
}
const NOW = 1000
const COORDINATOR = 'http://127.0.0.1:8000'
const PEERS = ['http://127.0.0.1:9001', 'http://127.0.0.1:9002']

const unknown = unknownTxn(T)
/** Unknown, but a prepare told it whom to ask should it end up in doubt. */
const told: ParticipantTxn = { ...unknown, coordinator: COORDINATOR, peers: PEERS }
const prepared: ParticipantTxn = {
  ...told,
  state: 'prepared',
  vote: 'yes',
  preparedAt: NOW,
  askAt: NOW + IN_DOUBT_MS,
}
const committed: ParticipantTxn = { ...prepared, state: 'committed', askAt: null }
const abortedAfterYes: ParticipantTxn = { ...prepared, state: 'aborted', askAt: null }
const abortedUnseen: ParticipantTxn = { ...unknown, state: 'aborted' }
const NO_REASON = 'votes.txt votes no on t1'
const abortedNo: ParticipantTxn = { ...told, state: 'aborted', vote: 'no', reason: NO_REASON }
const heuristicCommitted: ParticipantTxn = { ...committed, heuristic: true }
const COOPERATIVE = 'aborted on a cooperative termination request from a peer in doubt'
const abortedByPeer: ParticipantTxn = { ...abortedUnseen, reason: COOPERATIVE }

const check: ParticipantAction = { type: 'check', txn: T, ops: [], context: {} }
const checkTold: ParticipantAction = {
  ...check,
  context: { coordinator: COORDINATOR, peers: PEERS, at: NOW },
}
const ask: ParticipantAction = { type: 'ask-coordinator', txn: T, coordinator: COORDINATOR }
const uncertain: ParticipantAction = { type: 'reply', reply: { kind: 'uncertain', txn: T } }
const preparedRecord: ParticipantRecord = {
  txn: T,
  state: 'prepared',
  vote: 'yes',
  coordinator: COORDINATOR,
  peers: PEERS,
  at: NOW,
}

function persist(
  record: Omit<ParticipantRecord, 'txn'>,
  effect?: Effect,
  optional?: true,
): ParticipantAction {
  return {
    type: 'persist',
    record: { txn: T, ...record },
    ...(effect ? { effect } : {}),
    ...(optional ? { optional } : {}),
  }
}

function voteReply(vote: Ballot, reason: string | null): ParticipantAction {
  return { type: 'reply', reply: { kind: 'vote', txn: T, vote, reason } }
}

function outcome(state: 'committed' | 'aborted'): ParticipantAction {
  return { type: 'reply', reply: { kind: 'outcome', txn: T, state } }
}

function conflict(error: string): ParticipantAction {
  return { type: 'reply', reply: { kind: 'conflict', txn: T, error } }
}

const prepare: ParticipantEvent = { type: 'prepare', txn: T }
const prepareTold: ParticipantEvent = {
  type: 'prepare',
  txn: T,
  now: NOW,
  coordinator: COORDINATOR,
  peers: PEERS,
}
const commit: ParticipantEvent = { type: 'decide', txn: T, decision: 'commit' }
const abort: ParticipantEvent = { type: 'decide', txn: T, decision: 'abort' }
const request: ParticipantEvent = { type: 'decision-request', txn: T }

function checked(vote: Ballot, reason?: string): ParticipantEvent {
  const event: ParticipantEvent = { type: 'checked', txn: T, vote, now: NOW }
  return reason === undefined ? event : { ...event, reason }
}

function resolve(decision: Decision): ParticipantEvent {
  return { type: 'resolve', txn: T, decision }
}

function ptick(now: number): ParticipantEvent {
  return { type: 'tick', txn: T, now }
}

/** Nobody asked knew the outcome: every peer answered nothing. */
function unresolved(now: number): ParticipantEvent {
  return { type: 'peer-answers', txn: T, states: [null, null], now }
}

const ALREADY_ABORTED = 'transaction is already aborted'
const CANNOT_COMMIT_ABORTED = 'Cannot commit transaction "t1" as it is already aborted'
const CANNOT_ABORT_COMMITTED = 'Cannot abort transaction "t1" as it is already committed'
const CANNOT_COMMIT_UNKNOWN = 'Cannot commit transaction "t1" as it was never prepared here'

type ParticipantRow = {
  rule: string
  given: ParticipantTxn
  event: ParticipantEvent
  state: ParticipantTxn
  actions: ParticipantAction[]
}

const participantRows: ParticipantRow[] = [
  // Rule: a participant votes only after its resource has checked the work (votes.txt, data ops).
  {
    rule: 'prepare of an unknown transaction asks for a check and persists nothing',
    given: unknown,
    event: prepare,
    state: unknown,
    actions: [check],
  },
  {
    rule: 'prepare of an unknown transaction remembers whom to ask if in doubt, persists nothing',
    given: unknown,
    event: prepareTold,
    state: told,
    actions: [checkTold],
  },
  // Rule: the yes vote is durable BEFORE the participant answers yes (Durability rules).
  {
    rule: 'checked yes persists prepared (with whom to ask) before it replies yes',
    given: told,
    event: checked('yes'),
    state: prepared,
    actions: [{ type: 'persist', record: preparedRecord }, voteReply('yes', null)],
  },
  // Rule: a `no` is a unilateral abort, allowed because no promise was made (Protocol rules);
  // under presumed abort its record is optional: forgetting a `no` is safe.
  {
    rule: 'checked no persists aborted (optional), releases the work, replies no and why',
    given: told,
    event: checked('no', NO_REASON),
    state: abortedNo,
    actions: [
      persist({ state: 'aborted', vote: 'no', reason: NO_REASON }, 'release', true),
      voteReply('no', NO_REASON),
    ],
  },
  // Rule: read-only: a participant whose operations only read has nothing to commit or
  // abort: it persists nothing, forgets the transaction and replies read-only.
  {
    rule: 'checked read-only persists nothing, forgets the transaction and replies read-only',
    given: told,
    event: checked('read-only'),
    state: unknown,
    actions: [voteReply('read-only', null)],
  },
  // Rule: one phase (the only participant): a yes commits at once, applying the writes with the
  // commit record, and the answer is the outcome; a repeated one-phase prepare repeats it.
  {
    rule: 'checked yes in one phase persists committed with the writes and replies committed',
    given: told,
    event: { type: 'checked', txn: T, vote: 'yes', now: NOW, onePhase: true },
    state: { ...told, state: 'committed', vote: 'yes' },
    actions: [persist({ state: 'committed', vote: 'yes' }, 'apply'), outcome('committed')],
  },
  {
    rule: 'a repeated one-phase prepare of a committed transaction replies committed',
    given: { ...told, state: 'committed', vote: 'yes' },
    event: { ...prepareTold, onePhase: true },
    state: { ...told, state: 'committed', vote: 'yes' },
    actions: [outcome('committed')],
  },
  // Rule: in one phase a `no` is the decision: its record is required, not optional, or a late
  // copy of the prepare could be checked again and commit.
  {
    rule: 'checked no in one phase persists aborted, required, and replies no',
    given: told,
    event: { type: 'checked', txn: T, vote: 'no', reason: NO_REASON, now: NOW, onePhase: true },
    state: abortedNo,
    actions: [
      persist({ state: 'aborted', vote: 'no', reason: NO_REASON }, 'release'),
      voteReply('no', NO_REASON),
    ],
  },
  // Rule: a check of read-only operations that fails keeps nothing either: a retried prepare
  // may be checked again after the data moved, and a recorded abort would contradict the
  // read-only vote the coordinator counted first.
  {
    rule: 'a failed read-only check persists nothing, forgets the transaction and replies no',
    given: told,
    event: { type: 'checked', txn: T, vote: 'no', reason: NO_REASON, now: NOW, readOnly: true },
    state: unknown,
    actions: [voteReply('no', NO_REASON)],
  },
  {
    rule: 'checked no without a reason records no reason',
    given: unknown,
    event: checked('no'),
    state: { ...unknown, state: 'aborted', vote: 'no' },
    actions: [persist({ state: 'aborted', vote: 'no' }, 'release', true), voteReply('no', null)],
  },
  // Rule: a repeated prepare returns the recorded vote and persists nothing (Protocol rules).
  {
    rule: 'a repeated prepare of a prepared transaction replies yes and persists nothing',
    given: prepared,
    event: prepareTold,
    state: prepared,
    actions: [voteReply('yes', null)],
  },
  {
    rule: 'a repeated prepare of a committed transaction replies yes and persists nothing',
    given: committed,
    event: prepare,
    state: committed,
    actions: [voteReply('yes', null)],
  },
  {
    rule: 'a repeated prepare after a no vote replies no with the recorded reason',
    given: abortedNo,
    event: prepare,
    state: abortedNo,
    actions: [voteReply('no', NO_REASON)],
  },
  // Rule: an aborted transaction never answers yes again, even if it once voted yes: a yes now
  // could let a coordinator commit it.
  {
    rule: 'prepare of a transaction aborted after a yes vote replies no',
    given: abortedAfterYes,
    event: prepare,
    state: abortedAfterYes,
    actions: [voteReply('no', ALREADY_ABORTED)],
  },
  // Rule: abort of an unseen transaction is recorded; a later prepare votes no (Protocol rules).
  {
    rule: 'prepare of a transaction aborted before it was seen replies no',
    given: abortedUnseen,
    event: prepareTold,
    state: abortedUnseen,
    actions: [voteReply('no', ALREADY_ABORTED)],
  },
  {
    rule: 'commit of a prepared transaction persists committed, applies, then replies',
    given: prepared,
    event: commit,
    state: committed,
    actions: [persist({ state: 'committed', vote: 'yes' }, 'apply'), outcome('committed')],
  },
  // Rule: a prepared participant moves only on the coordinator's decision (Protocol rules).
  {
    rule: 'abort of a prepared transaction persists aborted, releases, then replies',
    given: prepared,
    event: abort,
    state: abortedAfterYes,
    actions: [persist({ state: 'aborted', vote: 'yes' }, 'release'), outcome('aborted')],
  },
  // Rule: a repeated commit/abort of the same outcome returns 200 again (Protocol rules).
  {
    rule: 'a repeated commit replies the outcome again and persists nothing',
    given: committed,
    event: commit,
    state: committed,
    actions: [outcome('committed')],
  },
  {
    rule: 'a repeated abort replies the outcome again and persists nothing',
    given: abortedAfterYes,
    event: abort,
    state: abortedAfterYes,
    actions: [outcome('aborted')],
  },
  {
    rule: 'abort of a transaction that voted no replies the outcome and persists nothing',
    given: abortedNo,
    event: abort,
    state: abortedNo,
    actions: [outcome('aborted')],
  },
  // Rule: an outcome never flips: commit after abort (or the reverse) is a 409 and changes
  // nothing (Protocol rules).
  {
    rule: 'commit after abort is a conflict and changes nothing',
    given: abortedAfterYes,
    event: commit,
    state: abortedAfterYes,
    actions: [conflict(CANNOT_COMMIT_ABORTED)],
  },
  {
    rule: 'commit after a no vote is a conflict and changes nothing',
    given: abortedNo,
    event: commit,
    state: abortedNo,
    actions: [conflict(CANNOT_COMMIT_ABORTED)],
  },
  {
    rule: 'abort after commit is a conflict and changes nothing',
    given: committed,
    event: abort,
    state: committed,
    actions: [conflict(CANNOT_ABORT_COMMITTED)],
  },
  // Rule: commit of a transaction the participant never prepared is a 409 (Protocol rules).
  {
    rule: 'commit of an unknown transaction is a conflict and changes nothing',
    given: unknown,
    event: commit,
    state: unknown,
    actions: [conflict(CANNOT_COMMIT_UNKNOWN)],
  },
  // Rule: abort of a transaction the participant has never seen is recorded (Protocol rules).
  {
    rule: 'abort of an unknown transaction persists aborted',
    given: unknown,
    event: abort,
    state: abortedUnseen,
    actions: [persist({ state: 'aborted' }, 'release'), outcome('aborted')],
  },
  // Rule: a check that raced with a decision is stale: answer as a repeated prepare would.
  {
    rule: 'a stale checked yes after an abort replies no and persists nothing',
    given: abortedUnseen,
    event: checked('yes'),
    state: abortedUnseen,
    actions: [voteReply('no', ALREADY_ABORTED)],
  },
  {
    rule: 'a stale checked no after a yes vote replies the recorded yes and persists nothing',
    given: prepared,
    event: checked('no', 'late'),
    state: prepared,
    actions: [voteReply('yes', null)],
  },
  {
    rule: 'a stale checked yes after a commit replies yes and persists nothing',
    given: committed,
    event: checked('yes'),
    state: committed,
    actions: [voteReply('yes', null)],
  },
  // Rule: an operator's forced outcome (in-doubt resolution) is marked heuristic.
  {
    rule: 'resolve commit of a prepared transaction persists a heuristic commit',
    given: prepared,
    event: resolve('commit'),
    state: heuristicCommitted,
    actions: [
      persist({ state: 'committed', vote: 'yes', heuristic: true }, 'apply'),
      outcome('committed'),
    ],
  },
  {
    rule: 'resolve abort of a prepared transaction persists a heuristic abort',
    given: prepared,
    event: resolve('abort'),
    state: { ...abortedAfterYes, heuristic: true },
    actions: [
      persist({ state: 'aborted', vote: 'yes', heuristic: true }, 'release'),
      outcome('aborted'),
    ],
  },
  {
    rule: 'resolve cannot flip an outcome either',
    given: committed,
    event: resolve('abort'),
    state: committed,
    actions: [conflict(CANNOT_ABORT_COMMITTED)],
  },
  {
    rule: 'resolve commit of an unknown transaction is a conflict',
    given: unknown,
    event: resolve('commit'),
    state: unknown,
    actions: [conflict(CANNOT_COMMIT_UNKNOWN)],
  },
  {
    rule: 'the coordinator decision contradicting a heuristic commit is a conflict',
    given: heuristicCommitted,
    event: abort,
    state: heuristicCommitted,
    actions: [conflict(CANNOT_ABORT_COMMITTED)],
  },
  {
    rule: 'the coordinator decision matching a heuristic commit is acknowledged, still heuristic',
    given: heuristicCommitted,
    event: commit,
    state: heuristicCommitted,
    actions: [outcome('committed')],
  },
  // Rule: cooperative termination: a participant in doubt asks a peer that may know the outcome
  // (Protocol rules). A prepared peer does not know it; a decided one does.
  {
    rule: 'a decision request to a prepared peer answers uncertain and changes nothing',
    given: prepared,
    event: request,
    state: prepared,
    actions: [uncertain],
  },
  {
    rule: 'a decision request to a committed peer answers committed',
    given: committed,
    event: request,
    state: committed,
    actions: [outcome('committed')],
  },
  {
    rule: 'a decision request to an aborted peer answers aborted',
    given: abortedNo,
    event: request,
    state: abortedNo,
    actions: [outcome('aborted')],
  },
  // A peer that never voted is free to abort, and must, so that it can never vote yes later.
  {
    rule: 'a decision request to a peer that never voted persists an abort before answering',
    given: unknown,
    event: request,
    state: abortedByPeer,
    actions: [persist({ state: 'aborted', reason: COOPERATIVE }, 'release'), outcome('aborted')],
  },
  {
    rule: 'a prepare after a cooperative abort votes no',
    given: abortedByPeer,
    event: prepare,
    state: abortedByPeer,
    actions: [voteReply('no', COOPERATIVE)],
  },
  // Rule: a participant that voted yes never decides on its own: in doubt it only asks.
  {
    rule: 'a tick before the in-doubt time does nothing',
    given: prepared,
    event: ptick(NOW + IN_DOUBT_MS - 1),
    state: prepared,
    actions: [],
  },
  {
    rule: 'a tick at the in-doubt time asks the coordinator and peers, and stays prepared',
    given: prepared,
    event: ptick(NOW + IN_DOUBT_MS),
    state: { ...prepared, askAt: null },
    actions: [ask],
  },
  {
    rule: 'a tick while a question is out asks nothing more',
    given: { ...prepared, askAt: null },
    event: ptick(NOW + 10 * IN_DOUBT_MS),
    state: { ...prepared, askAt: null },
    actions: [],
  },
  {
    rule: 'an unresolved question schedules the next one with backoff, still prepared',
    given: { ...prepared, askAt: null, asks: 2 },
    event: unresolved(20_000),
    // backoff base 100 · 2^2 = 400, halved by the jitter of prng 0
    state: { ...prepared, askAt: 20_200, asks: 3 },
    actions: [],
  },
  {
    rule: 'a duplicate unresolved while a question is scheduled is ignored',
    given: prepared,
    event: unresolved(20_000),
    state: prepared,
    actions: [],
  },
  {
    rule: 'a tick of a committed transaction asks nothing',
    given: committed,
    event: ptick(NOW + 10 * IN_DOUBT_MS),
    state: committed,
    actions: [],
  },
  {
    rule: 'an unresolved for a decided transaction is ignored',
    given: { ...abortedAfterYes, askAt: null },
    event: unresolved(20_000),
    state: { ...abortedAfterYes, askAt: null },
    actions: [],
  },
]

describe('participantStep', () => {
  test.each(participantRows)('$rule', ({ given, event, state, actions }) => {
    expect(participantStep(given, event, penv)).toEqual([state, actions])
  })

  // Rule: each durable transition is persisted before any message that depends on it
  // (Architecture; Durability rules). Checked over every row of the table above.
  test.each(participantRows)('a persist comes first and records the new state: $rule', (row) => {
    const [next, actions] = participantStep(row.given, row.event, penv)
    const persists = actions.filter((a) => a.type === 'persist')
    if (next.state === row.given.state && next.heuristic === row.given.heuristic) {
      expect(persists).toEqual([])
      return
    }
    expect(persists).toHaveLength(1)
    expect(actions[0]).toEqual(persists[0]!)
    expect(persists[0]!.record.state).toBe(next.state as ParticipantRecord['state'])
    expect(actions.at(-1)?.type).toBe('reply')
  })

  test('the yes reply is never before the prepared record (action order)', () => {
    const [, actions] = participantStep(unknown, checked('yes'), penv)
    expect(actions.map((a) => a.type)).toEqual(['persist', 'reply'])
  })

  test('the commit reply is never before the committed record (action order)', () => {
    const [, actions] = participantStep(prepared, commit, penv)
    expect(actions.map((a) => a.type)).toEqual(['persist', 'reply'])
    expect(actions[0]).toMatchObject({ type: 'persist', effect: 'apply' })
  })

  // Rule: every message is idempotent (Protocol rules): a whole exchange, with each message sent
  // twice, logs exactly one record per transition.
  test('a doubled exchange logs one record per transition', () => {
    const events = [prepareTold, checked('yes'), prepareTold, commit, commit, abort, prepare]
    const { state, log, replies } = runParticipant(unknown, events)
    expect(state).toEqual(committed)
    expect(log).toEqual([preparedRecord, { txn: T, state: 'committed', vote: 'yes' }])
    expect(replies).toEqual([
      voteReply('yes', null),
      voteReply('yes', null),
      outcome('committed'),
      outcome('committed'),
      conflict(CANNOT_ABORT_COMMITTED),
      voteReply('yes', null),
    ])
  })

  // Rule: a prepared participant blocks rather than decide alone: however long it waits and
  // however often nobody knows, it stays prepared and keeps asking.
  test('a participant that never learns the outcome stays prepared and keeps asking', () => {
    const events: ParticipantEvent[] = []
    for (let now = NOW; now < NOW + 100 * IN_DOUBT_MS; now += 250) {
      events.push(ptick(now), unresolved(now))
    }
    const { state, log, all } = runParticipant(prepared, events)
    expect(state.state).toBe('prepared')
    expect(log).toEqual([])
    expect(all.filter((a) => !a.type.startsWith('ask-'))).toEqual([])
    expect(all.length).toBeGreaterThan(10)
  })
})

function runParticipant(start: ParticipantTxn, events: readonly ParticipantEvent[]) {
  let state = start
  const log: ParticipantRecord[] = []
  const replies: ParticipantAction[] = []
  const all: ParticipantAction[] = []
  for (const event of events) {
    const [next, actions] = participantStep(state, event, penv)
    state = next
    all.push(...actions)
    for (const a of actions) {
      if (a.type === 'persist') log.push(a.record)
      if (a.type === 'reply') replies.push(a)
    }
  }
  return { state, log, replies, all }
}

describe('recoverParticipant', () => {
  type Row = { rule: string; records: ParticipantRecord[]; want: ParticipantTxn[] }
  const rows: Row[] = [
    { rule: 'an empty log knows no transaction', records: [], want: [] },
    // Rule: a participant that voted yes never decides on its own: prepared survives a restart,
    // and asks about its outcome once the in-doubt time after its vote has passed.
    {
      rule: 'a prepared record survives a restart as prepared, in doubt from its vote',
      records: [preparedRecord],
      want: [prepared],
    },
    {
      rule: 'a later record wins: prepared then committed is committed',
      records: [preparedRecord, { txn: T, state: 'committed', vote: 'yes' }],
      want: [committed],
    },
    {
      rule: 'a later record wins: prepared then aborted is aborted, the yes vote kept',
      records: [preparedRecord, { txn: T, state: 'aborted' }],
      want: [abortedAfterYes],
    },
    {
      rule: 'a no vote comes back with its reason',
      records: [{ txn: T, state: 'aborted', vote: 'no', reason: NO_REASON }],
      want: [{ ...unknown, state: 'aborted', vote: 'no', reason: NO_REASON }],
    },
    {
      rule: 'an abort of an unseen transaction comes back aborted without a vote',
      records: [{ txn: T, state: 'aborted' }],
      want: [abortedUnseen],
    },
    {
      rule: 'a heuristic outcome comes back heuristic',
      records: [preparedRecord, { txn: T, state: 'committed', vote: 'yes', heuristic: true }],
      want: [heuristicCommitted],
    },
    {
      rule: 'a prepared record without a time is in doubt at once after a restart',
      records: [{ txn: T, state: 'prepared', vote: 'yes' }],
      want: [{ ...unknown, state: 'prepared', vote: 'yes', preparedAt: 0, askAt: IN_DOUBT_MS }],
    },
    {
      rule: 'transactions are folded independently',
      records: [
        preparedRecord,
        { txn: 't2', state: 'prepared', vote: 'yes', at: NOW },
        { txn: 't2', state: 'committed', vote: 'yes' },
        { txn: 't3', state: 'aborted', vote: 'no' },
      ],
      want: [
        prepared,
        { ...unknownTxn('t2'), state: 'committed', vote: 'yes', preparedAt: NOW },
        { ...unknownTxn('t3'), state: 'aborted', vote: 'no' },
      ],
    },
  ]

  test.each(rows)('$rule', ({ records, want }) => {
    expect([...recoverParticipant(records, 0, penv).values()]).toEqual(want)
  })

  // Rule: replaying the log rebuilds the state (a crash between log and view loses nothing).
  const essential = ({ txn, state, vote, reason, heuristic }: ParticipantTxn) => ({
    txn,
    state,
    vote,
    reason,
    heuristic,
  })
  test.each([
    ['prepared', [prepareTold, checked('yes')]],
    ['committed', [prepareTold, checked('yes'), commit]],
    ['aborted after yes', [prepareTold, checked('yes'), abort]],
    ['voted no', [prepareTold, checked('no', NO_REASON)]],
    ['aborted unseen', [abort]],
    ['resolved', [prepareTold, checked('yes'), resolve('commit')]],
    ['aborted by a peer', [request]],
  ] as [string, ParticipantEvent[]][])('replaying a live run (%s) rebuilds its state', (_, es) => {
    const { state, log } = runParticipant(unknown, es)
    expect(essential(recoverParticipant(log, 0, penv).get(T)!)).toEqual(essential(state))
  })

  test('replaying a live prepare rebuilds exactly the in-doubt state', () => {
    const { state, log } = runParticipant(unknown, [prepareTold, checked('yes')])
    expect(recoverParticipant(log, 0, penv).get(T)).toEqual(state)
  })
})
