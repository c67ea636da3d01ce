// Three-phase commit at a participant, with the termination of E3PC (Keidar and Dolev, "Increasing
// the resilience of atomic commit, at no additional cost", PODS 1995). States: unknown → prepared
// → precommitted | preaborted → committed | aborted, each durable before the message that
// depends on it. The coordinator runs attempt 0: prepare, then precommit, then commit once a
// quorum (a majority of the participants) is precommitted. A participant left in doubt past its
// timeout runs a termination attempt of its own, numbered above every attempt it has heard of:
//   1. it joins the attempt (durably) and asks every other participant for its state; each one
//      that joins reports its state, `lastElected` and `lastAttempt` (one that never voted
//      aborts first); one already in a later attempt refuses;
//   2. any committed → commit; any aborted → abort;
//   3. with a quorum of members: if every member whose lastAttempt is the highest among them is
//      precommitted, it precommits them in this attempt and commits once a quorum did;
//   4. otherwise it preaborts them and aborts once a quorum did;
//   5. without a quorum it waits and tries again. Nobody decides alone.
// Any two quorums meet, and only the latest attempt counts, so two sides of a partition can
// never decide differently, and a connected quorum always ends the transaction.
import type { Decision } from './types.ts'
import {
  onDecide,
  outcomeReply,
  persistOf,
  type ParticipantAction,
  type ParticipantEnv,
  type ParticipantTxn,
  type PeerReport,
  type StateReport,
  type Terminating,
  type ThreePhase,
} from './participant.ts'
import { backoffMs } from './backoff.ts'

type Step = [ParticipantTxn, ParticipantAction[]]

/** A majority of `n` participants: any two such quorums share a member. */
export function quorum(n: number): number {
  return Math.floor(n / 2) + 1
}

/** The three-phase part of a transaction just prepared, as its prepare named it. */
export function threePhaseOf(self: string): ThreePhase {
  return { self, lastElected: 0, lastAttempt: -1, terminating: null, highest: 0 }
}

/** The states in which a three-phase participant waits for the outcome (and so may terminate). */
export function inDoubt3(state: ParticipantTxn): boolean {
  const s = state.state
  return s === 'prepared' || s === 'precommitted' || s === 'preaborted'
}

/** `pre`: move to precommitted (or preaborted) in `attempt`, unless a later attempt holds us. */
export function onPre(
  state: ParticipantTxn,
  decision: Decision,
  attempt: number,
  now: number,
  env: ParticipantEnv,
): Step {
  const three = state.three
  if (state.state === 'committed' || state.state === 'aborted') {
    return [state, [outcomeReply(state.txn, state.state)]]
  }
  if (three === undefined || state.state === 'unknown') {
    return [state, [conflict(state.txn, 'was never prepared here in three-phase commit')]]
  }
  if (attempt < three.lastElected) return [state, [superseded(state.txn, three.lastElected)]]
  const target = decision === 'commit' ? 'precommitted' : 'preaborted'
  if (state.state === target && three.lastAttempt === attempt) return [state, [preReply(state)]]
  // Its clock starts again: should this attempt's decision not follow, it terminates itself.
  const next: ParticipantTxn = {
    ...state,
    state: target,
    askAt: now + env.inDoubtAfterMs,
    three: { ...three, lastElected: attempt, lastAttempt: attempt, terminating: null },
  }
  return [next, [persist3(state, next), preReply(next)]]
}

/** A terminator of `attempt` asks for our state: we join its attempt (durably) and report. */
export function onStateRequest(
  state: ParticipantTxn,
  attempt: number,
  now: number,
  env: ParticipantEnv,
): Step {
  if (state.state === 'unknown') {
    // Never voted, so free to abort: after this it can never vote yes.
    const reason = 'aborted on a state request from a terminating participant'
    const next: ParticipantTxn = { ...state, state: 'aborted', reason }
    const report = { state: 'aborted', lastElected: 0, lastAttempt: -1 } as const
    return [next, [persistOf(next, 'release'), reportReply(state.txn, attempt, report)]]
  }
  const three = state.three ?? { lastElected: 0, lastAttempt: -1 }
  if (state.state === 'committed' || state.state === 'aborted') {
    const report = { state: state.state, lastElected: three.lastElected, lastAttempt: -1 }
    return [state, [reportReply(state.txn, attempt, report)]]
  }
  if (state.three === undefined) {
    return [state, [conflict(state.txn, 'is not a three-phase transaction here')]]
  }
  if (attempt <= state.three.lastElected) {
    return [state, [superseded(state.txn, state.three.lastElected)]]
  }
  // Joining a later attempt ends any of our own, and starts our clock again: should that
  // attempt's terminator fall silent, we terminate ourselves.
  const joined = { ...state, askAt: now + env.inDoubtAfterMs }
  const next = withThree(joined, { lastElected: attempt, highest: attempt, terminating: null })
  return [next, [persist3(state, next), reportReply(state.txn, attempt, reportOf(next))]]
}

/** Past the in-doubt time: start a termination attempt above every one heard of. */
export function onTick3(state: ParticipantTxn, now: number): Step {
  const three = state.three
  if (three === undefined || !inDoubt3(state) || state.askAt === null || now < state.askAt) {
    return [state, []]
  }
  const attempt = Math.max(three.lastElected, three.highest) + 1
  const next = withThree(
    { ...state, askAt: null },
    {
      lastElected: attempt,
      highest: attempt,
      terminating: { attempt, phase: 'collecting', members: [three.self] },
    },
  )
  const ask: ParticipantAction = {
    type: 'ask-states',
    txn: state.txn,
    attempt,
    peers: others(next),
  }
  return [next, [persist3(state, next), ask]]
}

