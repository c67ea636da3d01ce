// The coordinators' shared log in the simulator: what PostgreSQL holds for PgLog and PgLease
// (lib/store/pg-log.ts, lib/store/pg-lease.ts), in memory, on the virtual clock. The database
// (SimDatabase) survives every coordinator's crash; each statement runs in it atomically, as
// one PostgreSQL statement or transaction does, after the way there, and its result travels
// back: the database may be out of reach for a while (a statement fails; one that ran may lose
// its answer on the way back, as a COMMIT whose connection dies) or slow. SimSharedLog is one
// coordinator's handle on it in one life, with PgLog's group commit.
import type { CoordinatorRecord } from '../../lib/core/index.ts'
import { GroupLog, type Item, type Written } from '../../lib/store/group-log.ts'
import { Fenced } from '../../lib/store/pg-lease.ts'
import { StoreUnavailable } from '../../lib/store/store.ts'
import type { LogMember } from '../../lib/store/store.ts'
import type { Random } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

/** The shared log's rules; a broken variant (testing/sim/broken.ts) turns one off. */
export type LeaseRules = {
  /** Every write checks the writer's lease in the same statement. */
  fencing: boolean
  /** Only a lease that ran out is taken over. */
  expiredOnly: boolean
  /** ... and only by one that held its own since then, or for a whole lease. */
  grace: boolean
}

export const LEASE_RULES: LeaseRules = { fencing: true, expiredOnly: true, grace: true }

export type Member = {
  name: string
  epoch: number
  leaseUntil: number
  heldSince: number
  takenBy: string | null
}
type Claim = { txn: string; owner: string; participants: readonly string[]; protocol?: '3pc' }
export type Row = { txn: string; writer: string; epoch: number; record: CoordinatorRecord }

/** What the checks hear of the database (testing/sim/shared-invariants.ts). */
export type DatabaseObserver = {
  /** A lease held (registered or renewed) until `until`. */
  leased(name: string, epoch: number, until: number): void
  /** `taker` takes over `victim`, as both rows stand before it. */
  takenOver(victim: Member, taker: Member): void
  /** A row of the coordinators' log is written. */
  written(row: Row): void
}

export class SimDatabase {
  readonly members = new Map<string, Member>()
  readonly claims = new Map<string, Claim & { done: boolean }>()
  readonly rows: Row[] = []
  /** Until when the database is out of reach (of everyone), or slow. */
  downUntil = 0
  slowUntil = 0
  /** Coordinator id → until when it cannot reach the database (its own network). */
  readonly cut = new Map<string, number>()
  readonly counts = { takeovers: 0, dbOutages: 0, dbFailed: 0 }

  constructor(
    readonly sched: Scheduler,
    readonly rng: Random,
    readonly leaseMs: number,
    readonly rules: LeaseRules,
    readonly observer: DatabaseObserver,
  ) {}

  get now(): number {
    return this.sched.now
  }

