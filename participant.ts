// A participant node: guards a resource, votes on prepare, and records the outcome.
//   bun participant.ts [--port 9000] [--host 0.0.0.0] [--dir .] [--in-doubt-after 5000]
//                      [--store sqlite]   (every flag and its default: --help, lib/cli/usage.ts)
//   bun participant.ts resolve TXN commit|abort [--dir .]   (operator's heuristic outcome)
import { join, resolve } from 'node:path'
import { createApp } from './lib/http/participant-app.ts'
import { channelSocket } from './lib/http/channel.ts'
import { lockDir } from './lib/store/dir-lock.ts'
import {
  ParticipantNode,
  UsageError,
  ensureDir,
  fail,
  isTxnId,
  httpPorts,
  historyOf,
  parseMs,
  parsePort,
  participantUrl,
  readVotesFile,
  resolveHeuristically,
  writeAddressFile,
  SqliteStore,
  type ParticipantStore,
  type VotesFile,
} from './lib.ts'
import { parseCommand, usageOf } from './lib/cli/flags.ts'
import { PARTICIPANT, RESOLVE } from './lib/cli/usage.ts'
import {
  credentialsOf,
  httpOptionsOf,
  readSecurity,
  schemeOf,
  serveTlsOf,
  servingSecurity,
  trustLine,
} from './lib/cli/security.ts'
import type { Trusted } from './lib/wire/participant.ts'

// The app factory stays importable from here, as DESIGN.md promises: tests and embedders build
// the same Hono app around a ParticipantNode and drive it with app.request().
export { createApp }

async function serve(argv: string[]): Promise<void> {
  const { values } = parseCommand(argv, PARTICIPANT)
  const dir = resolve(values.dir ?? '.')
  const port = parsePort(values.port ?? Bun.env.PORT ?? '9000', 'port')
  const hostname = values.host ?? Bun.env.HOST ?? '0.0.0.0'
  const inDoubtAfterMs = parseMs(values['in-doubt-after'] ?? '5000', 'in-doubt-after')
  const history = historyOf(values)
  const security = servingSecurity(readSecurity(values, Bun.env))
  const trusted = trustedOf(values, schemeOf(security))
  ensureDir(dir)
  const votes = readVotes(dir) // before the store: a bad votes.txt leaves nothing behind
  // Before any store is opened: a second participant here must not touch the first one's data
  // (nor adopt, and later stop, its private PostgreSQL). Held until the process ends.
  lockDir(dir, 'participant')
  const allowSql = values['allow-sql'] === true
  if (allowSql && (values.store ?? 'sqlite') === 'sqlite') {
    throw new UsageError('--allow-sql needs a PostgreSQL --store (postgres or a postgres:// URL)')
  }
  const store = await storeIn(values.store ?? 'sqlite', dir)
  const ports = httpPorts(httpOptionsOf(security))
  const options = { inDoubtAfterMs, store, ports, trusted, allowSql, ...history }
  const node = new ParticipantNode(dir, votes, options)
  await node.start()
  const app = createApp(node, credentialsOf(security))
  // One request to ourselves before listening: Hono builds its router on the first request,
  // a couple of milliseconds that would otherwise fall on the first prepare.
  await app.request('/healthz')
  const tls = serveTlsOf(security)
  const { websocket, closeAll } = channelSocket(app)
  const server = Bun.serve({ port, hostname, fetch: app.fetch, websocket, ...(tls ? { tls } : {}) })
  const url = `${schemeOf(security)}://${hostname}:${server.port}`
  writeAddressFile(dir, url)
  console.error(trustLine('participant', security))
  console.log(`participant listening on ${url} (dir ${dir})`)
  const stop = () =>
    void closeAll()
      .then(() => server.stop())
      .then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

/** `--coordinator` and `--peer`: whom it may ask in doubt (host:port takes this node's scheme). */
function trustedOf(
  values: { coordinator?: string[]; peer?: string[] },
  scheme: 'http' | 'https',
): Trusted {
  const url = (value: string) => participantUrl(value).replace(/^http:/, `${scheme}:`)
  return { coordinators: (values.coordinator ?? []).map(url), peers: (values.peer ?? []).map(url) }
}

/** votes.txt in `dir`: a bad line is a configuration error that names the file and line. */
function readVotes(dir: string): VotesFile | null {
  try {
    return readVotesFile(dir)
  } catch (error) {
    const path = join(dir, 'votes.txt')
    const message = error instanceof Error ? error.message : String(error)
    if (message.startsWith('votes.txt ')) {
      throw new UsageError(`${path}${message.slice('votes.txt'.length)}`)
    }
    const code = (error as { code?: unknown }).code
    throw new UsageError(`cannot read ${path}: ${typeof code === 'string' ? code : message}`)
  }
}

/** The store, where a failure to open SQLite's file names it. */
async function storeIn(spec: string, dir: string): Promise<ParticipantStore> {
  try {
    return await openStore(spec, dir)
  } catch (error) {
    if (spec !== 'sqlite' || error instanceof UsageError) throw error
    const message = error instanceof Error ? error.message : String(error)
    throw new Error(`cannot open the participant's log ${join(dir, 'participant.db')}: ${message}`)
  }
}

/** `--store sqlite` (default: SQLite in the node's directory), `--store postgres://…`, or
 * `--store postgres`: a private throwaway PostgreSQL cluster under DIR/postgres, for trying out. */
async function openStore(spec: string, dir: string): Promise<ParticipantStore> {
  if (spec === 'sqlite') return new SqliteStore(dir)
  const url = /^postgres(ql)?:\/\//.test(spec)
  if (!url && spec !== 'postgres') {
    throw new UsageError(
      `invalid --store ${JSON.stringify(spec)}: expected sqlite, postgres or a postgres:// URL`,
    )
  }
  // PostgreSQL support is loaded only when it is asked for. Like a server, the store waits
  // (saying so on stderr) while its database is down, and refuses one that cannot prepare.
  const { openPgStore } = await import('./lib/store/pg-store.ts')
  const say = (line: string) => console.error(line)
  if (url) return openPgStore(spec, say)
  const { startPgCluster } = await import('./lib/store/pg-cluster.ts')
  const cluster = await startPgCluster(join(dir, 'postgres'), { adopt: true })
  console.log(`private PostgreSQL at ${cluster.url} (data ${cluster.dataDir})`)
  process.on('exit', () => void cluster.stop())
  return openPgStore(cluster.url, say)
}

async function resolveCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, RESOLVE)
  const [txn, decision] = positionals
  if (positionals.length !== 2 || (decision !== 'commit' && decision !== 'abort')) {
    throw new UsageError(usageOf(RESOLVE))
  }
  if (!isTxnId(txn)) throw new UsageError(`invalid transaction id ${JSON.stringify(txn)}`)
  const ports = httpPorts(httpOptionsOf(readSecurity(values, Bun.env)))
  console.log(await resolveHeuristically(resolve(values.dir ?? '.'), txn, decision, ports))
}

if (import.meta.main) {
  try {
    const argv = Bun.argv.slice(2)
    if (argv[0] === 'resolve') await resolveCommand(argv.slice(1))
    else await serve(argv)
  } catch (error) {
    fail(error)
  }
}
