// The participant's store in the simulator: what SqliteStore does, in memory. The durable part
// (records, committed data) survives a crash; the prepared work and locks are rebuilt from the
// records, with the real PreparedWork and evaluateOps.
import {
  evaluateOps,
  readsOnly,
  type Effect,
  type Json,
  type Op,
  type ParticipantRecord,
} from '../../lib/core/index.ts'
import { PreparedWork, lockReason } from '../../lib/store/locks.ts'
import type { StoredRecord, Verdict } from '../../lib/store/store.ts'
import { SimViolation } from './invariants.ts'

export type Durable = { records: StoredRecord[]; data: Map<string, Json> }

export class SimStore {
  work = new PreparedWork()
  /** Transactions whose operations were applied to the committed data, for the validity check. */
  readonly applied = new Set<string>()

  constructor(readonly durable: Durable) {}

  /** After a restart: the records as they were persisted, and the locks they imply. */
  load(): ParticipantRecord[] {
    this.work = new PreparedWork()
    for (const r of this.durable.records) {
      if (r.state === 'prepared') this.work.hold(r.txn, r.ops ?? [])
      else this.work.release(r.txn)
    }
    return this.durable.records.map(({ ops: _, ...r }) => r)
  }

  check(txn: string, ops: readonly Op[]): Verdict {
    const conflict = this.work.conflict(txn, ops)
    if (conflict) return { vote: 'no', reason: lockReason(conflict) }
    const evaluation = evaluateOps(ops, (key) => this.durable.data.get(key))
    if (!evaluation.ok) return { vote: 'no', reason: evaluation.reason }
    if (readsOnly(ops)) return { vote: 'read-only' }
    this.work.hold(txn, ops)
    return { vote: 'yes' }
  }

  persist(record: ParticipantRecord, effect?: Effect): void {
    const ops = this.work.opsOf(record.txn)
    this.durable.records.push(record.state === 'prepared' ? { ...record, ops } : record)
    if (effect === 'apply') this.#apply(record.txn, ops)
    if (effect) this.work.release(record.txn)
  }

  discard(txn: string): void {
    this.work.release(txn)
  }

  #apply(txn: string, ops: readonly Op[]): void {
    const evaluation = evaluateOps(ops, (key) => this.durable.data.get(key))
    // The keys were locked since prepare: if the operations no longer hold, the locks failed.
    if (!evaluation.ok) {
      throw new SimViolation('validity (AC3)', `${txn} no longer applies: ${evaluation.reason}`)
    }
    for (const [key, value] of evaluation.writes) {
      if (value === undefined) this.durable.data.delete(key)
      else this.durable.data.set(key, value)
    }
    this.applied.add(txn)
  }
}
