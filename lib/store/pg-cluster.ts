// A private, throwaway PostgreSQL cluster (tests, `participant.ts --store postgres`): its own data
// dir, log, socket dir and loopback port, so it never touches a system server. Runs the server
// binaries as user `postgres` when we are root, because initdb and postgres refuse to run as root.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs'
import { readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

export type PgCluster = {
  url: string // postgres://postgres@127.0.0.1:PORT/postgres
  port: number
  dataDir: string
  /** Stops the server cleanly (pg_ctl stop -m fast). */
  stop(): Promise<void>
  /** SIGKILLs the postmaster and all its backends (a crash), and waits until they are gone. */
  kill(): Promise<void>
  /** Starts the server again on the same port and data dir; resolves when it accepts
   * connections (crash recovery included). */
  start(): Promise<void>
}

const INSTALL_HINT =
  'install the PostgreSQL server (Debian: apt-get install postgresql) or set PG_BINDIR'

/** Finds the PostgreSQL server binaries: $PG_BINDIR, `pg_config --bindir`, or the newest
 * /usr/lib/postgresql/<N>/bin. Throws naming what to install (Debian: `postgresql`) if none. */
export function findPgBin(): string {
  const candidates = [process.env.PG_BINDIR, pgConfigBindir(), ...debianBindirs()]
  // pg_config also ships with libpq-dev alone, so a bindir counts only if initdb is really there.
  const found = candidates.find((dir) => dir && existsSync(join(dir, 'initdb')))
  if (!found)
    throw new Error(`PostgreSQL server binaries (initdb, pg_ctl) not found: ${INSTALL_HINT}`)
  return found
}

function pgConfigBindir(): string | undefined {
  const result = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' })
  return result.status === 0 ? result.stdout.trim() : undefined
}

function debianBindirs(): string[] {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return []
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v))
  return versions.sort((a, b) => Number(b) - Number(a)).map((v) => join(root, v, 'bin'))
}

const isRoot = process.getuid?.() === 0

/** Runs a server binary (as `postgres` when root) with `cwd` it can enter; throws with its
 * output. */
async function run(cmd: string[], cwd: string): Promise<void> {
  const argv = isRoot ? ['runuser', '-u', 'postgres', '--', ...cmd] : cmd
  const proc = Bun.spawn(argv, { cwd, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  if (code !== 0) throw new Error(`${cmd.join(' ')} exited with ${code}:\n${out}${err}`)
}

/** Gives `paths` to the postgres user (and its group), so the server, not root, can write them. */
function giveToPostgres(paths: string[]): void {
  const result = spawnSync('chown', ['postgres:', ...paths], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`chown postgres: ${result.stderr}${INSTALL_HINT}`)
}

async function freePort(): Promise<number> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = server.port!
  await server.stop(true)
  return port
}

/** State and parent PID from /proc/PID/stat, or null once the process is reaped. */
function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The fields follow the name in parentheses, which may itself hold spaces or parentheses.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: state!, ppid: Number(ppid) }
  } catch {
    return null
  }
}

/** A zombie counts as gone: it holds no memory or ports, yet `kill(pid, 0)` still succeeds. */
function isAlive(pid: number): boolean {
  const stat = procStat(pid)
  return stat !== null && stat.state !== 'Z'
}

function childrenOf(pid: number): number[] {
  const pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name))
  return pids.map(Number).filter((child) => procStat(child)?.ppid === pid)
}

/** The PID on the first line of postmaster.pid or a socket's .lock file. */
function lockPid(path: string): number | null {
  try {
    return Number(readFileSync(path, 'utf8').split('\n')[0]) || null
  } catch {
    return null
  }
}

/** The port of a live server on this data dir (line 4 of postmaster.pid), or null. */
function runningPort(pidFile: string): number | null {
  const pid = lockPid(pidFile)
  if (pid === null || !isAlive(pid)) return null
  const port = Number(readFileSync(pidFile, 'utf8').split('\n')[3])
  return Number.isInteger(port) && port > 0 ? port : null
}

