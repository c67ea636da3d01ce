// The coordinator's log in PostgreSQL (`--log-db`), shared by every coordinator on it. The same
// rules as the SQLite log (./log.ts): a record's promise resolves only once PostgreSQL has
// committed it; records appended while a write is out go together in the next one (group
// commit: a write starts as soon as the previous one ends, never on a timer, except that a lazy
// record alone waits up to `lazyMs` for company). Every write is one statement that checks this
// coordinator's lease (./pg-lease.ts) and writes nothing when it was taken over: fencing.
import { SQL } from 'bun'
import type { CoordinatorRecord } from '../core/index.ts'
import { Fenced, PgLease } from './pg-lease.ts'
import type { Checkpoints, LogMember, SharedLog } from './store.ts'

type Item =
  | { kind: 'record'; record: CoordinatorRecord }
  | { kind: 'claim'; txn: string; participants: readonly string[]; protocol?: '3pc' }
  | { kind: 'done'; txn: string }
type Claimed = boolean | 'orphan'
type Pending = { item: Item; resolve: (claimed: Claimed) => void; reject: (e: unknown) => void }

export type PgLogOptions = {
  /** This coordinator's URL, its name on the log. */
  name: string
  leaseMs: number
  /** Load finished transactions too (batch mode: decision.txt shows every decision). */
  all?: boolean
  lazyMs?: number
  say?: (line: string) => void
  sleep?: (ms: number) => Promise<void>
}

export class PgLog implements SharedLog<CoordinatorRecord>, Checkpoints<CoordinatorRecord> {
  readonly lease: PgLease
  readonly lazyMs: number
  flushes = 0
  #records: CoordinatorRecord[] = []
  #pending: Pending[] = []
  #writing: Promise<void> | null = null
  #scheduled = false
  #lazyTimer: Timer | null = null
  #fenced: Fenced | null = null
  /** Called once, when a write or a renewal finds the lease taken over. */
  onFenced: (error: Error) => void = () => {}

  private constructor(
    readonly sql: SQL,
    options: PgLogOptions,
  ) {
    this.lease = new PgLease(sql, options.name, options.leaseMs)
    this.lazyMs = options.lazyMs ?? 20
  }

  /** Connects, takes a lease under `name` (waiting for an earlier one to run out) and reads the
   * records of the transactions this coordinator owns. */
  static async open(url: string, options: PgLogOptions): Promise<PgLog> {
    const log = new PgLog(new SQL({ url, max: 4 }), options)
    await log.lease.register(options.say ?? (() => {}), options.sleep ?? Bun.sleep)
    log.#records = await log.lease.owned(options.all ?? false)
    return log
  }

  records(): CoordinatorRecord[] {
    return this.#records
  }

  history(): Iterable<CoordinatorRecord> {
    return this.#records
  }

  /** Folded transactions are found by `lookup` on the shared log, not here. */
  folded(): undefined {
    return undefined
  }

  get checkpoints(): this {
    return this
  }

  /** A finished transaction is marked done with a later write: start-up no longer reads it. */
  fold(txn: string): void {
    this.#enqueue({ kind: 'done', txn }, true).catch(() => {})
  }

  append(record: CoordinatorRecord, _effect: undefined, lazy: boolean): Promise<void> {
    return this.#enqueue({ kind: 'record', record }, lazy).then(() => {})
  }

  /** Makes `txn` this coordinator's before anything of it is sent; false when the log already
   * has it (another coordinator ran it, or this one before a restart); `orphan` when the log
   * has it as this coordinator's and unfinished, though it never ran it: a claim whose answer
   * was lost with the connection (it was committed all the same), or one moved here by a
   * takeover whose records were never read. */
  claim(txn: string, participants: readonly string[], protocol: '2pc' | '3pc'): Promise<Claimed> {
    const three = protocol === '3pc' ? { protocol: '3pc' as const } : {}
    return this.#enqueue({ kind: 'claim', txn, participants, ...three }, false)
  }

  /** Every record of `txn` on the shared log, whoever wrote it (empty: never claimed). */
  lookup(txn: string): Promise<CoordinatorRecord[]> {
    return this.lease.recordsOf([txn])
  }

  get leaseMs(): number {
    return this.lease.leaseMs
  }

  takeOver(): Promise<CoordinatorRecord[]> {
    return this.lease.takeOver()
  }

  members(): Promise<LogMember[]> {
    return this.lease.members()
  }

  unfinished(): Promise<string[]> {
    return this.lease.unfinished()
  }

