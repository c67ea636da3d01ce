// The participant's view of one transaction: unknown → prepared → committed | aborted, or
// unknown → aborted. Pure: the shell carries out the actions in order, and a `persist` is durable
// before any later action of the same step leaves the node.
import type { Decision, Vote } from './types.ts'

/** A participant's state of one transaction. A `prepared` participant has promised to commit on
 * request: it must never abort on its own (only a decision or an operator's heuristic moves it). */
export type ParticipantState = 'unknown' | 'prepared' | 'committed' | 'aborted'

export type ParticipantTxn = Readonly<{
  txn: string
  state: ParticipantState
  /** The vote this participant gave, if it voted. */
  vote: Vote | null
  reason: string | null
  /** Set when an operator forced the outcome (`resolve`) instead of the coordinator. */
  heuristic: boolean
}>

/** What a participant persists. Replaying these records in order rebuilds its state. */
export type ParticipantRecord = Readonly<{
  txn: string
  state: 'prepared' | 'committed' | 'aborted'
  vote?: Vote
  reason?: string
  heuristic?: boolean
}>

export type ParticipantEvent =
  | { type: 'prepare'; txn: string }
  /** The result of the resource's own check (votes.txt, data ops), asked for by a `check`. */
  | { type: 'checked'; txn: string; vote: Vote; reason?: string }
  | { type: 'decide'; txn: string; decision: Decision }
  /** An operator's forced outcome for a transaction whose coordinator is gone for good. */
  | { type: 'resolve'; txn: string; decision: Decision }

export type Reply =
  | { kind: 'vote'; txn: string; vote: Vote; reason: string | null }
  | { kind: 'outcome'; txn: string; state: 'committed' | 'aborted' }
  | { kind: 'conflict'; txn: string; error: string }

export type ParticipantAction =
  | { type: 'check'; txn: string }
  | { type: 'persist'; record: ParticipantRecord }
  /** Resource work: make the prepared work visible, or drop it and its locks. */
  | { type: 'apply'; txn: string }
  | { type: 'release'; txn: string }
  | { type: 'reply'; reply: Reply }

type ParticipantStep = [ParticipantTxn, ParticipantAction[]]

export function unknownTxn(txn: string): ParticipantTxn {
  return { txn, state: 'unknown', vote: null, reason: null, heuristic: false }
}

export function participantStep(state: ParticipantTxn, event: ParticipantEvent): ParticipantStep {
  switch (event.type) {
    case 'prepare':
      return onPrepare(state)
    case 'checked':
      return onChecked(state, event.vote, event.reason ?? null)
    case 'decide':
      return onDecide(state, event.decision, false)
    case 'resolve':
      return onDecide(state, event.decision, true)
  }
}

function voteReply(state: ParticipantTxn, vote: Vote, reason: string | null): ParticipantAction {
  return { type: 'reply', reply: { kind: 'vote', txn: state.txn, vote, reason } }
}

function onPrepare(state: ParticipantTxn): ParticipantStep {
  // A repeated prepare gets the recorded answer and persists nothing. An aborted transaction
  // answers `no` even if it once voted yes: a `yes` now could let a coordinator commit it.
  if (state.state === 'unknown') return [state, [{ type: 'check', txn: state.txn }]]
  if (state.state === 'aborted') {
    return [state, [voteReply(state, 'no', state.reason ?? 'transaction is already aborted')]]
  }
  return [state, [voteReply(state, 'yes', null)]]
}

function onChecked(state: ParticipantTxn, vote: Vote, reason: string | null): ParticipantStep {
  // A check that raced with a decision for the same transaction is stale: answer as prepare would.
  if (state.state !== 'unknown') return onPrepare(state)
  if (vote === 'yes') {
    const next: ParticipantTxn = { ...state, state: 'prepared', vote: 'yes' }
    return [next, [persistOf(next), voteReply(next, 'yes', null)]]
  }
  // A `no` is a unilateral abort: allowed because no promise was made yet.
  const next: ParticipantTxn = { ...state, state: 'aborted', vote: 'no', reason }
  return [
    next,
    [persistOf(next), { type: 'release', txn: state.txn }, voteReply(next, 'no', reason)],
  ]
}

function onDecide(state: ParticipantTxn, decision: Decision, heuristic: boolean): ParticipantStep {
  const wanted = decision === 'commit' ? 'committed' : 'aborted'
  if (state.state === wanted) return [state, [outcomeReply(state.txn, wanted)]] // idempotent
  const refusal = refuseDecision(state, decision)
  if (refusal !== null) {
    return [state, [{ type: 'reply', reply: { kind: 'conflict', txn: state.txn, error: refusal } }]]
  }
  const next: ParticipantTxn = { ...state, state: wanted, heuristic }
  const work: ParticipantAction =
    decision === 'commit' ? { type: 'apply', txn: state.txn } : { type: 'release', txn: state.txn }
  return [next, [persistOf(next), work, outcomeReply(state.txn, wanted)]]
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

function outcomeReply(txn: string, state: 'committed' | 'aborted'): ParticipantAction {
  return { type: 'reply', reply: { kind: 'outcome', txn, state } }
}

function persistOf(state: ParticipantTxn): ParticipantAction {
  if (state.state === 'unknown') throw new Error('assertion: unknown is never persisted')
  const record: ParticipantRecord = {
    txn: state.txn,
    state: state.state,
    ...(state.vote ? { vote: state.vote } : {}),
    ...(state.reason ? { reason: state.reason } : {}),
    ...(state.heuristic ? { heuristic: true } : {}),
  }
  return { type: 'persist', record }
}

/** Rebuilds every transaction's state from the persisted records, in their order. */
export function recoverParticipant(
  records: Iterable<ParticipantRecord>,
): Map<string, ParticipantTxn> {
  const txns = new Map<string, ParticipantTxn>()
  for (const r of records) {
    const prior = txns.get(r.txn) ?? unknownTxn(r.txn)
    txns.set(r.txn, {
      txn: r.txn,
      state: r.state,
      vote: r.vote ?? prior.vote,
      reason: r.reason ?? prior.reason,
      heuristic: r.heuristic ?? false,
    })
  }
  return txns
}
