// The durable log: records in SQLite (WAL, synchronous=FULL), appended with group commit, and
// finished transactions folded out of it into one record each.
import { Database, type Statement } from 'bun:sqlite'
import { failpoint } from './failpoint.ts'

/** Folds are written together, this many at a time (or after FOLD_MS, or at close): one
 * transaction then dirties each page of the log and of the folded table once for them all,
 * where a few folds in every flush made each flush write three or four pages more. */
const FOLD_BATCH = 2000
/** Transaction ids are ASCII (see lib/core/txn-id.ts); one that is not is looked up. */
const ASCII = /^[\x00-\x7f]*$/
/** How long a fold waits, at most, to be written with the others. */
const FOLD_MS = 5000

type Pending<R> = {
  record: R
  effect: (() => void) | undefined
  resolve: () => void
  reject: (e: unknown) => void
}

/** Where a transaction's records live: its rows' seqs, and the seq its folded record takes. */
type Rows = { seqs: number[]; anchor: number | null }

export type DurableLogOptions<R> = {
  /** How long a lazy record may wait for a flush to share (0: the next turn's). */
  lazyMs?: number
  /** The record whose place (order) a folded transaction keeps: the coordinator's decision, so
   * decision.txt keeps its order; by default the transaction's first record. */
  anchor?: (record: R) => boolean
  /** How many folds are written together (FOLD_BATCH by default). */
  foldBatch?: number
  /** The outcome a record shows in a view of the whole history (the coordinator's decision, a
   * participant's committed or aborted), or null. A folded record's is kept in a column of its
   * own, so `outcomes` reads a long history without parsing a record of it. */
  outcome?: (record: R) => string | null
}

/**
 * An append-only log of JSON records. `append` resolves only once its record is on stable
 * storage. Records appended while the event loop is busy share one SQLite transaction (one
 * fsync): group commit, with each waiter released only after its own record is durable.
 * A lazy record starts no flush of its own: it rides the next one, or one `lazyMs` later (with
 * `lazyMs` 0, the next turn's, as a forced one does).
 *
 * Checkpoint: `fold(txn, record)` replaces a finished transaction's records by one record that
 * rebuilds its final state, kept in a table of its own that start-up does not read (`folded`
 * looks one up), so start-up and memory depend on the live transactions, not on the history.
 * A fold rides the next flush, atomically: a crash leaves the records or the folded one.
 */
export class DurableLog<R> {
  readonly #db: Database
  readonly #insert: Statement
  readonly #lookup: Statement
  readonly #keep: Statement
  readonly #drop: Statement
  /** Writes a group in one SQLite transaction: each record, then its effect, then the folds. */
  readonly #write: (group: Pending<R>[], folds: Map<string, R>) => void
  readonly #anchor: (record: R) => boolean
  readonly #outcome: (record: R) => string | null
  #pending: Pending<R>[] = []
  /** Finished transactions to fold with the next flush, and the record each folds into. */
  #folds = new Map<string, R>()
  /** The live rows of each transaction (records with a string `txn`). */
  #rows = new Map<string, Rows>()
  /** The greatest id folded, or null for none: an id past it was never folded, and is not
   * looked up. Only an ASCII id skips the lookup: against one, JavaScript's order of strings
   * (UTF-16) and SQLite's (UTF-8 bytes) agree, whatever the other holds. */
  #lastFolded: string | null
  #scheduled = false
  #lazyTimer: Timer | null = null
  #foldTimer: Timer | null = null
  /** The next flush writes the pending folds. */
  #foldNow = false
  /** How many forced writes (SQLite commits) this log has made: one per group. */
  flushes = 0
  readonly lazyMs: number
  readonly #foldBatch: number