  /** Renews the lease; once it was taken over, fences this log for good. */
  async renew(): Promise<void> {
    if (this.#fenced) throw this.#fenced
    try {
      await this.lease.renew()
    } catch (error) {
      if (error instanceof Fenced) this.#fence(error)
      throw error
    }
  }

  #enqueue(item: Item, lazy: boolean): Promise<Claimed> {
    if (this.#fenced) return Promise.reject(this.#fenced)
    const { promise, resolve, reject } = Promise.withResolvers<Claimed>()
    this.#pending.push({ item, resolve, reject })
    if (!lazy || this.lazyMs === 0) this.#writeSoon()
    else this.#lazyTimer ??= setTimeout(() => this.#writeSoon(), this.lazyMs)
    return promise
  }

  #writeSoon(): void {
    if (this.#scheduled || this.#writing) return
    this.#scheduled = true
    setImmediate(() => void this.#write())
  }

  async #write(): Promise<void> {
    this.#scheduled = false
    if (this.#lazyTimer !== null) clearTimeout(this.#lazyTimer)
    this.#lazyTimer = null
    const group = this.#pending
    if (group.length === 0) return
    this.#pending = []
    const { promise, resolve } = Promise.withResolvers<void>()
    this.#writing = promise
    try {
      const { claimed, orphans } = await this.#statement(group.map((p) => p.item))
      this.flushes += 1
      for (const { item, resolve } of group) {
        if (item.kind !== 'claim' || claimed.has(item.txn)) resolve(true)
        else resolve(orphans.has(item.txn) ? 'orphan' : false)
      }
    } catch (error) {
      if (error instanceof Fenced) this.#fence(error)
      for (const p of group) p.reject(error)
    } finally {
      this.#writing = null
      resolve()
      // Whatever came meanwhile goes at once: a forced record never waits on a timer.
      if (this.#pending.length > 0) this.#writeSoon()
    }
  }

  /** One statement: the lease checked (and locked against a takeover) and the group written,
   * or nothing written at all. Returns the transactions it claimed, and those it found claimed
   * already by this coordinator and unfinished (its CTEs all see the rows from before it). */
  async #statement(items: Item[]): Promise<{ claimed: Set<string>; orphans: Set<string> }> {
    const { name, epoch } = this.lease
    const [row] = await this.sql`
      WITH lease AS (
        SELECT 1 FROM twophase_coordinators
        WHERE name = ${name} AND epoch = ${epoch} AND taken_by IS NULL
          AND lease_until > clock_timestamp() FOR SHARE),
      items AS (SELECT value AS v, ordinality AS i
        FROM jsonb_array_elements(${JSON.stringify(items)}::text::jsonb) WITH ORDINALITY),
      claimed AS (
        INSERT INTO twophase_claims (txn, owner, participants, protocol)
        SELECT v->>'txn', ${name}, v->'participants', v->>'protocol' FROM items
        WHERE v->>'kind' = 'claim' AND EXISTS (SELECT 1 FROM lease)
        ON CONFLICT (txn) DO NOTHING RETURNING txn),
      orphans AS (
        SELECT c.txn FROM twophase_claims c JOIN items ON c.txn = v->>'txn'
        WHERE v->>'kind' = 'claim' AND c.owner = ${name} AND NOT c.done),
      logged AS (
        INSERT INTO twophase_coordinator_log (txn, writer, epoch, record)
        SELECT v->'record'->>'txn', ${name}, ${epoch}, v->'record' FROM items
        WHERE v->>'kind' = 'record' AND EXISTS (SELECT 1 FROM lease) ORDER BY i RETURNING 1),
      finished AS (
        UPDATE twophase_claims c SET done = true FROM items
        WHERE c.txn = coalesce(v->>'txn', v->'record'->>'txn') AND EXISTS (SELECT 1 FROM lease)
          AND (v->>'kind' = 'done' OR v->'record'->>'type' = 'done')
        RETURNING 1)
      SELECT EXISTS (SELECT 1 FROM lease) AS held,
        EXISTS (SELECT 1 FROM twophase_coordinators
          WHERE name = ${name} AND epoch = ${epoch} AND taken_by IS NULL) AS ours,
        (SELECT coalesce(jsonb_agg(txn), '[]'::jsonb) FROM claimed) AS claimed,
        (SELECT coalesce(jsonb_agg(txn), '[]'::jsonb) FROM orphans) AS orphans,
        (SELECT count(*) FROM logged) + (SELECT count(*) FROM finished) AS written`
    if (!row.ours) throw new Fenced(`the lease of ${name} was taken over: nothing written`)
    // Run out but not taken over (the database was out of reach): written once it is renewed.
    if (!row.held) throw new Error(`the lease of ${name} ran out: nothing written`)
    const set = (v: unknown) => new Set((typeof v === 'string' ? JSON.parse(v) : v) as string[])
    return { claimed: set(row.claimed), orphans: set(row.orphans) }
  }

  #fence(error: Fenced): void {
    if (this.#fenced) return
    this.#fenced = error
    this.onFenced(error)
  }

  /** Writes what is pending, gives the lease up (another coordinator may take over at once
   * whatever is unfinished), then closes the connections. */
  async close(): Promise<void> {
    try {
      await this.#drain()
      if (!this.#fenced) await this.lease.release()
    } catch {
      // The database is out of reach: the lease runs out by itself.
    } finally {
      await this.sql.close()
    }
  }

  async #drain(): Promise<void> {
    while (this.#writing || this.#pending.length > 0) {
      if (this.#writing) await this.#writing
      else await this.#write()
    }
  }
}
