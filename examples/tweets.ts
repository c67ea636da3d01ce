// The tweet store: a web front and a JSON API over a coordinator service and two workers that
// each keep a copy of every tweet, written through two-phase commit.
//   bun examples/tweets.ts [--port 3000] [--host 127.0.0.1] [--coordinator URL] [--timeout MS]
//                          [--secret-file F] [--tls-ca F] [--tls-cert F --tls-key F]
// Without --coordinator it starts its own cluster (two participants and `coordinator.ts serve`
// as real processes on free loopback ports, in a temp directory; with the secret, if one is
// given) and stops it on SIGINT or SIGTERM; with --coordinator the workers are that service's
// participants. With a cluster secret, every request it makes to a node proves it.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { UsageError, fail, parseMs, parsePort } from '../lib/cli/args.ts'
import { flagLines, parseCommand, type Command } from '../lib/cli/flags.ts'
import { coordinatorUrl } from '../lib/cli/http.ts'
import { httpOptionsOf, readSecurity, type Security } from '../lib/cli/security.ts'
import { requestHeaders, type HttpOptions } from '../lib/node/ports.ts'
import { spawnCoordinatorService, spawnParticipant, type Node } from '../testing/nodes.ts'
import { createTweetsApp } from './tweets/app.ts'
import { TweetStore } from './tweets/store.ts'

const FLAGS = {
  port: {
    value: 'PORT',
    default: '3000',
    help: 'where the tweet store listens (0: any free port)',
  },
  host: { value: 'HOST', default: '127.0.0.1', help: 'the address it binds' },
  coordinator: {
    value: 'URL',
    default: 'none: start two workers and a coordinator service',
    help: 'a running coordinator service whose participants are the workers',
  },
  timeout: {
    value: 'MS',
    default: '3000',
    help: "the started coordinator's prepare timeout: how long a write waits for a worker down",
  },
  'secret-file': {
    value: 'FILE',
    default: '$TWOPHASE_SECRET_FILE, else none',
    help: "the cluster's secret, which its nodes require (the started cluster gets it too)",
  },
  'tls-ca': { value: 'FILE', help: "the CA of a cluster's certificates (https)" },
  'tls-cert': { value: 'FILE', help: 'with --tls-key: its own certificate, for mutual TLS' },
  'tls-key': { value: 'FILE', help: 'the key of --tls-cert' },
} as const

const USAGE =
  'examples/tweets.ts [--port PORT] [--host HOST] [--coordinator URL] [--timeout MS] ' +
  '[--secret-file FILE] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]'

const TWEETS: Command<typeof FLAGS> = {
  name: 'examples/tweets.ts',
  usage: USAGE,
  flags: FLAGS,
  help: () => [`usage: ${USAGE}`, '', 'flags:', ...flagLines(FLAGS)].join('\n'),
}

type Cluster = { coordinator: string; workers: string[]; stop: () => Promise<void> }

/** Two workers and a coordinator service, in a fresh temp directory, with `security`'s secret
 * (TLS is for a cluster of one's own: see --coordinator). */
async function startCluster(timeoutMs: number, security: Security): Promise<Cluster> {
  if (security.tls !== null) throw new UsageError('the --tls-* flags go with --coordinator')
  const secret = security.secretFile === null ? [] : ['--secret-file', resolve(security.secretFile)]
  const root = mkdtempSync(join(tmpdir(), 'twophase-tweets-'))
  const nodes: Node[] = []
  const stop = async () => {
    for (const n of nodes) n.proc.kill('SIGTERM')
    await Promise.all(nodes.map((n) => n.proc.exited))
    rmSync(root, { recursive: true, force: true })
  }
  try {
    for (const name of ['worker0', 'worker1']) {
      mkdirSync(join(root, name))
      nodes.push(await spawnParticipant(join(root, name), { args: secret }))
    }
    const workers = nodes.map((n) => n.url)
    mkdirSync(join(root, 'coordinator'))
    const args = ['--timeout', String(timeoutMs), ...secret]
    const service = await spawnCoordinatorService(join(root, 'coordinator'), {
      participants: workers,
      args,
    })
    nodes.push(service)
    return { coordinator: service.url, workers, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** A running service's participants, from its /status. */
async function joinCluster(coordinator: string, http: HttpOptions): Promise<Cluster> {
  const url = `${coordinator}/status`
  const tls = http.tls ? { tls: http.tls } : {}
  let response: Response
  try {
    response = await fetch(url, { headers: requestHeaders('GET', url, '', http.secret), ...tls })
  } catch (error) {
    throw new UsageError(`--coordinator ${coordinator}: no answer from its /status (${error})`)
  }
  const status = (await response.json().catch(() => ({}))) as {
    participants?: { url: string }[]
    error?: string
  }
  if (!response.ok) {
    const why = status.error ?? 'no JSON error'
    throw new UsageError(
      `--coordinator ${coordinator}: its /status answered ${response.status}: ${why}`,
    )
  }
  const workers = (status.participants ?? []).map((p) => p.url)
  if (workers.length === 0) throw new UsageError(`--coordinator ${coordinator}: no participants`)
  return { coordinator, workers, stop: async () => {} }
}

async function main(): Promise<void> {
  const { values } = parseCommand(Bun.argv.slice(2), TWEETS)
  const port = parsePort(values.port ?? '3000', 'port')
  const timeoutMs = parseMs(values.timeout ?? '3000', 'timeout')
  const security = readSecurity(values, process.env)
  const http = httpOptionsOf(security)
  const cluster = values.coordinator
    ? await joinCluster(coordinatorUrl(values.coordinator), http)
    : await startCluster(timeoutMs, security)
  const store = new TweetStore(cluster.coordinator, cluster.workers, 30_000, http)
  const server = Bun.serve({
    port,
    hostname: values.host ?? '127.0.0.1',
    fetch: createTweetsApp(store).fetch,
  })
  console.log(`workers ${cluster.workers.join(' ')}, coordinator ${cluster.coordinator}`)
  console.log(`tweets listening on http://${server.hostname}:${server.port}`)
  const stop = () =>
    void server
      .stop()
      .then(cluster.stop)
      .then(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

if (import.meta.main) {
  try {
    await main()
  } catch (error) {
    fail(error)
  }
}
