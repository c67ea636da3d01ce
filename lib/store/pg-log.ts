// The coordinator's log in PostgreSQL (`--log-db`), shared by every coordinator on it. The same
// rules as the SQLite log (./log.ts): a record's promise resolves only once PostgreSQL has
// committed it, with group commit (./group-log.ts). Every write is one statement that checks
// this coordinator's lease (./pg-lease.ts) and writes nothing when it was taken over: fencing.
import type { SQL } from 'bun'
import type { CoordinatorRecord } from '../core/index.ts'
import { GroupLog, type Item, type Written } from './group-log.ts'
import { Fenced, PgLease } from './pg-lease.ts'
import { pgPool } from './pg-pool.ts'
import type { LogMember } from './store.ts'

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

/** Bun's timers: the next turn (setImmediate, so requests already waiting on sockets get to
 * add theirs), or `ms` later. */
function later(ms: number, fn: () => void): void {
  if (ms === 0) setImmediate(fn)
  else setTimeout(fn, ms)
}

export class PgLog extends GroupLog {
  readonly lease: PgLease

  private constructor(
    readonly sql: SQL,
    options: PgLogOptions,
  ) {
    super(options.lazyMs ?? 20, later)
    this.lease = new PgLease(sql, options.name, options.leaseMs)
  }

  /** Connects, takes a lease under `name` (waiting for an earlier one to run out) and reads the
   * records of the transactions this coordinator owns. */
  static async open(url: string, options: PgLogOptions): Promise<PgLog> {
    const log = new PgLog(pgPool(url, 4), options)
    await log.lease.register(options.say ?? (() => {}), options.sleep ?? Bun.sleep)
    log.loaded = await log.lease.owned(options.all ?? false)
    return log
  }

  get leaseMs(): number {
    return this.lease.leaseMs
  }

  /** Every record of `txn` on the shared log, whoever wrote it (empty: never claimed). */
  lookup(txn: string): Promise<CoordinatorRecord[]> {
    return this.lease.recordsOf([txn])
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

  protected renewLease(): Promise<void> {
    return this.lease.renew()
  }

  /** One statement: the lease checked (and locked against a takeover) and the group written,
   * or nothing written at all. Returns the transactions it claimed, and those it found claimed
   * already by this coordinator and unfinished (its CTEs all see the rows from before it). */
  protected async write(items: Item[]): Promise<Written> {
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

  /** Writes what is pending, gives the lease up (another coordinator may take over at once
   * whatever is unfinished), then closes the connections. */
  async close(): Promise<void> {
    try {
      await this.drain()
      if (!this.fenced) await this.lease.release()
    } catch {
      // The database is out of reach: the lease runs out by itself.
    } finally {
      await this.sql.close()
    }
  }
}
