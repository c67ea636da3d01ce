// Tables over the pure protocol core, in the manner of etcd's raft_paper_test: each row names the
// protocol rule it checks (init, step, check the exact state and actions).
import { describe, expect, test } from 'bun:test'
import {
  mulberry32,
  backoffMs,
  begin,
  coordinatorStep,
  isTxnId,
  parseVotes,
  participantStep,
  recoverCoordinator,
  recoverParticipant,
  resume,
  wakeAt,
  peersOf,
  tally,
  txnIdError,
  unknownTxn,
  voteFromFile,
  type Backoff,
  type CoordinatorAction,
  type CoordinatorEnv,
  type CoordinatorEvent,
  type CoordinatorMessage,
  type CoordinatorRecord,
  type CoordinatorTxn,
  type Decision,
  type Effect,
  type ParticipantAction,
  type ParticipantEnv,
  type ParticipantEvent,
  type ParticipantRecord,
  type ParticipantTxn,
  type Prng,
  type Retry,
  type Tally,
  type Vote,
  type Ballot,
} from '../lib/core/index.ts'

const T = 't1'

// ---------------------------------------------------------------------------------------------
// Participant

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

const check: ParticipantAction = { type: 'check', txn: T }
const ask: ParticipantAction = { type: 'ask', txn: T, coordinator: COORDINATOR, peers: PEERS }
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

function unresolved(now: number): ParticipantEvent {
  return { type: 'unresolved', txn: T, now }
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
    actions: [check],
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
    rule: 'checked no persists aborted (optional), releases the work and replies no with the reason',
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
    expect(all.filter((a) => a.type !== 'ask')).toEqual([])
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
    expect([...recoverParticipant(records, penv).values()]).toEqual(want)
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
    expect(essential(recoverParticipant(log, penv).get(T)!)).toEqual(essential(state))
  })

  test('replaying a live prepare rebuilds exactly the in-doubt state', () => {
    const { state, log } = runParticipant(unknown, [prepareTold, checked('yes')])
    expect(recoverParticipant(log, penv).get(T)).toEqual(state)
  })
})

// ---------------------------------------------------------------------------------------------
// Coordinator

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
    const [state, actions] = resume(started(), env)
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
    const [, actions] = resume(drive(started(), [vote('p0', 'yes'), vote('p1', 'yes')])[0], env)
    expect(actions).toEqual([
      logged(decisionRecord('abort')),
      ...PS.map((p) => sendDecide(p, 'abort')),
    ])
  })

  // Rule: run again after a crash, the coordinator re-delivers the decision it recorded instead
  // of deciding anew (Compatibility).
  test('resume of a deciding transaction resends the decision to everyone not acked', () => {
    const [before] = drive(decided('commit'), [ack('p0'), unreachable('p2', 500)])
    const [state, actions] = resume(before, env)
    expect(actions).toEqual([sendDecide('p1', 'commit'), sendDecide('p2', 'commit')])
    expect(state).toEqual({ ...before, outstanding: fresh(['p1', 'p2']) })
  })

  test('resume of a done transaction does nothing', () => {
    const [done] = drive(
      decided('commit'),
      PS.map((p) => ack(p)),
    )
    expect(resume(done, env)).toEqual([done, []])
  })

  const recovered: Omit<CoordinatorTxn, 'phase' | 'decision'> = {
    txn: T,
    participants: PS,
    votes: {},
    reasons: {},
    acks: [],
    refusals: {},
    deadline: 0,
    outstanding: {},
  }

  type Row = { rule: string; records: CoordinatorRecord[]; want: CoordinatorTxn[] }
  const rows: Row[] = [
    { rule: 'an empty log knows no transaction', records: [], want: [] },
    {
      rule: 'begin alone comes back preparing, without a decision',
      records: [beginRecord],
      want: [{ ...recovered, phase: 'preparing', decision: null }],
    },
    // Votes and acks are not logged: every participant is owed the decision again.
    {
      rule: 'begin then decision comes back deciding, owed to every participant',
      records: [beginRecord, decisionRecord('commit')],
      want: [{ ...recovered, phase: 'deciding', decision: 'commit', outstanding: fresh(PS) }],
    },
    {
      rule: 'begin, decision, done comes back done, acknowledged by all',
      records: [beginRecord, decisionRecord('abort'), doneRecord],
      want: [{ ...recovered, phase: 'done', decision: 'abort', acks: [...PS] }],
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
        { ...recovered, phase: 'deciding', decision: 'commit', outstanding: fresh(PS) },
        {
          ...recovered,
          txn: 't2',
          participants: ['p0'],
          phase: 'done',
          decision: 'abort',
          acks: ['p0'],
        },
      ],
    },
  ]
  test.each(rows)('$rule', ({ records, want }) => {
    expect([...recoverCoordinator(records).values()]).toEqual(want)
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
    const state = recoverCoordinator(records).get(T)!
    expect(resume(state, env)[1]).toEqual(want)
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
    const back = recoverCoordinator(log).get(T)!
    expect([back.phase, back.decision, back.acks]).toEqual([
      state.phase,
      state.decision,
      state.acks,
    ])
    expect(resume(back, env)).toEqual([back, []])
  })
})

