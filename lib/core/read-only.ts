// Read-only participants: one whose operations only read (checks) has nothing to commit or
// abort. Its rules:
// - it votes `read-only` when its checks hold, keeps no record, and forgets the transaction
//   whatever the verdict (onReadOnlyChecked);
// - the coordinator counts the vote as a yes, sends it no decision and waits for no
//   acknowledgement (owedDecision);
// - it is not named among the peers a participant in doubt asks: asked later, it would abort
//   as if it had never voted (peersOf).
import type { CoordinatorTxn } from './coordinator.ts'
import { isReadOnly, type Op } from './ops.ts'
import {
  answerPrepare,
  unknownTxn,
  voteReply,
  type ParticipantAction,
  type ParticipantTxn,
} from './participant.ts'
import type { Ballot, Decision } from './types.ts'

/** Whether a participant given `ops` votes `read-only` (when its checks hold). */
export function readsOnly(ops: readonly Op[] | undefined): boolean {
  return ops !== undefined && ops.length > 0 && isReadOnly(ops)
}

/** Whom a participant in doubt may ask: not those whose operations only read. They vote
 * `read-only` and forget, so asked later they would abort as if they had never voted. */
export function peersOf(state: CoordinatorTxn): readonly string[] {
  const ops = state.ops
  if (ops === undefined) return state.participants
  return state.participants.filter((id) => !readsOnly(ops[id]))
}

/** Who is sent `decision`. One that voted `read-only` has nothing to do either way, and one
 * that voted `no` has aborted on its own: neither is sent the decision, neither owes an ack. */
export function owedDecision(state: CoordinatorTxn, decision: Decision): string[] {
  return state.participants.filter(
    (id) => state.votes[id] !== 'read-only' && (decision === 'commit' || state.votes[id] !== 'no'),
  )
}

/** Operations that only read leave nothing to keep, whatever the verdict: the participant
 * forgets the transaction. Keeping a `no` would be wrong: a retried prepare may be checked
 * again after the data moved, and a recorded abort would then contradict the `read-only` vote
 * the coordinator counted first. Forgetting says `unknown`, which is true of either outcome. */
export function onReadOnlyChecked(
  state: ParticipantTxn,
  vote: Ballot,
  reason: string | null,
): [ParticipantTxn, ParticipantAction[]] {
  if (state.state !== 'unknown') return answerPrepare(state)
  const forgotten = unknownTxn(state.txn)
  if (vote === 'no') return [forgotten, [voteReply(forgotten, 'no', reason)]]
  return [forgotten, [voteReply(forgotten, 'read-only', null)]]
}
