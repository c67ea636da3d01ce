// The coordinator's view of one transaction: preparing → deciding (commit | abort) → done.
// Pure: the shell carries out the actions in order, and a `persist` is durable before any later
// action of the same step leaves the node, unless it is `lazy`; the shell reports each record
// that became durable (`logged`) and each it could not write (`persist-failed`). Presumed
// abort: without a durable commit record, a transaction is aborted, so only the commit decision
// must be forced; the begin and done records (and, with `lazyAborts`, abort decisions) may ride
// a later flush. Each optimization has its own file, which this one calls: ./presumed-abort.ts,
// ./read-only.ts and ./one-phase.ts.
import { backoffMs } from './backoff.ts'
import type { Op } from './ops.ts'
import { commitsInOnePhase, hasPrepareTimeout, onOutcome, onePhaseBegin } from './one-phase.ts'
import { abortsLazily, lazyBegin } from './presumed-abort.ts'
import { owedDecision, peersOf } from './read-only.ts'
import { onLearned, onPreAck, precommit, precommitTo } from './three-phase-coordinator.ts'
import type { Ballot, Decision } from './types.ts'

export type * from './coordinator-types.ts'
import type {
  CoordinatorAction,
  CoordinatorEnv,
  CoordinatorEvent,
  CoordinatorMessage,
  CoordinatorRecord,
  CoordinatorTxn,
  Retry,
  Unlogged,
} from './coordinator-types.ts'

type Step = [CoordinatorTxn, CoordinatorAction[]]

/** Starts a transaction: log that it began (so a restart can abort it), then ask for votes. */
export function begin(
  txn: string,
  participants: readonly string[],
  now: number,
  env: CoordinatorEnv,
  ops: Readonly<Record<string, readonly Op[]>> = {},
  protocol: '2pc' | '3pc' = '2pc',
): Step {
  if (participants.length === 0) throw new Error('assertion: a transaction needs participants')
  const three = protocol === '3pc'
  const onePhase = !three && commitsInOnePhase(participants, env)
  const state: CoordinatorTxn = {
    ...preparing(txn, participants),
    deadline: now + env.timeoutMs,
    outstanding: inFlight(participants, 0),
    ...(Object.keys(ops).length > 0 ? { ops } : {}),
    ...(onePhase ? { onePhase } : {}),
    ...(three ? { protocol: '3pc' as const } : {}),
  }
  const persist = onePhase ? onePhaseBegin(state) : lazyBegin(state, env)
  return [state, [persist, ...participants.map((to) => prepareTo(state, to))]]
}

export function coordinatorStep(
  state: CoordinatorTxn,
  event: CoordinatorEvent,
  env: CoordinatorEnv,
): Step {
  switch (event.type) {
    case 'vote':
      return onVote(state, event.from, event.vote, event.reason, env)
    case 'ack':
      return onAck(state, event.from, null)
    case 'pre-ack':
      return onPreAck(state, event.from, env)
    case 'outcome':
      if (state.protocol === '3pc') return onLearned(state, event.decision, env)
      return onOutcome(state, event.from, event.decision)
    case 'refused':
      return onRefused(state, event.from, event.error)
    case 'unreachable':
      return onUnreachable(state, event.to, event.now, env)
    case 'tick':
      return onTick(state, event.now, env)
    case 'logged':
      return onLogged(state, event.record)
    case 'persist-failed':
      return onPersistFailed(state, event.record, event.lazy, event.now, env)
  }
}

function onLogged(state: CoordinatorTxn, record: CoordinatorRecord): Step {
  const unlogged = state.unlogged?.record.type === record.type ? null : state.unlogged
  const logged = state.logged || record.type === 'decision'
  return [{ ...state, logged, unlogged }, []]
}

/** A record the log could not write. The begin (when lazy) and done records only save work:
 * a restart is correct without them. Any other is written again after a backoff, and what
 * depends on it waits: a decision is never changed (the failed write may still have reached
 * the disk) and never told before it is durable. */
function onPersistFailed(
  state: CoordinatorTxn,
  record: CoordinatorRecord,
  lazy: boolean,
  now: number,
  env: CoordinatorEnv,
): Step {
  if (record.type === 'done' || (record.type === 'begin' && lazy)) return [state, []]
  // Settled elsewhere, unless other coordinators read the decision from this log.
  if (record.type === 'decision' && state.logged && !env.sharedLog) return [state, []]
  const attempt = state.unlogged === null ? 0 : state.unlogged.attempt + 1
  const retryAt = now + backoffMs(attempt, env.prng, env.backoff)
  return [{ ...state, unlogged: { record, lazy, attempt, retryAt } }, []]
}

/** Writes a failed record again; after a forced one, the sends it held back (to everyone still
 * owed a message: none of them was sent). */
