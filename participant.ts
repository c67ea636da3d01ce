// A participant node: guards a resource, votes on prepare, and records the outcome.
//   bun participant.ts [--port 9000] [--host 0.0.0.0] [--dir .] [--in-doubt-after MS]
//   bun participant.ts resolve TXN commit|abort [--dir .]   (operator's heuristic outcome)
import { parseArgs } from 'node:util'
import { join, resolve } from 'node:path'
import { createApp } from './lib/http/participant-app.ts'
import {
  ParticipantNode,
  UsageError,
  fail,
  isTxnId,
  parseMs,
  parsePort,
  readVotesFile,
  resolveHeuristically,
  writeAddressFile,
  SqliteStore,
  type ParticipantStore,
} from './lib.ts'

// The app factory stays importable from here, as DESIGN.md promises: tests and embedders build
// the same Hono app around a ParticipantNode and drive it with app.request().
export { createApp }

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      dir: { type: 'string' },
      'in-doubt-after': { type: 'string' },
      store: { type: 'string' },
    },
    strict: true,
  })
  const dir = resolve(values.dir ?? '.')
  const port = parsePort(values.port ?? Bun.env.PORT ?? '9000', 'port')
  const hostname = values.host ?? Bun.env.HOST ?? '0.0.0.0'
  const inDoubtAfterMs = parseMs(values['in-doubt-after'] ?? '5000', 'in-doubt-after')
  const store = await openStore(values.store ?? 'sqlite', dir)
  const node = new ParticipantNode(dir, readVotesFile(dir), { inDoubtAfterMs, store })
  await node.start()
  const app = createApp(node)
  // One request to ourselves before listening: Hono builds its router on the first request,
  // a couple of milliseconds that would otherwise fall on the first prepare.
  await app.request('/healthz')
  const server = Bun.serve({ port, hostname, fetch: app.fetch })
  const url = `http://${hostname}:${server.port}`
  writeAddressFile(dir, url)
  console.log(`participant listening on ${url} (dir ${dir})`)
  const stop = () => void server.stop().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
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
  const { values, positionals } = parseArgs({
    args: argv,
    options: { dir: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const [txn, decision] = positionals
  if (positionals.length !== 2 || (decision !== 'commit' && decision !== 'abort')) {
    throw new UsageError('usage: participant.ts resolve TXN commit|abort [--dir DIR]')
  }
  if (!isTxnId(txn)) throw new UsageError(`invalid transaction id ${JSON.stringify(txn)}`)
  console.log(await resolveHeuristically(resolve(values.dir ?? '.'), txn, decision))
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
