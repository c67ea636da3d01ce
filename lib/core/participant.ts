// The participant's view of one transaction: unknown → prepared → committed | aborted, or
// unknown → aborted. Pure: the shell carries out the actions in order, and a `persist` is durable
// before any later action of the same step leaves the node.
import type { Backoff } from './backoff.ts'
import { onOnePhaseChecked, repeatedOnePhase } from './one-phase.ts'
import { onReadOnlyChecked, readsOnly } from './read-only.ts'
import type { Ballot, Decision, Prng } from './types.ts'
import { inDoubtStep } from './in-doubt.ts'
import { onPre, onPreAcks, onStateReports, onStateRequest, onTick3 } from './three-phase.ts'
import { threePhaseOf } from './three-phase.ts'

export type * from './participant-types.ts'
import type {
  Effect,
  ParticipantAction,
  ParticipantEvent,
  ParticipantRecord,
  ParticipantTxn,
  PersistAction,
  PrepareContext,
} from './participant-types.ts'

type ParticipantStep = [ParticipantTxn, ParticipantAction[]]

export type ParticipantEnv = Readonly<{
  inDoubtAfterMs: number
  prng: Prng
  backoff: Backoff
  /** The store can commit a `yes` at once, the writes and the record in one atomic durable
   * write (SQLite can; PostgreSQL cannot, so it always takes two phases). */
  onePhase?: boolean
  /** The store keeps three-phase states (false: a three-phase prepare is voted no). */
  threePhase?: boolean
}>

export const defaultParticipantEnv: ParticipantEnv = {
  inDoubtAfterMs: 5000,
  prng: () => 0.5,
  backoff: { baseMs: 100, capMs: 5000 },
  onePhase: true,
}

export function unknownTxn(txn: string): ParticipantTxn {
  return {
    txn,
    state: 'unknown',
    vote: null,
    reason: null,
    heuristic: false,
    coordinator: null,
    peers: [],
    preparedAt: null,
    askAt: null,
    asks: 0,
    digest: null,
  }
}

export function participantStep(
  state: ParticipantTxn,
  event: ParticipantEvent,
  env: ParticipantEnv = defaultParticipantEnv,
): ParticipantStep {
  const step = stepOf(state, event, env)
  return 'shareFlush' in event && event.shareFlush ? sharingFlush(step) : step
}

/** In a batch, an outcome record may share the store's next flush with whatever else came with
 * it (a store decides how long it waits for company: SQLite's waits for nothing but the next
 * turn); what depends on it still waits until it is durable. A `prepared` record never waits:
 * the coordinator is waiting for the vote. */
function sharingFlush([state, actions]: ParticipantStep): ParticipantStep {
  const shared = actions.map((a): ParticipantAction => {
    if (a.type !== 'persist' || a.record.state === 'prepared') return a
    return { ...a, shareFlush: true }
  })
  return [state, shared]
}

function stepOf(state: ParticipantTxn, event: ParticipantEvent, env: ParticipantEnv) {
  switch (event.type) {
    case 'prepare':
      return onPrepare(withContext(state, event), event, env)
    case 'checked':
      // A store may still vote `yes` on reads (PostgreSQL holds their row locks): then it is
      // prepared like any other.
      if (event.readOnly && event.vote !== 'yes') {
        return onReadOnlyChecked(state, event.vote, event.reason ?? null)
      }
      if (event.onePhase && event.vote === 'yes') return onOnePhaseChecked(state)
      return onChecked(state, event.vote, event.reason ?? null, event.now ?? 0, env, event.onePhase)
    case 'decide':
      return onDecide(state, event.decision, false)
    case 'resolve':
      return onDecide(state, event.decision, true)
    case 'persist-failed':
      return onPersistFailed(state, event.action, event.error, event.now, env)
    case 'pre':
      return onPre(state, event.decision, event.attempt, event.now, env)
    case 'state-request':
      return onStateRequest(state, event.attempt, event.now, env)
    case 'state-reports':
      return onStateReports(state, event.attempt, event.reports, event.now, env)
    case 'pre-acks':
      return onPreAcks(state, event.attempt, event.acked, event.now, env)
    case 'tick':
      return state.three ? onTick3(state, event.now) : inDoubtStep(state, event, env)
    default:
      return inDoubtStep(state, event, env)
  }
}