function relog(state: CoordinatorTxn, unlogged: Unlogged): Step {
  const next: CoordinatorTxn = { ...state, unlogged: { ...unlogged, retryAt: null } }
  const persist: CoordinatorAction = unlogged.lazy
    ? { type: 'persist', record: unlogged.record, lazy: true }
    : { type: 'persist', record: unlogged.record }
  if (unlogged.lazy) return [next, [persist]]
  const owed = Object.keys(state.outstanding)
  return [next, [persist, ...owed.map((id) => resendTo(next, id))]]
}

export type Tally = 'pending' | 'won' | 'lost'

/** Unanimity, not majority: one `no` loses, all `yes` (or `read-only`) wins, anything else is
 * still pending. */
export function tally(
  participants: readonly string[],
  votes: Readonly<Record<string, Ballot>>,
): Tally {
  let yes = 0
  for (const id of participants) {
    if (votes[id] === 'no') return 'lost'
    if (votes[id] === 'yes' || votes[id] === 'read-only') yes += 1
  }
  return yes === participants.length ? 'won' : 'pending'
}

function onVote(
  state: CoordinatorTxn,
  from: string,
  vote: Ballot,
  reason: string | undefined,
  env: CoordinatorEnv,
): Step {
  // Late, duplicate and foreign votes are normal on a lossy network: ignore them.
  if (state.phase !== 'preparing' || !state.participants.includes(from)) return [state, []]
  if (state.votes[from] !== undefined) return [state, []]
  // Three-phase quorums need every participant to hold the transaction: one that voted
  // read-only (and so forgot it) cannot be precommitted.
  if (vote === 'read-only' && state.protocol === '3pc') {
    ;[vote, reason] = ['no', 'voted read-only, which three-phase commit cannot count on']
  }
  const votes = { ...state.votes, [from]: vote }
  const reasons = reason ? { ...state.reasons, [from]: reason } : state.reasons
  const next: CoordinatorTxn = {
    ...state,
    votes,
    reasons,
    outstanding: without(state.outstanding, from),
  }
  const result = tally(state.participants, votes)
  if (result === 'pending') return [next, []]
  if (result === 'won' && state.protocol === '3pc') return precommit(next)
  return decide(next, result === 'won' ? 'commit' : 'abort', env)
}

export function decide(state: CoordinatorTxn, decision: Decision, env: CoordinatorEnv): Step {
  if (state.decision !== null) throw new Error(`assertion: ${state.txn} is already decided`)
  const targets = owedDecision(state, decision)
  const acks = state.participants.filter((id) => !targets.includes(id))
  const presumed = abortsLazily(decision, env)
  const next: CoordinatorTxn = {
    ...state,
    phase: presumed ? 'done' : 'deciding',
    decision,
    acks,
    outstanding: presumed ? {} : inFlight(targets, 0),
  }
  const record: CoordinatorRecord = {
    type: 'decision',
    txn: state.txn,
    decision,
    participants: state.participants,
    ...(targets.length < state.participants.length ? { to: targets } : {}),
  }
  const persist: CoordinatorAction = {
    type: 'persist',
    record,
    ...(presumed ? { lazy: true } : {}),
  }
  const sends = targets.map((to) => decideTo(next, to))
  // Presumed abort: sent once, never acknowledged, so done at once (its done record, lazy too,
  // keeps a restart from sending it again).
  if (presumed) return [next, [persist, ...sends, lazyDone(state.txn)]]
  if (targets.length === 0) return finish(next, [persist])
  return [next, [persist, ...sends]]
}

/** A participant refused the decision: its own outcome differs (an operator's heuristic). That
 * counts as its answer, and is kept to be reported, even for an abort that was sent once and
 * needed no answer (lazy aborts). */
function onRefused(state: CoordinatorTxn, from: string, error: string): Step {
  if (state.phase === 'deciding') return onAck(state, from, error)
  // One that acknowledged has the decision's outcome: a late refusal from it is a stray copy.
  const known = state.decision !== null && state.participants.includes(from)
  if (!known || state.acks.includes(from) || state.refusals[from] !== undefined) {
    return [state, []]
  }
  return [{ ...state, refusals: { ...state.refusals, [from]: error } }, []]
}

function onAck(state: CoordinatorTxn, from: string, refusal: string | null): Step {
  if (state.phase !== 'deciding' || state.outstanding[from] === undefined) return [state, []]
  const next: CoordinatorTxn = {
    ...state,
    acks: [...state.acks, from],
    refusals: refusal === null ? state.refusals : { ...state.refusals, [from]: refusal },
    outstanding: without(state.outstanding, from),
  }
  if (Object.keys(next.outstanding).length > 0) return [next, []]
  return finish(next, [])
}

function finish(state: CoordinatorTxn, actions: CoordinatorAction[]): Step {
  return [{ ...state, phase: 'done' }, [...actions, lazyDone(state.txn)]]
}

/** Lazy: without it a restart only sends the decision again, which participants ignore. */
export function lazyDone(txn: string): CoordinatorAction {
  return { type: 'persist', record: { type: 'done', txn }, lazy: true }
}