/** The members' reports in our attempt: decide, or move them toward a decision, or wait. */
export function onStateReports(
  state: ParticipantTxn,
  attempt: number,
  reports: readonly PeerReport[],
  now: number,
  env: ParticipantEnv,
): Step {
  const t = running(state, attempt, true)
  if (t === null) return [state, []]
  const three = state.three!
  const highest = Math.max(
    three.highest,
    ...reports.map((r) => ('superseded' in r ? r.superseded : 0)),
  )
  const members: { peer: string; report: StateReport }[] = [
    { peer: three.self, report: reportOf(state) },
  ]
  for (const r of reports)
    if ('report' in r && r.report !== null) members.push({ peer: r.peer, report: r.report })
  const known = members.find((m) => m.report.state === 'committed' || m.report.state === 'aborted')
  if (known) return decideAll(state, known.report.state === 'committed' ? 'commit' : 'abort')
  if (members.length < quorum(state.peers.length)) {
    return unresolved(withThree(state, { highest, terminating: null }), now, env)
  }
  const maxAttempt = Math.max(...members.map((m) => m.report.lastAttempt))
  const latest = members.filter((m) => m.report.lastAttempt === maxAttempt)
  const committable = maxAttempt >= 0 && latest.every((m) => m.report.state === 'precommitted')
  const decision: Decision = committable ? 'commit' : 'abort'
  const ids = members.map((m) => m.peer)
  const next: ParticipantTxn = withThree(
    { ...state, state: committable ? 'precommitted' : 'preaborted' },
    {
      highest,
      lastAttempt: attempt,
      terminating: { attempt, phase: committable ? 'precommit' : 'preabort', members: ids },
    },
  )
  const to = ids.filter((id) => id !== three.self)
  return [
    next,
    [persist3(state, next), { type: 'send-pre', txn: state.txn, attempt, decision, to }],
  ]
}

/** Which members moved in our attempt: with a quorum (ourselves included), decide. */
export function onPreAcks(
  state: ParticipantTxn,
  attempt: number,
  acked: readonly string[],
  now: number,
  env: ParticipantEnv,
): Step {
  const t = running(state, attempt, false)
  if (t === null) return [state, []]
  const three = state.three!
  const moved = 1 + acked.filter((id) => id !== three.self && t.members.includes(id)).length
  if (moved < quorum(state.peers.length)) {
    return unresolved(withThree(state, { terminating: null }), now, env)
  }
  return decideAll(state, t.phase === 'precommit' ? 'commit' : 'abort')
}

/** Our termination attempt `attempt`, if we still run it and are still in doubt (collecting
 * states, or past that); null for an answer that comes too late to count. */
function running(state: ParticipantTxn, attempt: number, collecting: boolean): Terminating | null {
  const t = state.three?.terminating
  if (!t || t.attempt !== attempt || (t.phase === 'collecting') !== collecting) return null
  // It may have joined a later attempt meanwhile, or decided.
  if (state.three!.lastElected !== attempt || !inDoubt3(state)) return null
  return t
}

/** Decides here, then tells every other participant (they need not answer: one that misses it
 * terminates on its own and learns it). */
function decideAll(state: ParticipantTxn, decision: Decision): Step {
  const [next, actions] = onDecide(withThree(state, { terminating: null }), decision, false)
  const tell: ParticipantAction = {
    type: 'tell-outcome',
    txn: state.txn,
    decision,
    to: others(state),
  }
  return [next, [...actions, tell]]
}

/** Persists `next`; should the write fail, the participant is `prior` again (what its disk
 * holds): a state or an attempt number is never told before it is durable. */
function persist3(prior: ParticipantTxn, next: ParticipantTxn): ParticipantAction {
  const undo = withThree(prior, { terminating: null })
  return { ...persistOf(next), undo }
}

function unresolved(state: ParticipantTxn, now: number, env: ParticipantEnv): Step {
  const askAt = now + backoffMs(state.asks, env.prng, env.backoff)
  return [{ ...state, askAt, asks: state.asks + 1 }, []]
}

function others(state: ParticipantTxn): readonly string[] {
  const self = state.three?.self
  return state.peers.filter((p) => p !== self)
}

function withThree(state: ParticipantTxn, change: Partial<ThreePhase>): ParticipantTxn {
  return { ...state, three: { ...state.three!, ...change } }
}

function reportOf(state: ParticipantTxn): StateReport {
  const three = state.three!
  return { state: state.state, lastElected: three.lastElected, lastAttempt: three.lastAttempt }
}

function preReply(state: ParticipantTxn): ParticipantAction {
  const s = state.state as 'precommitted' | 'preaborted'
  return {
    type: 'reply',
    reply: { kind: 'pre', txn: state.txn, state: s, attempt: state.three!.lastAttempt },
  }
}

function reportReply(txn: string, attempt: number, report: StateReport): ParticipantAction {
  return { type: 'reply', reply: { kind: 'report', txn, attempt, report } }
}

function superseded(txn: string, lastElected: number): ParticipantAction {
  return { type: 'reply', reply: { kind: 'superseded', txn, lastElected } }
}

function conflict(txn: string, what: string): ParticipantAction {
  return { type: 'reply', reply: { kind: 'conflict', txn, error: `transaction "${txn}" ${what}` } }
}