  constructor(
    readonly path: string,
    options: DurableLogOptions<R> | number = {},
  ) {
    if (typeof options === 'number') options = { lazyMs: options }
    this.lazyMs = options.lazyMs ?? 20
    this.#foldBatch = options.foldBatch ?? FOLD_BATCH
    this.#anchor = options.anchor ?? (() => false)
    this.#outcome = options.outcome ?? (() => null)
    this.#db = new Database(path, { create: true, strict: true })
    // One connection, ours: no other process reads or writes a node's log while it runs (the
    // directory lock says so too), so SQLite takes its file locks once instead of for every
    // statement, and keeps the WAL index in memory. Without it, the lookup of a folded id that
    // each new transaction makes cost a quarter more CPU per transaction.
    this.#db.run('PRAGMA locking_mode = EXCLUSIVE')
    this.#db.run('PRAGMA journal_mode = WAL')
    // FULL: a commit is fsynced before it returns, so a yes vote survives power loss.
    this.#db.run('PRAGMA synchronous = FULL')
    // 32 MB of page cache (the default is 2): a long history's lookups stay in memory.
    this.#db.run('PRAGMA cache_size = -32768')
    this.#db.run('CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)')
    // Keyed by the id alone (no rowid): a lookup is one B-tree search, however long the history.
    this.#db.run(
      'CREATE TABLE IF NOT EXISTS folded (txn TEXT PRIMARY KEY, seq INTEGER NOT NULL, ' +
        'record TEXT NOT NULL, outcome TEXT) WITHOUT ROWID',
    )
    addOutcomeColumn(this.#db)
    // Compiled once, here: not on the first append, which a client is waiting for.
    this.#insert = this.#db.query('INSERT INTO log (record) VALUES (?)')
    this.#lookup = this.#db.query('SELECT record FROM folded WHERE txn = ?')
    // The table's last key: one step down its B-tree.
    const last = this.#db.query('SELECT max(txn) AS txn FROM folded').get() as {
      txn: string | null
    }
    this.#lastFolded = last.txn
    this.#keep = this.#db.query(
      'INSERT OR REPLACE INTO folded (txn, seq, record, outcome) VALUES (?, ?, ?, ?)',
    )
    this.#drop = this.#db.query('DELETE FROM log WHERE seq = ?')
    this.#write = this.#db.transaction((group: Pending<R>[], folds: Map<string, R>) =>
      this.#writeGroup(group, folds),
    )
  }

  /** Every live record, oldest first (folded transactions are not among them). */
  records(): R[] {
    const rows = this.#db.query('SELECT seq, record FROM log ORDER BY seq').all() as Row[]
    const rowsOf = new Map<string, Rows>()
    const records = rows.map((row) => {
      const record = JSON.parse(row.record) as R
      this.#track(rowsOf, record, row.seq)
      return record
    })
    this.#rows = rowsOf
    return records
  }

  /** Every record, folded or live, in the order of the log (for views of the whole history). */
  *history(): Generator<R> {
    const all = this.#db.query(
      'SELECT seq, record FROM log UNION ALL SELECT seq, record FROM folded ORDER BY seq',
    )
    for (const row of all.iterate() as Iterable<Row>) yield JSON.parse(row.record) as R
  }

  /** Calls `each` once for every transaction with an outcome, folded or live: what the views
   * show, read in a fraction of what `history` takes (a folded record's outcome comes from its
   * column; only a live one, or one folded before that column was there, is parsed). In the
   * order of the log, or with `inLogOrder` false the folded ones first, by id (no sort). Once:
   * a folded id is the folded table's key and has no live records left (folding removed them
   * in the same commit, and nothing is appended for a folded transaction). */
  outcomes(each: (txn: string, outcome: string) => void, inLogOrder = true): void {
    const folded =
      'SELECT seq, txn, outcome, iif(outcome IS NULL, record, NULL) AS record FROM folded'
    const live = 'SELECT seq, NULL AS txn, NULL AS outcome, record FROM log'
    const queries = inLogOrder ? [`${folded} UNION ALL ${live} ORDER BY seq`] : [folded, live]
    const seen = new Set<string>() // live ids: a transaction's outcome is shown once
    for (const query of queries) {
      for (const row of this.#db.query(query).iterate() as Iterable<OutcomeRow>) {
        if (row.outcome !== null) each(row.txn!, row.outcome)
        else this.#parsedOutcome(JSON.parse(row.record!) as R, seen, each)
      }
    }
  }

  #parsedOutcome(record: R, seen: Set<string>, each: (txn: string, outcome: string) => void) {
    const outcome = this.#outcome(record)
    const txn = (record as { txn?: unknown }).txn
    if (outcome === null || typeof txn !== 'string' || seen.has(txn)) return
    seen.add(txn)
    each(txn, outcome)
  }

  /** The folded record of `txn`, if it was folded. A new transaction whose id sorts after
   * every folded one (a time-ordered id, as the service and the client assign) reads nothing. */
  folded(txn: string): R | undefined {
    const pending = this.#folds.get(txn)
    if (pending !== undefined) return pending
    if (this.#lastFolded === null) return undefined
    if (txn > this.#lastFolded && ASCII.test(txn)) return undefined
    const row = this.#lookup.get(txn) as { record: string } | null
    return row === null ? undefined : (JSON.parse(row.record) as R)
  }

  /** This log checkpoints: `fold`, `folded` and `history` (see ./store.ts). */
  get checkpoints(): this {
    return this
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
    if (!lazy) this.#flushSoon()
    if (lazy && !this.#scheduled) this.#lazyTimer ??= setTimeout(() => this.#flush(), this.lazyMs)
    return promise
  }

  /** Folds finished `txn` into `record` (rebuilding its final state) with the next flush. Nobody
   * waits for it: until it is written, the records it replaces are there. */
  fold(txn: string, record: R): void {
    this.#folds.set(txn, record)
    if (this.#folds.size >= this.#foldBatch) return this.#flushSoon(true)
    this.#foldTimer ??= setTimeout(() => {
      this.#foldTimer = null
      this.#foldNow = true
      this.#flush()
    }, FOLD_MS)
    this.#foldTimer.unref?.()
  }

  #flushSoon(folding = false): void {
    if (folding) this.#foldNow = true
    if (this.#scheduled) return
    this.#scheduled = true
    // setImmediate, not a microtask: requests already waiting on sockets get to add theirs.
    setImmediate(() => this.#flush())
  }

  #flush(): void {
    if (this.#lazyTimer !== null) clearTimeout(this.#lazyTimer)
    this.#lazyTimer = null
    this.#scheduled = false
    // The folds go only when their batch is full, their time is up, or the log closes.
    const folding = this.#foldNow && this.#folds.size > 0
    if (this.#pending.length === 0 && !folding) return
    failpoint('log-before-flush', String(this.flushes + 1))
    const group = this.#pending
    const folds = folding ? this.#folds : new Map<string, R>()
    this.#pending = []
    if (folding) this.#folds = new Map()
    this.#foldNow = false
    if (folding && this.#foldTimer !== null) clearTimeout(this.#foldTimer)
    if (folding) this.#foldTimer = null
    try {
      this.#write(group, folds)
      this.flushes += 1
    } catch (error) {
      // Rolled back: the folds wait for the next flush, the records' waiters hear of it, and
      // which rows are live is read again from what the database kept.
      for (const [txn, record] of this.#folds) folds.set(txn, record)
      this.#folds = folds
      this.#foldNow = folds.size > 0
      for (const waiter of group) waiter.reject(error)
      this.#reloadRows()
      return
    }
    for (const waiter of group) waiter.resolve()
  }

  /** Inside the SQLite transaction (the rows map is read again if it rolls back). */
  #writeGroup(group: Pending<R>[], folds: Map<string, R>): void {
    const rowsOf = this.#rows
    for (const { record, effect } of group) {
      const { lastInsertRowid } = this.#insert.run(JSON.stringify(record))
      this.#track(rowsOf, record, Number(lastInsertRowid))
      effect?.()
    }
    if (folds.size === 0) return
    // A compiled statement run for each row: in SQLite's own loop over JSON arrays
    // (json_each, json_extract) the same folds took half as long again.
    for (const [txn, record] of folds) {
      const rows = rowsOf.get(txn)
      if (rows === undefined) continue // folded already
      const seq = rows.anchor ?? rows.seqs[0]!
      this.#keep.run(txn, seq, JSON.stringify(record), this.#outcome(record))
      // Before the commit: a fold rolled back leaves it too far on, which costs only a lookup.
      if (this.#lastFolded === null || txn > this.#lastFolded) this.#lastFolded = txn
      for (const dropped of rows.seqs) this.#drop.run(dropped)
      rowsOf.delete(txn)
    }
  }

  #reloadRows(): void {
    try {
      this.records()
    } catch (error) {
      console.error(`${this.path}: reading the log again: ${error}`)
    }
  }

  #track(rowsOf: Map<string, Rows>, record: R, seq: number): void {
    const txn = (record as { txn?: unknown }).txn
    if (typeof txn !== 'string') return
    let rows = rowsOf.get(txn)
    if (rows === undefined) rowsOf.set(txn, (rows = { seqs: [], anchor: null }))
    rows.seqs.push(seq)
    if (rows.anchor === null && this.#anchor(record)) rows.anchor = seq
  }

  /** Writes what is still pending (lazy records, folds), then closes: a clean stop loses
   * nothing. */
  close(): void {
    this.#foldNow = true
    this.#flush()
    this.#db.close()
  }
}

type Row = { seq: number; record: string }
type OutcomeRow = { txn: string | null; outcome: string | null; record: string | null }

/** A log from before folded records kept their outcome gets the column; their rows stay null
 * there, and `outcomes` parses those. */
function addOutcomeColumn(db: Database): void {
  const columns = db.query('SELECT name FROM pragma_table_info(?)').all('folded') as {
    name: string
  }[]
  if (!columns.some((c) => c.name === 'outcome')) {
    db.run('ALTER TABLE folded ADD COLUMN outcome TEXT')
  }
}