// ---------------------------------------------------------------------------------------------
// Backoff

const zero: Prng = () => 0
const almostOne: Prng = () => 0.999
const half: Prng = () => 0.5

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
  const pa: CoordinatorEnv = { ...env, presumedAbort: true }

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
    const [back] = [...recoverCoordinator([beginRecord, decisionRecord('abort')]).values()]
    const [state, actions] = resume(back!, pa)
    expect(actions).toEqual(PS.map((p) => sendDecide(p, 'abort')))
    expect(state.phase).toBe('done')
  })

  // Rule: after a restart the decision goes again only to those owed it: a read-only or a `no`
  // voter is not, and a decision nobody is owed is done.
  test('a recovered decision is owed only to those its record names', () => {
    const [back] = [...recoverCoordinator([decisionRecord('commit', ['p0', 'p2'])]).values()]
    expect(back?.outstanding).toEqual(fresh(['p0', 'p2']))
    expect(back?.acks).toEqual(['p1'])
    const [none] = [...recoverCoordinator([decisionRecord('abort', [])]).values()]
    expect(none?.phase).toBe('done')
  })

  // Rule: the decision record names the participants, so a lost (lazy) begin loses nothing.
  test('a decision without its begin record recovers', () => {
    const [back] = [...recoverCoordinator([decisionRecord('commit')]).values()]
    expect(back?.participants).toEqual(PS)
    expect(back?.phase).toBe('deciding')
    expect(back?.outstanding).toEqual(fresh(PS))
  })
})

