// A Resource (./resource.ts) as the store of a real participant node. The participant's own
// durable log (SQLite, synchronous=FULL, in its directory) holds the votes and outcomes, and the
// operations of every yes: a yes is durable there before it is answered even when the resource
// itself cannot keep it, and an outcome is in the log before the resource hears of it, so that
// after a crash the log says what the resource must still be told.
import { join } from 'node:path'
import { sqlOps, type Effect, type Json, type Op, type ParticipantRecord } from '../core/index.ts'
import { failpoint } from '../store/failpoint.ts'
import { DurableLog } from '../store/log.ts'
import { PARTICIPANT_DB, outcome } from '../store/sqlite-store.ts'
import {
  StoreUnavailable,
  type Checkpoints,
  type ParticipantStore,
  type PrepareContext,
  type Verdict,
} from '../store/store.ts'
import type { Resource } from './resource.ts'

/** A record as this store logs it: a `prepared` one carries the operations, as `work` (the
 * built-in store's `ops` would make an offline `participant.ts resolve` apply them to its kv). */
type LoggedRecord = ParticipantRecord & { work?: readonly Op[] }

export class ResourceStore implements ParticipantStore {
  /** The resource's commit is not atomic with the log's record: always two phases. */
  readonly onePhase = false
  readonly threePhase = true
  readonly #log: DurableLog<LoggedRecord>
  /** The operations of each yes, from the check until the outcome. */
  readonly #work = new Map<string, readonly Op[]>()

  constructor(
    readonly resource: Resource,
    dir: string,
  ) {
    this.#log = new DurableLog<LoggedRecord>(join(dir, PARTICIPANT_DB), { lazyMs: 0, outcome })
  }

  get flushes(): number {
    return this.#log.flushes
  }

  readonly checkpoints: Checkpoints<ParticipantRecord> = {
    fold: (txn, record) => this.#log.fold(txn, record),
    folded: (txn) => this.#log.folded(txn),
    history: () => this.#log.history(),
    outcomes: (each, inLogOrder) => this.#log.outcomes(each, inLogOrder),
  }

  /** The log's records; first the resource is brought in line with them (see reconcile). */
  async load(): Promise<ParticipantRecord[]> {
    const records = this.#log.records()
    await this.#reconcile(records)
    return records.map(({ work: _, ...record }) => record)
  }

  /** After a restart: what the resource holds and the log decided is finished (commit, abort);
   * what it holds that the log never prepared is aborted (a crash before the yes was logged);
   * what the log holds prepared and the resource lost is prepared again from the log. */
  async #reconcile(records: LoggedRecord[]): Promise<void> {
    const latest = new Map<string, LoggedRecord>()
    for (const r of records)
      latest.set(r.txn, r.state === 'prepared' ? r : { ...latest.get(r.txn), ...r })
    const held = new Set(this.resource.recover ? await this.resource.recover() : [])
    for (const txn of held) {
      const state = (latest.get(txn) ?? this.#log.folded(txn))?.state
      if (state === 'committed') await this.resource.commit(txn)
      else if (state === undefined || state === 'aborted') await this.resource.abort(txn)
    }
    for (const r of latest.values()) {
      if (r.state === 'committed' || r.state === 'aborted') continue
      const work = r.work ?? []
      this.#work.set(r.txn, work)
      if (held.has(r.txn)) continue
      // `read-only` keeps the promise too: a three-phase vote on reads, holding nothing.
      const again = await this.resource.prepare(r.txn, work)
      if (again.vote === 'no')
        throw new Error(
          `the resource refused to prepare ${r.txn} again after a restart, though it voted yes ` +
            `on it (${again.reason ?? again.vote}): a resource must keep its promise`,
        )
    }
  }

  async check(txn: string, ops: readonly Op[], context: PrepareContext = {}): Promise<Verdict> {
    if (sqlOps(ops).length > 0) return { vote: 'no', reason: 'a resource runs no sql operations' }
    let verdict: Verdict
    try {
      verdict = await this.resource.prepare(txn, ops)
    } catch (error) {
      await this.#quietly(() => this.resource.abort(txn))
      return { vote: 'no', reason: `resource: ${messageOf(error)}` }
    }
    // Three-phase commit counts every participant in its quorums: one that only reads is
    // prepared all the same (holding nothing), and hears the outcome.
    const vote = verdict.vote === 'read-only' && context.three ? 'yes' : verdict.vote
    if (vote === 'yes') this.#work.set(txn, ops)
    return verdict.reason === undefined || vote !== 'no'
      ? { vote }
      : { vote, reason: verdict.reason }
  }

  /** Logs `record`; an outcome is then carried out by the resource (retried by the caller, and
   * at the next start, should it fail). */
  async persist(record: ParticipantRecord, effect?: Effect, lazy = false): Promise<void> {
    const work = this.#work.get(record.txn)
    const logged = record.state === 'prepared' && work ? { ...record, work } : record
    await this.#log.append(logged, undefined, lazy)
    if (record.state !== 'committed' && record.state !== 'aborted') return
    failpoint('resource-after-outcome-logged', record.txn)
    try {
      if (record.state === 'committed') await this.resource.commit(record.txn)
      else await this.resource.abort(record.txn)
    } catch (error) {
      throw new StoreUnavailable(
        `resource: ${record.state} logged, not yet done: ${messageOf(error)}`,
      )
    }
    if (effect) this.#work.delete(record.txn)
  }

  /** A yes whose record could not be logged: the resource lets go of it. */
  async discard(txn: string): Promise<void> {
    this.#work.delete(txn)
    await this.#quietly(() => this.resource.abort(txn))
  }

  async get(key: string): Promise<Json | undefined> {
    return this.resource.read ? await this.resource.read(key) : undefined
  }

  async list(): Promise<{ key: string; value: Json }[]> {
    return []
  }

  /** The resource keeps its own locks; the participant shows none of its own. */
  locks(): Map<string, string> {
    return new Map()
  }

  async close(): Promise<void> {
    this.#log.close()
    await this.resource.close?.()
  }

  async #quietly(work: () => unknown): Promise<void> {
    try {
      await work()
    } catch {
      // Idempotent by contract: the next start asks again.
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
