// Coordinators sharing one log in PostgreSQL: each holds a lease it renews, and every write it
// makes checks that lease in the same statement (fencing). One whose lease ran out is taken over
// by another, which becomes the owner of its unfinished transactions; from then on the first
// can write nothing (its lease row names who took it), so it can decide nothing either. Times
// are the database's clock (clock_timestamp()), never a coordinator's: no two clocks to agree.
//
// Tables (created if missing, beside the participants' own if they share the database):
// - twophase_coordinators: one row per coordinator (its URL is its name): the epoch it runs in,
//   its lease, and who took it over;
// - twophase_claims: which coordinator owns each transaction, and its participants; written
//   before any prepare is sent, so that a transaction any coordinator finds no trace of was
//   never prepared by one of them (and presumed abort may answer abort for it);
// - twophase_coordinator_log: the coordinators' records, each with its writer and epoch;
// - twophase_takeovers: who took over whom, when (for the operator and the chaos checks).
import type { SQL } from 'bun'
import type { CoordinatorRecord } from '../core/index.ts'
import type { LogMember } from './store.ts'

export const SCHEMA = `
  CREATE TABLE IF NOT EXISTS twophase_coordinators (
    name text PRIMARY KEY, epoch bigint NOT NULL, lease_until timestamptz NOT NULL,
    held_since timestamptz NOT NULL DEFAULT clock_timestamp(), taken_by text,
    taken_at timestamptz);
  CREATE TABLE IF NOT EXISTS twophase_claims (
    txn text PRIMARY KEY, owner text NOT NULL, participants jsonb NOT NULL, protocol text,
    done boolean NOT NULL DEFAULT false, claimed_at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE INDEX IF NOT EXISTS twophase_claims_live ON twophase_claims (owner) WHERE NOT done;
  CREATE TABLE IF NOT EXISTS twophase_coordinator_log (
    seq bigserial PRIMARY KEY, txn text NOT NULL, writer text NOT NULL, epoch bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(), record jsonb NOT NULL);
  CREATE INDEX IF NOT EXISTS twophase_coordinator_log_txn ON twophase_coordinator_log (txn);
  CREATE TABLE IF NOT EXISTS twophase_takeovers (
    name text NOT NULL, epoch bigint NOT NULL, taken_by text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp());`

/** Thrown by every write once this coordinator's lease was taken over (or its row is gone). */
export class Fenced extends Error {}

type ClaimRow = { txn: string; participants: string[]; protocol: string | null }
type LogRow = { txn: string; record: CoordinatorRecord }

export class PgLease {
  #epoch = 0

  constructor(
    readonly sql: SQL,
    /** This coordinator's URL: its name on the shared log. */
    readonly name: string,
    readonly leaseMs: number,
  ) {}

  get epoch(): number {
    return this.#epoch
  }