async function waitGone(pids: number[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (pids.some(isAlive)) {
    if (Date.now() > deadline) throw new Error(`postgres processes ${pids} did not exit`)
    await Bun.sleep(20)
  }
}

/**
 * Creates (if `dir/pgdata` is missing: initdb -U postgres --auth=trust -E UTF8 --no-locale) and
 * starts a cluster whose data lives in `dir/pgdata`, listening only on 127.0.0.1 at
 * `options.port` (default: a free port), unix sockets in a private dir,
 * max_prepared_transactions=64 (or options.maxPreparedTransactions), fsync on. Reuses an
 * existing `dir/pgdata`; with `adopt`, also a server already running on it (a participant that
 * was killed left its private server behind).
 */
export async function startPgCluster(
  dir: string,
  options: { port?: number; maxPreparedTransactions?: number; adopt?: boolean } = {},
): Promise<PgCluster> {
  const bin = findPgBin()
  const dataDir = join(dir, 'pgdata')
  const sockDir = join(dir, 'pgsock')
  const pidFile = join(dataDir, 'postmaster.pid')
  const log = `${dataDir}.log`
  const running = options.adopt ? runningPort(pidFile) : null
  const port = running ?? options.port ?? (await freePort())
  mkdirSync(sockDir, { recursive: true, mode: 0o700 })
  closeSync(openSync(log, 'a'))
  const fresh = !existsSync(join(dataDir, 'PG_VERSION'))
  if (fresh) mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  if (isRoot) {
    // mkdtemp makes 0700 dirs; postgres must reach its files through `dir` (it writes none there).
    chmodSync(dir, statSync(dir).mode | 0o755)
    giveToPostgres([dataDir, sockDir, log])
  }
  if (fresh) {
    const initdb = [join(bin, 'initdb'), '-D', dataDir, '-U', 'postgres', '--auth=trust']
    await run([...initdb, '-E', 'UTF8', '--no-locale'], dir)
  }
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'` // pg_ctl passes -o to a shell
  const settings = [
    `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${quote(sockDir)}`,
    `-c max_prepared_transactions=${options.maxPreparedTransactions ?? 64} -c fsync=on`,
  ].join(' ')

  async function start(): Promise<void> {
    // A crash leaves postmaster.pid and the socket's .lock behind; while their PID lingers as a
    // zombie postgres takes them for a live server ("lock file already exists"), so drop them.
    for (const lock of [pidFile, join(sockDir, `.s.PGSQL.${port}.lock`)]) {
      const pid = lockPid(lock)
      if (pid !== null && isAlive(pid)) throw new Error(`postgres already running: ${lock}`)
      if (pid !== null) unlinkSync(lock)
    }
    // -w waits until postmaster.pid says "ready", which comes only after crash recovery.
    const pgCtl = [join(bin, 'pg_ctl'), '-D', dataDir, '-l', log, '-w', '-t', '120']
    await run([...pgCtl, '-o', settings, 'start'], dir)
  }

  async function stop(): Promise<void> {
    const pid = lockPid(pidFile)
    if (pid === null || !isAlive(pid)) return // never started, already stopped, or killed
    await run([join(bin, 'pg_ctl'), '-D', dataDir, '-m', 'fast', '-w', 'stop'], dir)
  }

  async function kill(): Promise<void> {
    const pid = lockPid(pidFile)
    if (pid === null || !isAlive(pid)) return
    // Stopped first, the postmaster cannot fork a backend we would miss; backends are their own
    // session leaders, so there is no process group to kill instead.
    process.kill(pid, 'SIGSTOP')
    // Children before the postmaster: until it dies nobody can reap them, so no kill hits ESRCH.
    const pids = [...childrenOf(pid), pid]
    for (const p of pids) process.kill(p, 'SIGKILL')
    // Old backends still attached to shared memory would make the restart refuse to start.
    await waitGone(pids)
  }

  if (running === null) await start()
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, dataDir, stop, kill, start }
}
