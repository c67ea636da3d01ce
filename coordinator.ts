// The coordinator: runs two-phase commit (or three-phase commit) over the participants.
//   bun coordinator.ts [TXN ...] [--participant host:port]... [--timeout MS] [--dir .]
//                      [--protocol 2pc|3pc]
//   bun coordinator.ts serve [--port 8000] [--participant host:port]... [--dir .]
//   bun coordinator.ts start|submit|show|status|get|help ...   (the client: see lib/cli/client.ts)
// Participants also come from PEER_PARTICIPANT<N>_HOST / _PORT. In batch mode transactions run
// one after another (t1 t2 when none are given); a re-run re-delivers what an earlier run decided.
// `serve` is a long-running coordinator with an HTTP API.
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import {
  UsageError,
  ensureDir,
  openCoordinator,
  parsePort,
  fail,
  httpPorts,
  isClientCommand,
  isTxnId,
  historyOf,
  parseMs,
  type History,
  namedParticipant,
  participantUrl,
  participantsFromEnv,
  runBatch,
  type BatchOptions,
} from './lib.ts'
import { parseCommand } from './lib/cli/flags.ts'
import { BATCH, SERVE } from './lib/cli/usage.ts'
import {
  credentialsOf,
  httpOptionsOf,
  readClientTokens,
  readSecurity,
  schemeOf,
  serveTlsOf,
  servingSecurity,
  trustLine,
  type Security,
} from './lib/cli/security.ts'

const OPEN_SECURITY: Security = { secret: null, secretFile: null, tls: null }

export { runBatch, type BatchOptions }

/** Participants from the environment, then from the flags, without repeats, and their names.
 * With TLS, a participant given as host:port is reached over https. */
function participantsOf(flags: string[] | undefined, security: Security) {
  const scheme = (url: string) => url.replace(/^http:/, `${schemeOf(security)}:`)
  const named = (flags ?? []).map(namedParticipant).map((n) => ({ ...n, url: scheme(n.url) }))
  const names = Object.fromEntries(named.filter((n) => n.name).map((n) => [n.name!, n.url]))
  const fromEnv = participantsFromEnv(Bun.env).map(scheme)
  const participants = [...new Set([...fromEnv, ...named.map((n) => n.url)])]
  return { participants, names }
}

function parseBatchArgs(argv: string[]): BatchOptions {
  const { values, positionals } = parseCommand(argv, BATCH)
  const security = readSecurity(values, Bun.env)
  const { participants } = participantsOf(values.participant, security)
  const txns = positionals.length > 0 ? positionals : ['t1', 't2']
  for (const txn of txns) {
    if (!isTxnId(txn)) throw new UsageError(`invalid transaction id ${JSON.stringify(txn)}`)
  }
  return {
    dir: resolve(values.dir ?? '.'),
    participants,
    txns: [...new Set(txns)],
    timeoutMs: parseMs(values.timeout ?? '10000', 'timeout'),
    deliverTimeoutMs: parseMs(values['deliver-timeout'] ?? '30000', 'deliver-timeout'),
    protocol: protocolOf(values.protocol),
    ports: httpPorts(httpOptionsOf(security)),
  }
}

/** `--protocol 2pc|3pc`: how batch mode runs each new transaction (two-phase by default). */
function protocolOf(value: string | undefined): '2pc' | '3pc' {
  if (value === undefined || value === '2pc') return '2pc'
  if (value === '3pc') return '3pc'
  throw new UsageError(`invalid --protocol ${JSON.stringify(value)}: expected 2pc or 3pc`)
}

export type ServeOptions = {
  dir: string
  participants: readonly string[]
  names?: Readonly<Record<string, string>>
  port: number
  hostname: string
  /** The URL participants use to ask this coordinator about transactions in doubt. */
  advertise?: string
  timeoutMs: number
  ackWaitMs: number
  /** The secret, TLS and client tokens (by default none: anyone is heard, over plain HTTP). */
  security?: Security
  /** --retain and --no-views (lib/cli/args.ts historyOf). */
  history?: History
  clientTokens?: string[]
}

/** Starts the coordinator service: recovery first, then the HTTP API. */
export async function serve(options: ServeOptions) {
  // Loaded here, not at the top: batch mode never needs Hono.
  const { createCoordinatorApp } = await import('./lib/http/coordinator-app.ts')
  ensureDir(options.dir)
  const security = options.security ?? OPEN_SECURITY
  const node = openCoordinator({
    dir: options.dir,
    timeoutMs: options.timeoutMs,
    alwaysBatch: true,
    lazyAborts: true,
    onePhase: true,
    ports: httpPorts(httpOptionsOf(security)),
    ...options.history,
  })
  const credentials = credentialsOf(security, options.clientTokens)
  const app = createCoordinatorApp(node, { ...options, credentials })
  const tls = serveTlsOf(security)
  const { port, hostname: host } = options
  const server = Bun.serve({ port, hostname: host, fetch: app.fetch, ...(tls ? { tls } : {}) })
  // Bound to every interface, the machine's name is what other hosts can reach, not loopback.
  const local = options.hostname === '0.0.0.0' ? hostname() : options.hostname
  const scheme = schemeOf(security)
  node.options.selfUrl = options.advertise ?? `${scheme}://${local}:${server.port}`
  await node.start()
  return { node, server, url: node.options.selfUrl }
}

function parseServeArgs(argv: string[]): ServeOptions {
  const { values, positionals } = parseCommand(argv, SERVE)
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const security = servingSecurity(readSecurity(values, Bun.env))
  const tokensFile = values['client-tokens-file']
  return {
    dir: resolve(values.dir ?? '.'),
    ...participantsOf(values.participant, security),
    security,
    ...(tokensFile ? { clientTokens: readClientTokens(tokensFile) } : {}),
    port: parsePort(values.port ?? '8000', 'port'),
    hostname: values.host ?? '0.0.0.0',
    ...(values.advertise ? { advertise: participantUrl(values.advertise) } : {}),
    timeoutMs: parseMs(values.timeout ?? '10000', 'timeout'),
    ackWaitMs: parseMs(values['ack-wait'] ?? '1000', 'ack-wait', 0),
    history: historyOf(values),
  }
}

async function main(argv: string[]): Promise<never> {
  if (argv[0] === 'serve') {
    const options = parseServeArgs(argv.slice(1))
    const { node, server, url } = await serve(options)
    console.error(trustLine('coordinator', options.security ?? OPEN_SECURITY))
    console.log(`coordinator listening on ${url}`)
    await new Promise<void>((done) => {
      process.on('SIGTERM', done)
      process.on('SIGINT', done)
    })
    await server.stop()
    await node.flushView()
    node.close() // writes the lazy records still pending
    process.exit(0)
  }
  if (isClientCommand(argv[0])) {
    const { runClient } = await import('./lib/cli/client.ts')
    process.exit(await runClient(argv))
  }
  const problem = await runBatch(parseBatchArgs(argv))
  if (problem) fail(new Error(problem))
  process.exit(0)
}

if (import.meta.main) {
  try {
    await main(Bun.argv.slice(2))
  } catch (error) {
    fail(error)
  }
}