  /** Starts a new epoch under `name`: at once if its last lease ran out or was taken over;
   * otherwise (another process with this name, or this one killed a moment ago) once that
   * lease runs out. */
  async register(say: (line: string) => void, sleep: (ms: number) => Promise<void>) {
    await this.sql.unsafe(SCHEMA).simple()
    for (let told = false; ; told = true) {
      const rows = await this.sql`
        INSERT INTO twophase_coordinators AS c (name, epoch, lease_until)
        VALUES (${this.name}, 1, clock_timestamp() + ${this.leaseMs} * interval '1 millisecond')
        ON CONFLICT (name) DO UPDATE SET epoch = c.epoch + 1, lease_until = EXCLUDED.lease_until,
          held_since = clock_timestamp(), taken_by = NULL, taken_at = NULL
        WHERE c.taken_by IS NOT NULL OR c.lease_until < clock_timestamp()
        RETURNING epoch`
      if (rows.length > 0) return void (this.#epoch = Number(rows[0].epoch))
      if (!told) say(`waiting for the lease of ${this.name} on the log to run out`)
      await sleep(Math.max(50, this.leaseMs / 4))
    }
  }

  /** Extends the lease; throws Fenced when it was taken over. A lease that ran out meanwhile
   * (the database was out of reach) is held again from now on: see `takeOver`. */
  async renew(): Promise<void> {
    const rows = await this.sql`
      UPDATE twophase_coordinators
      SET lease_until = clock_timestamp() + ${this.leaseMs} * interval '1 millisecond',
        held_since = CASE WHEN lease_until < clock_timestamp() THEN clock_timestamp()
          ELSE held_since END
      WHERE name = ${this.name} AND epoch = ${this.#epoch} AND taken_by IS NULL RETURNING 1`
    if (rows.length === 0) throw new Fenced(`the lease of ${this.name} was taken over`)
  }

  /** Ends the lease now (a clean stop, with nothing more to write). */
  async release(): Promise<void> {
    await this.sql`UPDATE twophase_coordinators SET lease_until = clock_timestamp()
      WHERE name = ${this.name} AND epoch = ${this.#epoch} AND taken_by IS NULL`
  }

  /** Takes over every coordinator whose lease ran out (only while this one's is held), and
   * returns the records of the unfinished transactions that are this one's now. Only one whose
   * lease ran out while this one held its own, or that stayed silent a whole lease since: when
   * the database itself was out of reach, every lease ran out, and each coordinator gets a
   * lease's time to renew its own before anyone takes it. */
  async takeOver(): Promise<CoordinatorRecord[]> {
    // The records are read in the same transaction: had they been read after its commit, a
    // connection lost between the two would leave the moved claims to no one's memory.
    return await this.sql.begin(async (tx): Promise<CoordinatorRecord[]> => {
      const gone = (await tx`
        UPDATE twophase_coordinators AS v
        SET taken_by = ${this.name}, taken_at = clock_timestamp()
        WHERE v.name <> ${this.name} AND v.taken_by IS NULL AND v.lease_until < clock_timestamp()
          AND EXISTS (SELECT 1 FROM twophase_coordinators AS me
            WHERE me.name = ${this.name} AND me.epoch = ${this.#epoch} AND me.taken_by IS NULL
              AND me.lease_until > clock_timestamp()
              AND me.held_since <= GREATEST(v.lease_until,
                clock_timestamp() - ${this.leaseMs} * interval '1 millisecond'))
        RETURNING v.name, v.epoch`) as { name: string; epoch: number }[]
      if (gone.length === 0) return []
      const names = gone.map((g) => g.name)
      await tx`INSERT INTO twophase_takeovers (name, epoch, taken_by)
        SELECT g->>'name', (g->>'epoch')::bigint, ${this.name}
        FROM jsonb_array_elements(${JSON.stringify(gone)}::text::jsonb) AS g`
      const moved = (await tx`UPDATE twophase_claims SET owner = ${this.name}
        WHERE owner = ANY(${names}::text[]) AND NOT done RETURNING txn`) as { txn: string }[]
      const txns = moved.map((m) => m.txn)
      return txns.length === 0 ? [] : this.recordsOf(txns, tx)
    })
  }

  /** The records of `txns`, oldest first, each opened by a begin made from its claim. */
  async recordsOf(txns: string[], sql: SQL = this.sql): Promise<CoordinatorRecord[]> {
    const claims = (await sql`SELECT txn, participants, protocol FROM twophase_claims
      WHERE txn = ANY(${txns}::text[]) ORDER BY claimed_at`) as ClaimRow[]
    const rows = (await sql`SELECT txn, record FROM twophase_coordinator_log
      WHERE txn = ANY(${txns}::text[]) ORDER BY seq`) as LogRow[]
    return [...claims.map(beginOf), ...rows.map((r) => r.record)]
  }

  /** The records of the transactions this coordinator owns (`all`: finished ones too). */
  async owned(all: boolean): Promise<CoordinatorRecord[]> {
    const rows = (await this.sql`SELECT txn FROM twophase_claims
      WHERE owner = ${this.name} AND (${all} OR NOT done)`) as { txn: string }[]
    return rows.length === 0 ? [] : this.recordsOf(rows.map((r) => r.txn))
  }

  /** The unfinished transactions this coordinator owns (the partial index's). */
  async unfinished(): Promise<string[]> {
    const rows = (await this.sql`SELECT txn FROM twophase_claims
      WHERE owner = ${this.name} AND NOT done`) as { txn: string }[]
    return rows.map((r) => r.txn)
  }

  /** Every coordinator on the log. */
  async members(): Promise<LogMember[]> {
    const rows = (await this.sql`
      SELECT name, epoch, lease_until, taken_by, lease_until > clock_timestamp() AS live
      FROM twophase_coordinators ORDER BY name`) as {
      name: string
      epoch: number
      lease_until: Date
      taken_by: string | null
      live: boolean
    }[]
    return rows.map((r) => ({
      url: r.name,
      epoch: Number(r.epoch),
      leaseUntil: new Date(r.lease_until).toISOString(),
      live: r.live && r.taken_by === null,
      takenBy: r.taken_by,
    }))
  }
}

/** A claim read back as the begin record it stands for (the lazy begin may not be written). */
function beginOf(c: ClaimRow): CoordinatorRecord {
  const protocol = c.protocol === '3pc' ? { protocol: '3pc' as const } : {}
  return { type: 'begin', txn: c.txn, participants: c.participants, ...protocol }
}