/** Remembers whom to ask if this transaction ends up in doubt (only before it is prepared). */
function withContext(
  state: ParticipantTxn,
  event: {
    coordinator?: string
    coordinators?: readonly string[]
    peers?: readonly string[]
    opsDigest?: string
    three?: { self: string }
  },
): ParticipantTxn {
  if (state.state !== 'unknown') return state
  const coordinator = event.coordinator ?? null
  const others = event.coordinators?.length ? { coordinators: event.coordinators } : {}
  const peers = event.peers ?? []
  const next = { ...state, coordinator, ...others, peers, digest: event.opsDigest ?? null }
  return event.three ? { ...next, three: threePhaseOf(event.three.self) } : next
}

/** Why a repeated prepare is refused: it carries other operations than those voted on (an
 * outsider's prepare sent first must not lend its `yes` to the coordinator's). Null when it
 * repeats the same, or when either side has no digest to compare. */
function otherOperations(state: ParticipantTxn, digest: string | undefined): string | null {
  if (state.vote !== 'yes' || state.digest === null || digest === undefined) return null
  if (digest === state.digest) return null
  const txn = `transaction "${state.txn}"`
  return `Cannot prepare ${txn} again with other operations than it was prepared with`
}

export function voteReply(
  state: ParticipantTxn,
  vote: Ballot,
  reason: string | null,
): ParticipantAction {
  return { type: 'reply', reply: { kind: 'vote', txn: state.txn, vote, reason } }
}

function onPrepare(
  state: ParticipantTxn,
  event: ParticipantEvent & { type: 'prepare' },
  env: ParticipantEnv,
): ParticipantStep {
  if (state.state !== 'unknown') {
    const refusal = otherOperations(state, event.opsDigest)
    if (refusal !== null) return [state, [conflictReply(state.txn, refusal)]]
    return answerPrepare(state, event.onePhase === true)
  }
  if (state.three && env.threePhase === false) {
    const reason = "three-phase commit is not supported by this participant's store"
    return onChecked(state, 'no', reason, event.now ?? 0, env)
  }
  const ops = event.ops ?? []
  const check: ParticipantAction = {
    type: 'check',
    txn: state.txn,
    ops,
    context: contextOf(event),
    // Three-phase commit counts every participant in its quorums: none may vote read-only and
    // forget, and none commits in one phase.
    ...(readsOnly(ops) && !state.three ? { readOnly: true } : {}),
    ...(event.onePhase && env.onePhase !== false && !state.three ? { onePhase: true } : {}),
    ...(event.shareFlush ? { shareFlush: true } : {}),
  }
  return [state, [check]]
}

/** What a prepare learns from the state it finds: a repeated one gets the recorded answer and
 * persists nothing. An aborted transaction answers `no` even if it once voted yes: a `yes` now
 * could let a coordinator commit it. */
export function answerPrepare(state: ParticipantTxn, onePhase = false): ParticipantStep {
  if (state.state === 'aborted') {
    return [state, [voteReply(state, 'no', state.reason ?? 'transaction is already aborted')]]
  }
  if (state.state === 'committed' && onePhase) return repeatedOnePhase(state)
  return [state, [voteReply(state, 'yes', null)]]
}

function onChecked(
  state: ParticipantTxn,
  vote: Ballot,
  reason: string | null,
  now: number,
  env: ParticipantEnv,
  onePhase = false,
): ParticipantStep {
  // A check that raced with a decision for the same transaction is stale: answer as prepare would.
  if (state.state !== 'unknown') return answerPrepare(state)
  // Read-only: nothing to make durable and nothing to wait for; it forgets the transaction.
  // The coordinator leaves it out of phase two and out of the peers asked in doubt, since
  // after a restart it could not tell this vote from never having voted.
  if (vote === 'read-only') return onReadOnlyChecked(state, vote, reason)
  if (vote === 'yes') {
    const askAt = now + env.inDoubtAfterMs
    const next: ParticipantTxn = {
      ...state,
      state: 'prepared',
      vote: 'yes',
      preparedAt: now,
      askAt,
    }
    return [next, [persistOf(next), voteReply(next, 'yes', null)]]
  }
  // A `no` is a unilateral abort: allowed because no promise was made yet. Its record may be
  // lost (presumed abort) except in one phase, where this `no` is the decision: forgotten, a
  // late copy of the same prepare could be checked again and commit.
  const next: ParticipantTxn = { ...state, state: 'aborted', vote: 'no', reason }
  const release = persistOf(next, 'release')
  const persist = onePhase ? release : ({ ...release, optional: true } as const)
  return [next, [persist, voteReply(next, 'no', reason)]]
}

