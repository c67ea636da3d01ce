// The participant's store and the coordinator's log in the simulator: what SqliteStore and
// DurableLog do, in memory, over the simulated disk. The durable part (records, committed data)
// survives a crash; the prepared work and locks are rebuilt from the records, with the real
// PreparedWork and evaluateOps.
import {
  evaluateOps,
  readsOnly,
  type CoordinatorRecord,
  type Effect,
  type Json,
  type Op,
  type ParticipantRecord,
  type PrepareContext,
} from '../../lib/core/index.ts'
import { PreparedWork, lockReason } from '../../lib/store/locks.ts'
import type {
  Checkpoints,
  CoordinatorLog,
  ParticipantStore,
  StoredRecord,
  Verdict,
} from '../../lib/store/store.ts'
import { GroupWriter } from './disk.ts'
import { SimViolation } from './invariants.ts'

/** What survives a participant's crash. `applied`: transactions whose operations reached the
 * committed data, for the validity check. `folded`: transactions whose records were folded into
 * one (a checkpoint), which start-up does not read. */
export type Durable = {
  records: StoredRecord[]
  data: Map<string, Json>
  applied: Set<string>
  folded: Set<string>
}

type Write = { record: StoredRecord; effect: Effect | undefined; fold?: true }

export class SimStore implements ParticipantStore {
  readonly onePhase = true
  readonly threePhase = true
  readonly work = new PreparedWork()
  readonly #writer: GroupWriter<Write>

  constructor(
    readonly durable: Durable,
    writer: (write: (group: Write[]) => void) => GroupWriter<Write>,
    /** Whether the workload forces this participant to vote no on `txn`. */
    readonly forcedNo: (txn: string) => boolean,
    readonly onDurable: (record: ParticipantRecord) => void,
  ) {
    this.#writer = writer((group) => this.#write(group))
  }

  get flushes(): number {
    return this.#writer.flushes
  }

  /** Folds ride the next flush, as in DurableLog; until then they are answered from here. */
  readonly #folds = new Map<string, ParticipantRecord>()
  readonly checkpoints: Checkpoints<ParticipantRecord> = {
    fold: (txn, record) => {
      this.#folds.set(txn, record)
      this.#writer.ride({ record, effect: undefined, fold: true })
    },
    folded: (txn) =>
      this.#folds.get(txn) ?? foldedIn(this.durable.records, this.durable.folded, txn),
    history: () => this.durable.records,
  }

  async load(): Promise<ParticipantRecord[]> {
    const live = this.durable.records.filter((r) => !this.durable.folded.has(r.txn))
    for (const r of live) {
      // Precommitted or preaborted (three-phase) still holds its work, until the outcome.
      if (r.state === 'prepared') this.work.hold(r.txn, r.ops ?? [])
      else if (r.state === 'committed' || r.state === 'aborted') this.work.release(r.txn)
    }
    return live.map(({ ops: _, ...r }) => r)
  }

  async check(txn: string, ops: readonly Op[], context: PrepareContext = {}): Promise<Verdict> {
    if (this.forcedNo(txn)) return { vote: 'no', reason: 'forced no' }
    const conflict = this.work.conflict(txn, ops)
    if (conflict) return { vote: 'no', reason: lockReason(conflict) }
    const evaluation = evaluateOps(ops, (key) => this.durable.data.get(key))
    if (!evaluation.ok) return { vote: 'no', reason: evaluation.reason }
    if (readsOnly(ops) && !context.three) return { vote: 'read-only' }
    this.work.hold(txn, ops)
    return { vote: 'yes' }
  }

  persist(record: ParticipantRecord, effect?: Effect, lazy = false): Promise<void> {
    const ops = this.work.opsOf(record.txn)
    const stored: StoredRecord = record.state === 'prepared' ? { ...record, ops } : record
    return this.#writer.append({ record: stored, effect }, lazy)
  }