function onUnreachable(state: CoordinatorTxn, to: string, now: number, env: CoordinatorEnv): Step {
  const retry = state.outstanding[to]
  if (state.phase === 'done' || retry === undefined || retry.retryAt !== null) return [state, []]
  const retryAt = now + backoffMs(retry.attempt, env.prng, env.backoff)
  return [{ ...state, outstanding: { ...state.outstanding, [to]: { ...retry, retryAt } } }, []]
}

function onTick(state: CoordinatorTxn, now: number, env: CoordinatorEnv): Step {
  const unlogged = state.unlogged
  if (unlogged !== null && unlogged.retryAt !== null && unlogged.retryAt <= now) {
    return relog(state, unlogged)
  }
  if (state.phase === 'preparing' && hasPrepareTimeout(state) && now >= state.deadline) {
    const silent = state.participants.filter((id) => state.votes[id] === undefined)
    const reasons = { ...state.reasons }
    for (const id of silent) reasons[id] = 'no vote before the prepare timeout'
    return decide({ ...state, reasons }, 'abort', env)
  }
  if (state.phase === 'done') return [state, []]
  // Nothing that depends on a forced record goes out while it is unwritten (its rewrite sends
  // it): a late `unreachable` for a precommit must not release a commit that is not durable.
  if (state.unlogged !== null && !state.unlogged.lazy) return [state, []]
  const due = Object.entries(state.outstanding).filter(
    ([, r]) => r.retryAt !== null && r.retryAt <= now,
  )
  if (due.length === 0) return [state, []]
  const outstanding = { ...state.outstanding }
  for (const [id, r] of due) outstanding[id] = { attempt: r.attempt + 1, retryAt: null }
  const next = { ...state, outstanding }
  return [next, due.map(([id]) => resendTo(next, id))]
}

/** What a participant still owed an answer is sent again: the message of the current phase. */
function resendTo(state: CoordinatorTxn, to: string): CoordinatorAction {
  if (state.phase === 'precommitting') return precommitTo(state, to)
  return state.decision === null ? prepareTo(state, to) : decideTo(state, to)
}

/** When a tick can next change `state`: the prepare deadline or the earliest retry. Null when
 * only a reply can, so a shell need not tick it at all until then. */
export function wakeAt(state: CoordinatorTxn): number | null {
  const relogAt = state.unlogged?.retryAt ?? Infinity
  if (state.phase === 'done') return relogAt === Infinity ? null : relogAt
  let at = state.phase === 'preparing' && hasPrepareTimeout(state) ? state.deadline : Infinity
  if (relogAt < at) at = relogAt
  for (const id in state.outstanding) {
    const retryAt = state.outstanding[id]!.retryAt
    if (retryAt !== null && retryAt < at) at = retryAt
  }
  return at === Infinity ? null : at
}

export function opsOf(from: { ops?: Readonly<Record<string, readonly Op[]>> }) {
  return from.ops ? { ops: from.ops } : {}
}

/** A transaction before any prepare is sent (as a restart rebuilds it from its begin record). */
export function preparing(txn: string, participants: readonly string[]): CoordinatorTxn {
  return {
    txn,
    participants,
    phase: 'preparing',
    decision: null,
    votes: {},
    reasons: {},
    acks: [],
    refusals: {},
    deadline: 0,
    outstanding: {},
    logged: false,
    unlogged: null,
  }
}

export function prepareTo(state: CoordinatorTxn, to: string): CoordinatorAction {
  const ops = state.ops?.[to]
  const three = state.protocol === '3pc'
  const message: CoordinatorMessage = {
    type: 'prepare',
    txn: state.txn,
    // Three-phase quorums count every participant, so each one is named.
    participants: three ? state.participants : peersOf(state),
    ...(ops && ops.length > 0 ? { ops } : {}),
    ...(state.onePhase ? { onePhase: true } : {}),
    ...(three ? { protocol: '3pc' as const } : {}),
  }
  return { type: 'send', to, message }
}

export function decideTo(state: CoordinatorTxn, to: string): CoordinatorAction {
  if (state.decision === null) throw new Error(`assertion: ${state.txn} has no decision to send`)
  return { type: 'send', to, message: { type: 'decide', txn: state.txn, decision: state.decision } }
}

// These two run for every message of every transaction: plain loops, which the JIT compiles
// well, where `Object.fromEntries` and a rest pattern (`{ [key]: _, ...rest }`) take slow paths.
export function inFlight(ids: readonly string[], attempt: number): Record<string, Retry> {
  const outstanding: Record<string, Retry> = {}
  for (const id of ids) outstanding[id] = { attempt, retryAt: null }
  return outstanding
}

function without<T>(record: Readonly<Record<string, T>>, key: string): Record<string, T> {
  const rest: Record<string, T> = {}
  for (const k in record) if (k !== key) rest[k] = record[k]!
  return rest
}
