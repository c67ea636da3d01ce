// A participant whose data and log live in PostgreSQL, prepared with PostgreSQL's own
// PREPARE TRANSACTION: the database itself keeps a yes vote's work and row locks through crashes.
//
// Log rows (table twophase_log) and what they prove:
// - `context` (autocommit, before the work begins, for every prepare): whom to ask in doubt,
//   the operations, the time; used only for a transaction found in pg_prepared_xacts;
// - `prepared` (inside the prepared transaction): visible only once COMMIT PREPARED ran, so a
//   visible one means committed even if the `committed` row after it was lost in a crash;
// - `committed` (autocommit, after COMMIT PREPARED) and `aborted` (autocommit, before ROLLBACK
//   PREPARED, so a crash between the two is finished at start-up);
// - `three` (autocommit, three-phase commit only): a later state of a prepared transaction,
//   precommitted or preaborted, or a termination attempt it joined; the latest one counts.
// A transaction listed in pg_prepared_xacts with no outcome row is in doubt: prepared, or what
// its latest `three` row says.
import type { SQL, ReservedSQL } from 'bun'
import {
  backoffMs,
  evaluateOps,
  keysOf,
  sqlOps,
  type Effect,
  type Json,
  type Op,
  type ParticipantRecord,
} from '../core/index.ts'
import { failpoint } from './failpoint.ts'
import { runSqlOps } from './pg-sql.ts'
import { PreparedWork, lockReason } from './locks.ts'
import { pgPool } from './pg-pool.ts'
import { UnsurePrepares } from './pg-unsure.ts'
import {
  StoreUnavailable,
  type ParticipantStore,
  type PrepareContext,
  type Verdict,
} from './store.ts'

