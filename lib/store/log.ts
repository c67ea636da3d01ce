// The durable log: records in SQLite (WAL, synchronous=FULL), appended with group commit.
import { Database, type Statement } from 'bun:sqlite'
import { failpoint } from './failpoint.ts'

type Pending<R> = {
  record: R
  effect: (() => void) | undefined
  resolve: () => void
  reject: (e: unknown) => void
}

/**
 * An append-only log of JSON records. `append` resolves only once its record is on stable
 * storage. Records appended while the event loop is busy share one SQLite transaction (one
 * fsync): group commit, with each waiter released only after its own record is durable.
 * A lazy record starts no flush of its own: it rides the next one, or one `lazyMs` later (with
 * `lazyMs` 0, the next turn's, as a forced one does).
 */
export class DurableLog<R> {
  readonly #db: Database
  readonly #insert: Statement
  /** Writes a group in one SQLite transaction: each record, then its effect. */
  readonly #write: (group: Pending<R>[]) => void
  #pending: Pending<R>[] = []
  #scheduled = false
  #lazyTimer: Timer | null = null
  /** How many forced writes (SQLite commits) this log has made: one per group. */
  flushes = 0

  constructor(
    readonly path: string,
    readonly lazyMs = 20,
  ) {
    this.#db = new Database(path, { create: true, strict: true })
    this.#db.run('PRAGMA journal_mode = WAL')
    // FULL: a commit is fsynced before it returns, so a yes vote survives power loss.
    this.#db.run('PRAGMA synchronous = FULL')
    this.#db.run('CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)')
    // Compiled once, here: not on the first append, which a client is waiting for.
    this.#insert = this.#db.query('INSERT INTO log (record) VALUES (?)')
    this.#write = this.#db.transaction((group: Pending<R>[]) => {
      for (const { record, effect } of group) {
        this.#insert.run(JSON.stringify(record))
        effect?.()
      }
    })
  }

  /** Every record, oldest first. */
  records(): R[] {
    const rows = this.#db.query('SELECT record FROM log ORDER BY seq').all() as { record: string }[]
    return rows.map((row) => JSON.parse(row.record) as R)
  }

  /** The database the log lives in, for data kept beside it (the participant's store). */
  get db(): Database {
    return this.#db
  }

  /** Appends `record`; `effect` (more writes to `db`) commits atomically with it. */
  append(record: R, effect?: () => void, lazy = false): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    this.#pending.push({ record, effect, resolve, reject })
    // With no lazy window, a lazy record is flushed in the next turn with whatever else was
    // appended meanwhile: it still shares a flush under load, and alone never waits on a timer.
    if (lazy && this.lazyMs === 0) lazy = false
    if (!lazy && !this.#scheduled) {
      this.#scheduled = true
      // setImmediate, not a microtask: requests already waiting on sockets get to add theirs.
      setImmediate(() => this.#flush())
    }
    if (lazy && !this.#scheduled) this.#lazyTimer ??= setTimeout(() => this.#flush(), this.lazyMs)
    return promise
  }

  #flush(): void {
    if (this.#lazyTimer !== null) clearTimeout(this.#lazyTimer)
    this.#lazyTimer = null
    this.#scheduled = false
    if (this.#pending.length === 0) return
    failpoint('log-before-flush', String(this.flushes + 1))
    const group = this.#pending
    this.#pending = []
    try {
      this.#write(group)
      this.flushes += 1
    } catch (error) {
      for (const waiter of group) waiter.reject(error)
      return
    }
    for (const waiter of group) waiter.resolve()
  }

  /** Writes what is still pending (lazy records), then closes: a clean stop loses nothing. */
  close(): void {
    this.#flush()
    this.#db.close()
  }
}
