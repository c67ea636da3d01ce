// Checkpoints: a finished transaction's records can be folded into one record that rebuilds the
// same final state, so a long-running node's log and memory hold its live transactions and a
// bounded number of recent ones, not its whole history. What recovery or any later message
// needs stays: replaying the folded record gives the state that replaying the records gave.
import type { CoordinatorRecord, CoordinatorTxn } from './coordinator-types.ts'
import { persistOf } from './participant.ts'
import type { ParticipantRecord, ParticipantTxn } from './participant-types.ts'

/** The record a finished coordinator transaction folds into: its durable decision, owed to
 * nobody (so recovery finds it done). Null while it is not finished, while a record of it is
 * still to be written again (on a shared log, a one-phase decision other coordinators read),
 * and for one whose decision a participant refused (a heuristic outcome stays in full view for
 * the operator). */
export function coordinatorFold(state: CoordinatorTxn): CoordinatorRecord | null {
  if (state.phase !== 'done' || !state.logged || state.decision === null) return null
  if (state.unlogged !== null) return null
  if (Object.keys(state.refusals).length > 0) return null
  const { txn, decision, participants } = state
  const protocol = state.protocol ? { protocol: state.protocol } : {}
  return { type: 'decision', txn, decision, participants, to: [], ...protocol }
}

/** The record a finished participant transaction folds into: its outcome, with the vote and
 * the digest a repeated prepare is answered by. Null while it is not committed or aborted. */
export function participantFold(state: ParticipantTxn): ParticipantRecord | null {
  if (state.state !== 'committed' && state.state !== 'aborted') return null
  return persistOf(state).record
}
