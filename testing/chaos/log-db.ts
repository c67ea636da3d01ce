// The database of a shared log in a chaos run: the URL given, or a throwaway PostgreSQL started
// in the run's directory, which the faults may SIGKILL and start again (a crash of the server
// the coordinators share). The checks read the log's tables through it.
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { SQL } from 'bun'
import { startPgCluster, type PgCluster } from '../../lib/store/pg-cluster.ts'

export class LogDb {
  /** Being killed and started again. */
  busy = false
  /** The database's clock when the run began: the log's rows of this run are from then on. */
  since = new Date(0)
  #up: Promise<void> = Promise.resolve()
  #sql: SQL | null = null

  private constructor(
    readonly url: string,
    /** The throwaway server, which the faults may kill; null for a URL given. */
    readonly server: PgCluster | null,
  ) {}

  /** The database at `url`, or a throwaway cluster in `root/postgres` when none is given. */
  static async open(root: string, url: string | undefined): Promise<LogDb> {
    let server: PgCluster | null = null
    if (url === undefined) {
      // As root the server runs as its own user, which must be able to reach its folder.
      chmodSync(root, statSync(root).mode | 0o755)
      const dir = join(root, 'postgres')
      mkdirSync(dir)
      server = await startPgCluster(dir)
    }
    const db = new LogDb(url ?? server!.url, server)
    const [row] = await db.query('SELECT clock_timestamp() AS now')
    db.since = new Date(row.now)
    return db
  }

  /** Where the report says the log is: the URL without its password, or `throwaway`. */
  get label(): string {
    if (this.server) return 'throwaway'
    const url = new URL(this.url)
    if (url.password) url.password = '***'
    return url.toString()
  }

  /** Resolves once the server accepts connections (at once unless it is being restarted). */
  whenUp(): Promise<void> {
    return this.#up
  }

  /** SIGKILLs the server and all its backends, and starts it again `downMs` later. */
  async crash(downMs: number): Promise<void> {
    const server = this.server!
    this.busy = true
    const { promise, resolve } = Promise.withResolvers<void>()
    this.#up = promise
    try {
      this.#closeSql()
      await server.kill()
      await Bun.sleep(downMs)
      await server.start()
    } finally {
      resolve()
      this.busy = false
    }
  }

  /** One query with positional parameters ($1, …), on a connection of the checks' own. */
  async query(text: string, params: unknown[] = []): Promise<any[]> {
    this.#sql ??= new SQL({ url: this.url, max: 2 })
    return [...(await this.#sql.unsafe(text, params))]
  }

  #closeSql(): void {
    void this.#sql?.close().catch(() => {})
    this.#sql = null
  }

  /** The last resort when the run's process exits: an immediate shutdown of the throwaway
   * server (SIGQUIT to the postmaster, which ends its backends), without waiting. */
  stopNow(): void {
    if (!this.server) return
    try {
      const pid = Number(
        readFileSync(join(this.server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0],
      )
      if (pid > 0) process.kill(pid, 'SIGQUIT')
    } catch {} // not running
  }

  /** Closes the connections and stops the throwaway server. */
  async close(): Promise<void> {
    await this.#sql?.close().catch(() => {})
    this.#sql = null
    await this.server?.stop()
  }
}