  #reachable(from: string): boolean {
    return this.now >= this.downUntil && (this.cut.get(from) ?? 0) <= this.now
  }

  #latency(): number {
    return this.now < this.slowUntil ? this.rng.int(10, 80) : this.rng.int(1, 3)
  }

  /** Runs `statement` in the database for coordinator `from`; `deliver` hands the outcome to
   * the process that asked (never to a later life; to a stalled one once it runs again). */
  call<T>(from: string, deliver: (fn: () => void) => void, statement: () => T): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>()
    const lost = (why: string) => {
      this.counts.dbFailed += 1
      deliver(() => reject(new StoreUnavailable(`the shared log: ${why} (simulated)`)))
    }
    this.sched.at(this.now + this.#latency(), () => {
      if (!this.#reachable(from)) return this.sched.at(this.now + 20, () => lost('unreachable'))
      let outcome: { ok: true; value: T } | { ok: false; error: unknown }
      try {
        outcome = { ok: true, value: statement() }
      } catch (error) {
        outcome = { ok: false, error }
      }
      this.sched.at(this.now + this.#latency(), () => {
        // It ran, but its answer is lost with the connection.
        if (!this.#reachable(from)) return lost('connection lost')
        deliver(() => (outcome.ok ? resolve(outcome.value) : reject(outcome.error)))
      })
    })
    return promise
  }

  /** PgLease.register: a new epoch once the last lease ran out or was taken over; else null. */
  register(name: string): number | null {
    const m = this.members.get(name)
    if (m && m.takenBy === null && m.leaseUntil >= this.now) return null
    const epoch = (m?.epoch ?? 0) + 1
    const until = this.now + this.leaseMs
    this.members.set(name, { name, epoch, leaseUntil: until, heldSince: this.now, takenBy: null })
    this.observer.leased(name, epoch, until)
    return epoch
  }

  #ours(name: string, epoch: number): Member | undefined {
    const m = this.members.get(name)
    return m && m.epoch === epoch && m.takenBy === null ? m : undefined
  }

  /** PgLease.renew: a lease that ran out meanwhile is held again from now on. */
  renew(name: string, epoch: number): void {
    const m = this.#ours(name, epoch)
    if (!m) throw new Fenced(`the lease of ${name} was taken over`)
    if (m.leaseUntil < this.now) m.heldSince = this.now
    m.leaseUntil = this.now + this.leaseMs
    this.observer.leased(name, epoch, m.leaseUntil)
  }

  release(name: string, epoch: number): void {
    const m = this.#ours(name, epoch)
    if (m) m.leaseUntil = this.now
  }

  /** PgLog's one statement: the lease checked and the group written, or nothing written. */
  write(name: string, epoch: number, items: readonly Item[]): Written {
    const m = this.#ours(name, epoch)
    if (this.rules.fencing) {
      if (!m) throw new Fenced(`the lease of ${name} was taken over: nothing written`)
      if (m.leaseUntil <= this.now) throw new Error(`the lease of ${name} ran out: nothing written`)
    }
    // As PostgreSQL's statement sees them: the claims from before it.
    const orphans = new Set<string>()
    for (const item of items) {
      const claim = item.kind === 'claim' ? this.claims.get(item.txn) : undefined
      if (claim && claim.owner === name && !claim.done) orphans.add(claim.txn)
    }
    const claimed = new Set<string>()
    for (const item of items) {
      if (item.kind === 'claim' && !this.claims.has(item.txn)) {
        const { txn, participants } = item
        const protocol = item.protocol ? { protocol: item.protocol } : {}
        this.claims.set(txn, { txn, owner: name, participants, ...protocol, done: false })
        claimed.add(item.txn)
      }
      if (item.kind === 'record') {
        const row = { txn: item.record.txn, writer: name, epoch, record: item.record }
        this.rows.push(row)
        this.observer.written(row)
      }
      const done = item.kind === 'done' || (item.kind === 'record' && item.record.type === 'done')
      const txn = item.kind === 'record' ? item.record.txn : item.txn
      const claim = this.claims.get(txn)
      if (done && claim) claim.done = true
    }
    return { claimed, orphans }
  }

  /** PgLease.takeOver's transaction: the unfinished transactions of every coordinator whose
   * lease ran out (while the taker held its own, or a whole lease ago) become the taker's. */
  takeOver(name: string, epoch: number): string[] {
    const me = this.#ours(name, epoch)
    if (!me || me.leaseUntil <= this.now) return []
    const moved: string[] = []
    for (const v of this.members.values()) {
      if (v.name === name || v.takenBy !== null) continue
      if (this.rules.expiredOnly && v.leaseUntil >= this.now) continue
      const since = Math.max(v.leaseUntil, this.now - this.leaseMs)
      if (this.rules.grace && me.heldSince > since) continue
      this.observer.takenOver({ ...v }, { ...me })
      v.takenBy = name
      this.counts.takeovers += 1
      for (const c of this.claims.values()) {
        if (c.owner === v.name && !c.done) {
          c.owner = name
          moved.push(c.txn)
        }
      }
    }
    return moved
  }

  /** PgLease.recordsOf: each transaction's claim as its begin, then its rows in log order. */
  recordsOf(txns: readonly string[]): CoordinatorRecord[] {
    const wanted = new Set(txns)
    const begins = [...this.claims.values()].filter((c) => wanted.has(c.txn)).map(beginOf)
    return [...begins, ...this.rows.filter((r) => wanted.has(r.txn)).map((r) => r.record)]
  }

  owned(name: string): string[] {
    return [...this.claims.values()].filter((c) => c.owner === name && !c.done).map((c) => c.txn)
  }

  listMembers(): LogMember[] {
    const sorted = [...this.members.values()].sort((a, b) => (a.name < b.name ? -1 : 1))
    return sorted.map((m) => ({
      url: m.name,
      epoch: m.epoch,
      leaseUntil: new Date(m.leaseUntil).toISOString(),
      live: m.leaseUntil > this.now && m.takenBy === null,
      takenBy: m.takenBy,
    }))
  }
}

function beginOf(c: Claim): CoordinatorRecord {
  const protocol = c.protocol === '3pc' ? { protocol: '3pc' as const } : {}
  return { type: 'begin', txn: c.txn, participants: c.participants, ...protocol }
}

/** How a coordinator's life reaches the database: its id, the delivery of answers to it, and
 * its timers. */
export type DatabasePort = {
  from: string
  deliver: (fn: () => void) => void
  sleep: (ms: number) => Promise<void>
}

export class SimSharedLog extends GroupLog {
  epoch = 0

  constructor(
    readonly db: SimDatabase,
    readonly name: string,
    readonly port: DatabasePort,
  ) {
    super(20, (ms, fn) => void port.sleep(ms).then(fn))
  }

  #call<T>(statement: () => T): Promise<T> {
    return this.db.call(this.port.from, this.port.deliver, statement)
  }

  /** PgLog.open: a lease under `name` (waiting for an earlier one to run out), then the records
   * of what this coordinator owns. A database out of reach is waited for. */
  async open(): Promise<void> {
    for (;;) {
      const epoch = await this.#call(() => this.db.register(this.name)).catch(() => null)
      if (epoch !== null) {
        this.epoch = epoch
        break
      }
      await this.port.sleep(Math.max(50, this.db.leaseMs / 4))
    }
    for (;;) {
      try {
        const txns = await this.#call(() => this.db.owned(this.name))
        this.loaded = await this.#call(() => this.db.recordsOf(txns))
        return
      } catch {
        await this.port.sleep(50)
      }
    }
  }

  get leaseMs(): number {
    return this.db.leaseMs
  }

  async lookup(txn: string): Promise<CoordinatorRecord[]> {
    return this.#call(() => this.db.recordsOf([txn]))
  }

  async takeOver(): Promise<CoordinatorRecord[]> {
    const moved = await this.#call(() => this.db.takeOver(this.name, this.epoch))
    return moved.length === 0 ? [] : this.#call(() => this.db.recordsOf(moved))
  }

  members(): Promise<LogMember[]> {
    return this.#call(() => this.db.listMembers())
  }

  unfinished(): Promise<string[]> {
    return this.#call(() => this.db.owned(this.name))
  }

  protected renewLease(): Promise<void> {
    return this.#call(() => this.db.renew(this.name, this.epoch))
  }

  protected write(items: Item[]): Promise<Written> {
    return this.#call(() => this.db.write(this.name, this.epoch, items))
  }

  close(): void {}
}