export function onDecide(
  state: ParticipantTxn,
  decision: Decision,
  heuristic: boolean,
): ParticipantStep {
  const wanted = decision === 'commit' ? 'committed' : 'aborted'
  if (state.state === wanted) return [state, [outcomeReply(state.txn, wanted)]] // idempotent
  const refusal = refuseDecision(state, decision)
  if (refusal !== null) return [state, [conflictReply(state.txn, refusal)]]
  const next: ParticipantTxn = { ...state, state: wanted, heuristic, askAt: null }
  const effect = decision === 'commit' ? 'apply' : 'release'
  // Three-phase: should the write fail, it is what its disk holds again (precommitted, say).
  const persist = state.three
    ? { ...persistOf(next, effect), undo: state }
    : persistOf(next, effect)
  return [next, [persist, outcomeReply(state.txn, wanted)]]
}

/** The store could not make a record durable: nothing of that step happened. A transaction
 * whose `prepared` record is on disk stays prepared, locks held, and the sender retries; any
 * other goes back to unknown and lets go of what its check took. A lost `no` is allowed (it
 * was optional): the vote still stands, and this participant will never vote yes on it. */
function onPersistFailed(
  state: ParticipantTxn,
  action: PersistAction,
  error: string,
  now: number,
  env: ParticipantEnv,
): ParticipantStep {
  const txn = state.txn
  if (action.optional)
    return [state, [{ type: 'discard', txn }, voteReply(state, 'no', state.reason)]]
  const unavailable: ParticipantAction = {
    type: 'reply',
    reply: { kind: 'unavailable', txn, error: `cannot record ${txn}: ${error}` },
  }
  if (action.undo) return [{ ...action.undo, askAt: now + env.inDoubtAfterMs }, [unavailable]]
  if (action.record.state !== 'prepared' && state.preparedAt !== null) {
    const prepared: ParticipantTxn = {
      ...state,
      state: 'prepared',
      heuristic: false,
      askAt: now + env.inDoubtAfterMs,
    }
    return [prepared, [unavailable]]
  }
  return [unknownTxn(txn), [{ type: 'discard', txn }, unavailable]]
}

/** Why a decision cannot be taken in this state, or null when it can. Outcomes never flip. */
function refuseDecision(state: ParticipantTxn, decision: Decision): string | null {
  const txn = `transaction "${state.txn}"`
  if (state.state === 'committed') return `Cannot abort ${txn} as it is already committed`
  if (state.state === 'aborted') return `Cannot commit ${txn} as it is already aborted`
  if (state.state === 'unknown' && decision === 'commit') {
    return `Cannot commit ${txn} as it was never prepared here`
  }
  return null
}

function conflictReply(txn: string, error: string): ParticipantAction {
  return { type: 'reply', reply: { kind: 'conflict', txn, error } }
}

export function outcomeReply(txn: string, state: 'committed' | 'aborted'): ParticipantAction {
  return { type: 'reply', reply: { kind: 'outcome', txn, state } }
}

export function persistOf(state: ParticipantTxn, effect?: Effect): PersistAction {
  if (state.state === 'unknown') throw new Error('assertion: unknown is never persisted')
  // Field by field, in this order (the log's text keeps it): every prepare and outcome, and
  // every fold, builds one, where a spread of each optional field made an object apiece.
  const record: { -readonly [K in keyof ParticipantRecord]: ParticipantRecord[K] } = {
    txn: state.txn,
    state: state.state,
  }
  const prepared = state.state === 'prepared'
  if (state.vote) record.vote = state.vote
  if (state.reason) record.reason = state.reason
  if (state.heuristic) record.heuristic = true
  if (prepared && state.coordinator) record.coordinator = state.coordinator
  if (prepared && state.coordinators) record.coordinators = state.coordinators
  if (prepared && state.peers.length > 0) record.peers = state.peers
  if (prepared && state.preparedAt !== null) record.at = state.preparedAt
  if (state.vote === 'yes' && state.digest !== null) record.digest = state.digest
  if (state.three) record.three = recordOfThree(state.three)
  return effect ? { type: 'persist', record, effect } : { type: 'persist', record }
}

function recordOfThree(three: NonNullable<ParticipantTxn['three']>) {
  return { self: three.self, lastElected: three.lastElected, lastAttempt: three.lastAttempt }
}

/** What a prepare tells a store about whom to ask in doubt. */
function contextOf(event: ParticipantEvent & { type: 'prepare' }): PrepareContext {
  return {
    ...(event.coordinator ? { coordinator: event.coordinator } : {}),
    ...(event.coordinators ? { coordinators: event.coordinators } : {}),
    ...(event.peers ? { peers: event.peers } : {}),
    ...(event.now !== undefined ? { at: event.now } : {}),
    ...(event.three ? { three: event.three } : {}),
  }
}