describe('one-phase commit (the service)', () => {
  const one: CoordinatorEnv = { ...env, onePhase: true, presumedAbort: true }
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
    const [back] = [...recoverCoordinator([begun]).values()]
    const [state, actions] = resume(back!, one)
    expect(state.phase).toBe('preparing')
    expect(actions).toEqual([{ type: 'send', to: 'p0', message: onePrepare }])
  })

  // Rule: a restart sends the operations again, so the begin record carries them.
  test('the operations survive a restart in the begin record and are sent again', () => {
    const ops = { p0: [{ op: 'add', key: 'n', amount: 1 }] } as const
    const [, actions] = begin(T, ['p0'], START, one, ops)
    const begun = (actions[0] as { record: CoordinatorRecord }).record
    expect(begun).toEqual({ type: 'begin', txn: T, participants: ['p0'], onePhase: true, ops })
    const [back] = [...recoverCoordinator([begun]).values()]
    const [, again] = resume(back!, one)
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

describe('backoffMs', () => {
  // Rule: exponential backoff with equal jitter: half of baseMs · 2^attempt fixed, half random,
  // never above capMs (defaults: base 10 ms, cap 1000 ms).
  const table: [attempt: number, prng0: number, prngHalf: number, prngAlmostOne: number][] = [
    [0, 5, 7.5, 9.995],
    [1, 10, 15, 19.99],
    [2, 20, 30, 39.98],
    [3, 40, 60, 79.96],
    [4, 80, 120, 159.92],
    [5, 160, 240, 319.84],
    [6, 320, 480, 639.68],
    [7, 500, 750, 999.5], // 10 · 2^7 = 1280 is over the cap
    [8, 500, 750, 999.5],
    [30, 500, 750, 999.5],
    [1000, 500, 750, 999.5], // a huge attempt neither overflows nor yields Infinity
  ]
  test.each(table)('attempt %i waits %d / %d / %d ms with prng 0 / 0.5 / 0.999', (n, a, b, c) => {
    expect(backoffMs(n, zero)).toBe(a)
    expect(backoffMs(n, half)).toBe(b)
    expect(backoffMs(n, almostOne)).toBeCloseTo(c, 9)
  })

  const custom: Backoff = { baseMs: 100, capMs: 250 }
  test.each([
    [0, 50],
    [1, 100],
    [2, 125],
    [3, 125],
  ])('with base 100 and cap 250, attempt %i waits %d ms with prng 0', (n, want) => {
    expect(backoffMs(n, zero, custom)).toBe(want)
  })

  test('the delay stays within [ceiling / 2, ceiling) and never falls as attempts grow', () => {
    const prng = mulberry32(42)
    let floor = 0
    for (let n = 0; n < 12; n++) {
      const ceiling = Math.min(1000, 10 * 2 ** n)
      const ms = backoffMs(n, prng)
      expect(ms).toBeGreaterThanOrEqual(ceiling / 2)
      expect(ms).toBeLessThan(ceiling)
      expect(ceiling / 2).toBeGreaterThanOrEqual(floor)
      floor = ceiling / 2
    }
  })

  test('the same seed gives the same delays (determinism)', () => {
    const run = (seed: number) => {
      const prng = mulberry32(seed)
      return Array.from({ length: 8 }, (_, n) => backoffMs(n, prng))
    }
    expect(run(7)).toEqual(run(7))
    expect(run(7)).not.toEqual(run(8))
  })
})

/** A small seeded PRNG, as in denoland/std async/_util_test.ts. */

// ---------------------------------------------------------------------------------------------
// Transaction ids

describe('isTxnId and txnIdError', () => {
  // Rule: transaction ids match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$; anything else is a 400.
  test.each([
    ['t1'],
    ['T'],
    ['0'],
    ['order-2024.06:01_a'],
    ['a..b'],
    ['a' + 'b'.repeat(127)], // 128 characters
  ])('%p is a transaction id', (id) => {
    expect(isTxnId(id)).toBe(true)
  })

  const rule = '1-128 of A-Z a-z 0-9 . _ : - starting with a letter or digit'
  test.each([
    ['empty', ''],
    ['with =', 't1=commit'],
    ['with a newline', 't1\n'],
    ['with a newline inside', 't1\nt2=commit'],
    ['with /', 'a/b'],
    ['starting with ..', '../etc'],
    ['starting with .', '.t1'],
    ['starting with -', '-t1'],
    ['with a space', 't 1'],
    ['with a quote', "t1'"],
    ['non-ASCII', 'tï'],
    ['129 characters', 'a'.repeat(129)],
  ])('%s is not a transaction id', (_, id) => {
    expect(isTxnId(id)).toBe(false)
    const shown = JSON.stringify(id.length > 40 ? `${id.slice(0, 40)}…` : id)
    expect(txnIdError(id)).toBe(`invalid "txn" ${shown}: expected ${rule}`)
  })

  test('a 200-character id is refused and shown cut to 40 characters', () => {
    const id = 'x'.repeat(200)
    expect(isTxnId(id)).toBe(false)
    expect(txnIdError(id)).toBe(`invalid "txn" "${'x'.repeat(40)}…": expected ${rule}`)
  })

  test.each([
    [undefined, 'missing "txn": expected a transaction id such as "t1"'],
    [1, 'invalid "txn": expected a string, got number'],
    [null, 'invalid "txn": expected a string, got object'],
    [['t1'], 'invalid "txn": expected a string, got object'],
    [true, 'invalid "txn": expected a string, got boolean'],
  ])('the non-string %p is refused: %s', (value, error) => {
    expect(isTxnId(value)).toBe(false)
    expect(txnIdError(value)).toBe(error)
  })
})

// ---------------------------------------------------------------------------------------------
// votes.txt

describe('parseVotes and voteFromFile', () => {
  // Rule: line N of votes.txt is the vote for tN (Compatibility); any case, surrounding spaces and
  // CRLF allowed, trailing blank lines ignored.
  test.each([
    ['LF', 'yes\nno\n', ['yes', 'no']],
    ['no final newline', 'yes\nno', ['yes', 'no']],
    ['CRLF', 'yes\r\nno\r\n', ['yes', 'no']],
    ['trailing blank lines', 'no\nyes\n\n \n\r\n', ['no', 'yes']],
    ['any case and spaces', ' YES \n\tNo\nyEs', ['yes', 'no', 'yes']],
    ['a byte-order mark', '\uFEFFyes\nno\n', ['yes', 'no']],
    ['an empty file', '', []],
    ['only blank lines', '\n\n', []],
  ])('parses %s', (_, text, want) => {
    expect(parseVotes(text)).toEqual(want as Vote[])
  })

  test.each([
    ['a bad word', 'yes\nmaybe\n', 'votes.txt line 2: expected "yes" or "no", got "maybe"'],
    [
      'a bad word with CRLF',
      'yes\r\nno\r\ny\r\n',
      'votes.txt line 3: expected "yes" or "no", got "y"',
    ],
    ['a blank line inside', 'yes\n\nno\n', 'votes.txt line 2: expected "yes" or "no", got ""'],
    ['a bad first line', 'true\n', 'votes.txt line 1: expected "yes" or "no", got "true"'],
  ])('throws on %s, naming the line', (_, text, error) => {
    expect(() => parseVotes(text)).toThrow(error)
  })

  const votes = parseVotes('yes\nno\nyes\n')
  test.each([
    ['t1', { vote: 'yes' }],
    ['t2', { vote: 'no', reason: 'votes.txt votes no on t2' }],
    ['t3', { vote: 'yes' }],
    // Rule: when votes.txt exists, a transaction with no line gets no (Compatibility).
    ['t4', { vote: 'no', reason: 'votes.txt has no line for t4' }],
    ['t1000', { vote: 'no', reason: 'votes.txt has no line for t1000' }],
    ['t0', { vote: 'no', reason: 'votes.txt has no line for t0' }],
    ['t01', { vote: 'no', reason: 'votes.txt has no line for t01' }],
    ['T1', { vote: 'no', reason: 'votes.txt has no line for T1' }],
    ['order-1', { vote: 'no', reason: 'votes.txt has no line for order-1' }],
    ['t1.5', { vote: 'no', reason: 'votes.txt has no line for t1.5' }],
    ['tx', { vote: 'no', reason: 'votes.txt has no line for tx' }],
  ])('%s gets its vote from votes.txt', (txn, want) => {
    expect(voteFromFile(votes, txn)).toEqual(want as { vote: Vote; reason?: string })
  })

  test('an empty votes.txt votes no on everything', () => {
    expect(voteFromFile(parseVotes(''), 't1')).toEqual({
      vote: 'no',
      reason: 'votes.txt has no line for t1',
    })
  })
})
