// The embedded store: data and log in one SQLite database (WAL, synchronous=FULL) in the node's
// directory, so a commit's writes and its outcome record share one atomic, durable transaction.
import type { Database } from 'bun:sqlite'
import { join } from 'node:path'
import {
  evaluateOps,
  readsOnly,
  type Effect,
  type Json,
  type Op,
  type ParticipantRecord,
} from '../core/index.ts'
import { DurableLog } from './log.ts'
import { PreparedWork, lockReason } from './locks.ts'
import type { Checkpoints, ParticipantStore, PrepareContext, StoredRecord } from './store.ts'
import type { Verdict } from './store.ts'

export const PARTICIPANT_DB = 'participant.db'

/** What state.txt shows of a participant's record: its outcome, once it has one. */
export function outcome(record: ParticipantRecord): string | null {
  return record.state === 'committed' || record.state === 'aborted' ? record.state : null
}

export class SqliteStore implements ParticipantStore {
  readonly onePhase = true
  readonly threePhase = true
  readonly #log: DurableLog<StoredRecord>
  readonly #work = new PreparedWork()

  constructor(dir: string) {
    // No lazy window: an outcome record that may share a flush (a batch's) goes in the next
    // turn's, with whatever came with it, and never waits on a timer; its locks are held until
    // it is durable. A 2 ms window made a lone transaction wait out its timer at every commit.
    this.#log = new DurableLog<StoredRecord>(join(dir, PARTICIPANT_DB), { lazyMs: 0, outcome })
    this.#log.db.run('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
  }

  get flushes(): number {
    return this.#log.flushes
  }

  /** A finished transaction's folded record carries no operations: it needs none. */
  readonly checkpoints: Checkpoints<ParticipantRecord> = {
    fold: (txn, record) => this.#log.fold(txn, record),
    folded: (txn) => this.#log.folded(txn),
    history: () => this.#log.history(),
    outcomes: (each, inLogOrder) => this.#log.outcomes(each, inLogOrder),
  }

  /** The database of data and log, for an operator's (or a test's) pragmas. */
  get db(): Database {
    return this.#log.db
  }

  async load(): Promise<ParticipantRecord[]> {
    const records = this.#log.records()
    for (const r of records) {
      // Precommitted or preaborted (three-phase) still holds its work, until the outcome.
      if (r.state === 'prepared') this.#work.hold(r.txn, r.ops ?? [])
      else if (r.state === 'committed' || r.state === 'aborted') this.#work.release(r.txn)
    }
    return records.map(({ ops: _, ...record }) => record)
  }

  async check(txn: string, ops: readonly Op[], context: PrepareContext = {}): Promise<Verdict> {
    const conflict = this.#work.conflict(txn, ops)
    if (conflict) return { vote: 'no', reason: lockReason(conflict) }
    const evaluation = evaluateOps(ops, (key) => this.#read(key))
    if (!evaluation.ok) return { vote: 'no', reason: evaluation.reason }
    // Only reads, and they hold: nothing to hold on to until a decision (in two-phase commit;
    // three-phase commit counts every participant in its quorums, so it is prepared).
    if (readsOnly(ops) && !context.three) return { vote: 'read-only' }
    this.#work.hold(txn, ops)
    return { vote: 'yes' }
  }

  async persist(record: ParticipantRecord, effect?: Effect, lazy = false): Promise<void> {
    const ops = this.#work.opsOf(record.txn)
    const stored: StoredRecord =
      record.state === 'prepared' && ops.length > 0 ? { ...record, ops } : record
    const apply = effect === 'apply' ? () => this.#apply(record.txn, ops) : undefined
    await this.#log.append(stored, apply, lazy)
    // Locks go only once the outcome is durable: until then the old values are what is committed.
    if (effect) this.#work.release(record.txn)
  }

  async discard(txn: string): Promise<void> {
    this.#work.release(txn)
  }

  #apply(txn: string, ops: readonly Op[]): void {
    const evaluation = evaluateOps(ops, (key) => this.#read(key))
    // The keys were locked since prepare, so what held then holds now.
    if (!evaluation.ok) throw new Error(`assertion: ${txn} no longer applies: ${evaluation.reason}`)
    const upsert = this.#log.db.query(
      'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?2',
    )
    const remove = this.#log.db.query('DELETE FROM kv WHERE key = ?')
    for (const [key, value] of evaluation.writes) {
      if (value === undefined) remove.run(key)
      else upsert.run(key, JSON.stringify(value))
    }
  }

  #read(key: string): Json | undefined {
    const row = this.#log.db.query('SELECT value FROM kv WHERE key = ?').get(key) as {
      value: string
    } | null
    return row === null ? undefined : (JSON.parse(row.value) as Json)
  }

  async get(key: string): Promise<Json | undefined> {
    return this.#read(key)
  }

  async list(prefix: string, limit: number): Promise<{ key: string; value: Json }[]> {
    // Keys sort bytewise, so those with the prefix are contiguous from the prefix on.
    const rows = this.#log.db.query('SELECT key, value FROM kv WHERE key >= ? ORDER BY key')
    const found: { key: string; value: Json }[] = []
    for (const row of rows.iterate(prefix) as Iterable<{ key: string; value: string }>) {
      if (!row.key.startsWith(prefix) || found.length >= limit) break
      found.push({ key: row.key, value: JSON.parse(row.value) as Json })
    }
    return found
  }

  locks(): Map<string, string> {
    return this.#work.locks()
  }

  /** Every record as stored, oldest first (with prepared operations). */
  records(): StoredRecord[] {
    return this.#log.records()
  }

  async close(): Promise<void> {
    this.#log.close()
  }
}