type Context = Pick<ParticipantRecord, 'coordinator' | 'peers' | 'at'> & {
  ops?: readonly Op[]
  three?: { self: string }
}
type LogRow = ParticipantRecord & { kind?: 'context' | 'three'; ops?: readonly Op[] }

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS twophase_kv (
    key text PRIMARY KEY, value jsonb, present boolean NOT NULL DEFAULT false);
  CREATE TABLE IF NOT EXISTS twophase_log (
    seq bigserial PRIMARY KEY, txn text NOT NULL, record jsonb NOT NULL);`

const POOL_MAX = 20

/** The longest any statement waits for a lock (PostgreSQL's lock_timeout, set on every
 * connection of the pool). The participant's own statements never wait (see `check`); this
 * bounds what they cannot foresee: a key row that another session inserted and has not yet
 * committed (an insert of the same key waits for that session to end). Far above the
 * milliseconds another session's autocommit insert takes, far below the coordinator's timeouts. */
export const LOCK_TIMEOUT_MS = 250

/** The fewest prepared transactions a participant's server must allow: one per connection of
 * its pool, so that the prepares it runs at once never find the server full. (A prepare that
 * does gets a `no`: safe, but a server that allows fewer is refused at start-up.) */
export const MIN_PREPARED_TRANSACTIONS = POOL_MAX

/** Between attempts to reach a database that is down at start-up. */
const CONNECT_BACKOFF = { baseMs: 100, capMs: 5000 }

/** Opens the store like a server would: waits while the database is down (see `connect`). */
export async function openPgStore(url: string, say: (line: string) => void): Promise<PgStore> {
  const store = new PgStore(url)
  await store.connect(say)
  return store
}

/** Where a postgres:// URL points, for messages: host, port and database, never the user's
 * password. */
export function describePg(url: string): string {
  try {
    const u = new URL(url)
    const database = decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username)
    return `PostgreSQL at ${u.hostname}:${u.port || '5432'} (database ${database || 'postgres'})`
  } catch {
    return 'PostgreSQL'
  }
}

/** An error retrying cannot mend: the server answered that the database does not exist or
 * refused the credentials. Anything else (refused or lost connections, a server starting up or
 * shutting down, too many clients) may pass once the server is back. */
function isPermanent(error: unknown): boolean {
  const errno = (error as { errno?: unknown }).errno
  return typeof errno === 'string' && (errno.startsWith('28') || errno === '3D000')
}

export class PgStore implements ParticipantStore {
  /** A one-phase prepare is prepared and voted on as usual (see ParticipantStore). */
  readonly onePhase = false
  readonly threePhase = true
  /** It runs `sql` operations (./pg-sql.ts) when the node allows them. */
  readonly sql = true
  readonly #sql: SQL
  readonly #work = new PreparedWork()
  /** Open (not yet prepared) database transactions, by transaction id, between check and vote. */
  readonly #open = new Map<string, ReservedSQL>()
  /** Prepares whose answer was lost: what they left on the server is rolled back. */
  readonly #unsure: UnsurePrepares
  #database = ''
  flushes = 0

  /** `options.sleep`: the pause between attempts to settle a prepare that got no answer. */
  constructor(
    readonly url: string,
    options: { sleep?: (ms: number) => Promise<void> } = {},
  ) {
    this.#sql = pgPool(url, POOL_MAX, { lock_timeout: LOCK_TIMEOUT_MS })
    this.#unsure = new UnsurePrepares((txn) => this.#finish(txn, 'ROLLBACK'), options.sleep)
  }

  /** Waits until the database answers, retrying with backoff while it cannot be reached (each
   * failed attempt is told to `say`, naming host, port and database), then refuses a server
   * whose max_prepared_transactions is below MIN_PREPARED_TRANSACTIONS. Throws at once for an
   * error retrying cannot mend. */
  async connect(say: (line: string) => void, sleep = Bun.sleep): Promise<void> {
    const where = describePg(this.url)
    let allowed: number
    for (let attempt = 0; ; attempt++) {
      try {
        const [row] = await this.#sql`
          SELECT current_setting('max_prepared_transactions')::int AS allowed`
        allowed = row.allowed as number
        if (attempt > 0) say(`${where} is up`)
        break
      } catch (error) {
        if (isPermanent(error)) throw new Error(`${where}: ${messageOf(error)}`)
        const ms = Math.round(backoffMs(attempt, Math.random, CONNECT_BACKOFF))
        say(`waiting for ${where}: ${messageOf(error)}; retrying in ${ms} ms`)
        await sleep(ms)
      }
    }
    if (allowed < MIN_PREPARED_TRANSACTIONS)
      throw new Error(
        `${where} has max_prepared_transactions = ${allowed}, and a participant needs at least ` +
          `${MIN_PREPARED_TRANSACTIONS}: set max_prepared_transactions = ` +
          `${MIN_PREPARED_TRANSACTIONS} or more on the server and restart it`,
      )
  }

  /** The global transaction id: PostgreSQL's are cluster-wide, so it names the database. */
  #gid(txn: string): string {
    return `tp:${this.#database}:${txn}` // txn ids are [A-Za-z0-9._:-]: safe in a literal
  }

  async load(): Promise<ParticipantRecord[]> {
    await this.#sql.unsafe(SCHEMA).simple()
    const [{ db }] = await this.#sql`SELECT current_database() AS db`
    this.#database = db as string
    const rows = (await this.#sql`SELECT record FROM twophase_log ORDER BY seq`) as {
      record: LogRow
    }[]
    const prefix = `tp:${this.#database}:`
    const pending = (await this.#sql`
      SELECT gid FROM pg_prepared_xacts
      WHERE database = current_database() AND starts_with(gid, ${prefix})`) as { gid: string }[]
    return this.#replay(
      rows.map((r) => r.record),
      pending.map((p) => p.gid.slice(prefix.length)),
    )
  }

  async #replay(rows: LogRow[], inDoubt: string[]): Promise<ParticipantRecord[]> {
    const contexts = new Map<string, Context>()
    const outcome = new Map<string, ParticipantRecord>()
    const later = new Map<string, ParticipantRecord>() // three-phase: the latest state
    const records: ParticipantRecord[] = []
    for (const { kind, ops, ...r } of rows) {
      if (kind === 'context') contexts.set(r.txn, { ...r, ops })
      else if (kind === 'three') later.set(r.txn, r)
      else if (r.state === 'prepared') outcome.set(r.txn, { ...r, state: 'committed' })
      else outcome.set(r.txn, r)
    }
    for (const r of outcome.values()) records.push(r)
    for (const txn of inDoubt) {
      const decided = outcome.get(txn)
      if (decided?.state === 'aborted')
        await this.#finish(txn, 'ROLLBACK') // crashed in between
      else if (decided === undefined) {
        const { ops, three, ...context } = contexts.get(txn) ?? {}
        this.#work.hold(txn, ops ?? [])
        const first = three ? { three: { self: three.self, lastElected: 0, lastAttempt: -1 } } : {}
        records.push({ txn, state: 'prepared', vote: 'yes', ...context, ...first })
        const now = later.get(txn)
        if (now) records.push(now)
      }
    }
    return records
  }

  async check(txn: string, ops: readonly Op[], context: PrepareContext = {}): Promise<Verdict> {
    try {
      await this.#unsure.settle(txn) // an earlier prepare of it that got no answer
    } catch (error) {
      return { vote: 'no', reason: `database unavailable: ${messageOf(error)}` }
    }
    const conflict = this.#work.conflict(txn, ops)
    if (conflict) return { vote: 'no', reason: lockReason(conflict) }
    // Claimed before the first statement: two prepares of one key never meet in the database,
    // where the later one's insert of the key's row would wait for the earlier one to end.
    this.#work.hold(txn, ops)
    let conn: ReservedSQL | null = null
    try {
      const keys = keysOf(ops)
      await this.#giveRows(keys)
      conn = await this.#sql.reserve()
      // Whom to ask in doubt is committed before the work begins: PREPARE TRANSACTION can
      // succeed on the server while the connection dies, and the transaction it leaves behind
      // must still know whom to ask after a restart. (Unused when the vote is no.)
      const row = { txn, kind: 'context', ...context, ops }
      await appendLog(conn, row)
      await conn`BEGIN`
      const verdict = await this.#lockAndWrite(conn, txn, ops, keys)
      if (verdict.vote === 'yes') this.#open.set(txn, conn)
      else {
        await this.#rollback(conn)
        this.#work.release(txn)
      }
      return verdict
    } catch (error) {
      if (conn) await this.#rollback(conn)
      this.#work.release(txn)
      if (errnoOf(error) === LOCK_NOT_AVAILABLE) return { vote: 'no', reason: waitedReason(txn) }
      return { vote: 'no', reason: `database unavailable: ${messageOf(error)}` }
    }
  }

  /** Gives every key a row, present or not, so that FOR UPDATE can lock even absent keys. Only
   * the missing rows are inserted, after a plain SELECT (which never waits): an INSERT … ON
   * CONFLICT that meets a row an unfinished transaction updated or locked waits for it to end,
   * and a prepared transaction ends only when its coordinator decides. */
  async #giveRows(keys: string[]): Promise<void> {
    const rows = await this.#sql`SELECT key FROM twophase_kv WHERE key = ANY(${keys}::text[])`
    const present = new Set((rows as { key: string }[]).map((r) => r.key))
    const missing = keys.filter((key) => !present.has(key))
    if (missing.length === 0) return
    await this.#sql`INSERT INTO twophase_kv (key) SELECT unnest(${missing}::text[])
      ON CONFLICT DO NOTHING`
  }

  async #lockAndWrite(conn: ReservedSQL, txn: string, ops: readonly Op[], keys: string[]) {
    // SKIP LOCKED, not NOWAIT: a row another transaction holds is left out, not an error (which
    // the server would log). Every key has a row, so a row left out is a row locked.
    const rows: { key: string; value: Json; present: boolean }[] = await conn`
      SELECT key, value, present FROM twophase_kv
      WHERE key = ANY(${keys}::text[]) ORDER BY key FOR UPDATE SKIP LOCKED`
    const locked = keys.find((key) => !rows.some((r) => r.key === key))
    if (locked !== undefined)
      return { vote: 'no', reason: await this.#heldBy(conn, locked) } as Verdict
    const committed = new Map(rows.filter((r) => r.present).map((r) => [r.key, r.value]))
    const evaluation = evaluateOps(ops, (key) => committed.get(key))
    if (!evaluation.ok) return { vote: 'no', reason: evaluation.reason } as Verdict
    for (const [key, value] of evaluation.writes) {
      if (value === undefined)
        await conn`UPDATE twophase_kv SET value = NULL, present = false WHERE key = ${key}`
      else
        await conn`UPDATE twophase_kv SET value = ${JSON.stringify(value)}::text::jsonb,
          present = true WHERE key = ${key}`
    }
    const refused = await runSqlOps(conn, sqlOps(ops))
    if (refused) return refused
    return { vote: 'yes' } as Verdict
  }

  /** Why `key` could not be locked: the prepared transaction that holds its row (the row's
   * xmax), named as this participant names its own, else "another transaction". */
  async #heldBy(conn: ReservedSQL, key: string): Promise<string> {
    const [row] = await conn`SELECT p.gid FROM twophase_kv k
      JOIN pg_prepared_xacts p ON p.transaction = k.xmax WHERE k.key = ${key}`
    const gid = (row as { gid?: string } | undefined)?.gid
    const ours = `tp:${this.#database}:`
    if (gid === undefined) return `key ${key} is locked by another transaction`
    if (gid.startsWith(ours)) return lockReason({ key, holder: gid.slice(ours.length) })
    return `key ${key} is locked by prepared transaction ${gid}`
  }

  async persist(record: ParticipantRecord, effect?: Effect): Promise<void> {
    try {
      if (record.three && this.#laterState(record)) await appendLog(this.#sql, three(record))
      else if (record.state === 'prepared') await this.#prepare(record)
      else if (record.state === 'committed') await this.#commit(record)
      else await this.#abort(record)
      this.flushes += 1
    } catch (error) {
      throw new StoreUnavailable(`database unavailable: ${messageOf(error)}`)
    }
    if (effect) this.#work.release(record.txn)
  }

  /** Three-phase: a record of a transaction already prepared (PREPARE TRANSACTION done): its
   * precommit or preabort, or an attempt it joined. It goes beside the prepared transaction. */
  #laterState(record: ParticipantRecord): boolean {
    const state = record.state
    if (state === 'precommitted' || state === 'preaborted') return true
    return state === 'prepared' && !this.#open.has(record.txn)
  }

  async #prepare(record: ParticipantRecord): Promise<void> {
    const conn = this.#open.get(record.txn)
    if (!conn) throw new Error(`assertion: ${record.txn} has no open database transaction`)
    await appendLog(conn, record)
    try {
      await conn.unsafe(`PREPARE TRANSACTION '${this.#gid(record.txn)}'`)
    } catch (error) {
      this.#unsure.add(record.txn) // the server may have prepared it and lost only the answer
      throw error
    }
    failpoint('pg-after-prepare', record.txn)
    this.#open.delete(record.txn)
    conn.release()
  }

  async #commit(record: ParticipantRecord): Promise<void> {
    await this.#finish(record.txn, 'COMMIT')
    await appendLog(this.#sql, record)
  }

  async #abort(record: ParticipantRecord): Promise<void> {
    await appendLog(this.#sql, record)
    await this.#finish(record.txn, 'ROLLBACK')
  }

  /** COMMIT or ROLLBACK PREPARED, if the transaction is still prepared: it is not when this is
   * a retry, or the abort of a transaction that never got as far (a `no`, an abort before any
   * prepare). Looked up first rather than tried: a missing one is an ERROR in the server's log.
   * One finished in between by another session (42704) is fine too. */
  async #finish(txn: string, verb: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    const gid = this.#gid(txn)
    const found = await this.#sql`SELECT 1 FROM pg_prepared_xacts WHERE gid = ${gid}`
    if (found.length === 0) return
    try {
      await this.#sql.unsafe(`${verb} PREPARED '${gid}'`)
    } catch (error) {
      if (errnoOf(error) !== '42704') throw error
    }
  }

  async #rollback(conn: ReservedSQL): Promise<void> {
    try {
      await conn`ROLLBACK`
    } catch {
      // The connection is gone, and with it the transaction.
    }
    conn.release()
  }

  /** Drops the open transaction of a `yes` that could not be made durable. */
  async discard(txn: string): Promise<void> {
    const conn = this.#open.get(txn)
    this.#open.delete(txn)
    if (conn) await this.#rollback(conn)
    this.#work.release(txn)
  }

  async get(key: string): Promise<Json | undefined> {
    const rows = await this.#sql`SELECT value FROM twophase_kv WHERE key = ${key} AND present`
    return rows.length === 0 ? undefined : (rows[0].value as Json)
  }

  async list(prefix: string, limit: number): Promise<{ key: string; value: Json }[]> {
    return (await this.#sql`SELECT key, value FROM twophase_kv
      WHERE present AND starts_with(key, ${prefix}) ORDER BY key COLLATE "C" LIMIT ${limit}`) as {
      key: string
      value: Json
    }[]
  }

  locks(): Map<string, string> {
    return this.#work.locks()
  }

  /** Resolves once every prepare that got no answer is settled (./pg-unsure.ts). */
  settled(): Promise<void> {
    return this.#unsure.settled()
  }

  async close(): Promise<void> {
    this.#unsure.close()
    for (const txn of [...this.#open.keys()]) await this.discard(txn)
    await this.#sql.close()
  }
}

/** Appends a log row, inside `db`'s transaction if it has one (jsonb from text: Bun would
 * otherwise send a string parameter as a JSON string). */
async function appendLog(db: SQL | ReservedSQL, record: { txn: string }): Promise<void> {
  await db`INSERT INTO twophase_log (txn, record)
    VALUES (${record.txn}, ${JSON.stringify(record)}::text::jsonb)`
}

function three(record: ParticipantRecord): LogRow {
  return { ...record, kind: 'three' }
}

/** PostgreSQL's lock_not_available: a wait cut short by lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03'

function waitedReason(txn: string): string {
  return `a key of ${txn} is locked by another transaction (waited ${LOCK_TIMEOUT_MS} ms)`
}

function errnoOf(error: unknown): string | undefined {
  const errno = (error as { errno?: unknown } | null)?.errno
  return typeof errno === 'string' ? errno : undefined
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