  /** A flush: each record with its effect, atomically (as one SQLite transaction). */
  #write(group: Write[]): void {
    for (const { record, effect, fold } of group) {
      if (fold) {
        foldInto(this.durable.records, this.durable.folded, record, (r) => r.txn === record.txn)
        this.#folds.delete(record.txn)
        continue
      }
      this.durable.records.push(record)
      if (effect === 'apply') this.#apply(record.txn, this.work.opsOf(record.txn))
      if (effect) this.work.release(record.txn)
      this.onDurable(record)
    }
  }

  async discard(txn: string): Promise<void> {
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
    this.durable.applied.add(txn)
  }

  async get(key: string): Promise<Json | undefined> {
    return this.durable.data.get(key)
  }

  async list(prefix: string, limit: number): Promise<{ key: string; value: Json }[]> {
    const keys = [...this.durable.data.keys()].filter((k) => k.startsWith(prefix)).sort()
    return keys.slice(0, limit).map((key) => ({ key, value: this.durable.data.get(key)! }))
  }

  locks(): Map<string, string> {
    return this.work.locks()
  }

  async close(): Promise<void> {}
}

type LogItem = { record: CoordinatorRecord; fold?: true }

/** The coordinator's log over the simulated disk. */
export class SimLog implements CoordinatorLog<CoordinatorRecord> {
  readonly #writer: GroupWriter<LogItem>
  readonly #folds = new Map<string, CoordinatorRecord>()

  constructor(
    readonly durable: CoordinatorRecord[],
    /** Transactions whose records were folded (durable, as `durable` is). */
    readonly folded: Set<string>,
    writer: (write: (group: LogItem[]) => void) => GroupWriter<LogItem>,
    readonly onDurable: (record: CoordinatorRecord) => void,
  ) {
    this.#writer = writer((group) => {
      for (const { record, fold } of group) {
        if (fold) {
          // The folded record keeps the decision's place: decision.txt keeps its order.
          const txn = record.txn
          foldInto(this.durable, folded, record, (r) => r.txn === txn && r.type === 'decision')
          this.#folds.delete(txn)
          continue
        }
        this.durable.push(record)
        this.onDurable(record)
      }
    })
  }

  readonly checkpoints: Checkpoints<CoordinatorRecord> = {
    fold: (txn, record) => {
      this.#folds.set(txn, record)
      this.#writer.ride({ record, fold: true })
    },
    folded: (txn) => this.#folds.get(txn) ?? foldedIn(this.durable, this.folded, txn),
    history: () => this.durable,
  }

  get flushes(): number {
    return this.#writer.flushes
  }

  records(): CoordinatorRecord[] {
    return this.durable.filter((r) => !this.folded.has(r.txn))
  }

  append(record: CoordinatorRecord, _effect: undefined, lazy: boolean): Promise<void> {
    return this.#writer.append({ record }, lazy)
  }

  close(): void {}
}

/** Replaces the records of `record.txn` in `records` by `record`, at the place of the first one
 * `anchor` picks (else of its first record), and marks the transaction folded. */
function foldInto<R extends { txn: string }>(
  records: R[],
  folded: Set<string>,
  record: R,
  anchor: (r: R) => boolean,
): void {
  const txn = record.txn
  if (folded.has(txn)) return
  let at = records.findIndex(anchor)
  if (at < 0) at = records.findIndex((r) => r.txn === txn)
  const kept = records.filter((r, i) => r.txn !== txn || i === at)
  kept[kept.findIndex((r) => r.txn === txn)] = record
  records.splice(0, records.length, ...kept)
  folded.add(txn)
}

/** The folded record of `txn` among `records`, if it was folded. */
function foldedIn<R extends { txn: string }>(
  records: readonly R[],
  folded: ReadonlySet<string>,
  txn: string,
): R | undefined {
  return folded.has(txn) ? records.find((r) => r.txn === txn) : undefined
}
