// Rebuilding a participant's state from its records after a restart.
import {
  defaultParticipantEnv,
  unknownTxn,
  type ParticipantEnv,
  type ParticipantRecord,
  type ParticipantTxn,
} from './participant.ts'

/** Rebuilds every transaction's state from the persisted records, in their order. A prepared
 * transaction is still in doubt: it asks about its outcome once `inDoubtAfterMs` has passed
 * since it was prepared, and at once (`now`) if that time is already behind it. */
export function recoverParticipant(
  records: Iterable<ParticipantRecord>,
  now: number,
  env: ParticipantEnv = defaultParticipantEnv,
): Map<string, ParticipantTxn> {
  const txns = new Map<string, ParticipantTxn>()
  for (const r of records) {
    const prior = txns.get(r.txn) ?? unknownTxn(r.txn)
    // In doubt: prepared, or (three-phase) precommitted or preaborted.
    const waiting = r.state !== 'committed' && r.state !== 'aborted'
    const prepared = r.state === 'prepared'
    const preparedAt = prepared ? (r.at ?? 0) : prior.preparedAt
    txns.set(r.txn, {
      ...prior,
      state: r.state,
      vote: r.vote ?? prior.vote,
      reason: r.reason ?? prior.reason,
      heuristic: r.heuristic ?? false,
      coordinator: r.coordinator ?? prior.coordinator,
      ...(r.coordinators || prior.coordinators
        ? { coordinators: r.coordinators ?? prior.coordinators }
        : {}),
      peers: r.peers ?? prior.peers,
      preparedAt,
      askAt: waiting ? Math.max(now, (preparedAt ?? 0) + env.inDoubtAfterMs) : null,
      digest: r.digest ?? prior.digest,
      ...(r.three
        ? { three: { ...r.three, terminating: null, highest: r.three.lastElected } }
        : {}),
    })
  }
  return txns
}
