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

async function parseBatchArgs(argv: string[]): Promise<BatchOptions> {
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
    ...(await batchLogOf(values, resolve(values.dir ?? '.'))),
  }
}

/** Batch mode on a shared log: named after its directory (not a URL, so never asked in doubt
 * by a participant of the services), every decision of its own read back for decision.txt. */
async function batchLogOf(values: { 'log-db'?: string; lease?: string }, dir: string) {
  const { logDb, leaseMs } = logDbOf(values)
  if (!logDb) return {}
  return {
    shared: await openSharedLog(logDb, `batch:${hostname()}:${dir}`, { leaseMs, all: true }),
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
  /** --log-db: the log in PostgreSQL, shared with other coordinators under leases. */
  logDb?: string
  leaseMs?: number
}

/** Starts the coordinator service: recovery first, then the HTTP API. */
export async function serve(options: ServeOptions) {
  // Loaded here, not at the top: batch mode never needs Hono.
  const { createCoordinatorApp } = await import('./lib/http/coordinator-app.ts')
  ensureDir(options.dir)
  const security = options.security ?? OPEN_SECURITY
  const tls = serveTlsOf(security)
  const { port, hostname: host } = options
  // Listening first, answering 503 until recovered: on a shared log a coordinator's name is
  // its URL, which the port it got is part of.
  let handle = (_: Request): Response | Promise<Response> =>
    Response.json({ error: 'the coordinator is starting' }, { status: 503 })
  const server = Bun.serve({
    port,
    hostname: host,
    fetch: (r) => handle(r),
    ...(tls ? { tls } : {}),
  })
  // Bound to every interface, the machine's name is what other hosts can reach, not loopback.
  const local = options.hostname === '0.0.0.0' ? hostname() : options.hostname
  const selfUrl = options.advertise ?? `${schemeOf(security)}://${local}:${server.port}`
  const shared = options.logDb ? await openSharedLog(options.logDb, selfUrl, options) : undefined
  const node = openCoordinator({
    dir: options.dir,
    timeoutMs: options.timeoutMs,
    alwaysBatch: true,
    lazyAborts: true,
    onePhase: true,
    ports: httpPorts(httpOptionsOf(security)),
    selfUrl,
    ...(shared ? { shared } : {}),
    ...options.history,
  })
  const credentials = credentialsOf(security, options.clientTokens)
  handle = createCoordinatorApp(node, { ...options, credentials }).fetch
  await node.start()
  return { node, server, url: selfUrl }
}

/** Opens the shared log in PostgreSQL under `name`. A coordinator that finds its lease taken
 * over stops at once: another finishes its transactions, and it may decide none of them. */
export async function openSharedLog(
  url: string,
  name: string,
  options: { leaseMs?: number; all?: boolean },
) {
  const { PgLog } = await import('./lib/store/pg-log.ts')
  const say = (line: string) => console.error(`coordinator: ${line}`)
  const leaseMs = options.leaseMs ?? 3000
  const log = await PgLog.open(url, { name, leaseMs, say, all: options.all ?? false })
  log.onFenced = (error) => {
    console.error(`coordinator: ${error.message}; stopping (another coordinator has its work)`)
    process.exit(1)
  }
  return log
}

/** --log-db postgres://… and --lease MS (a lease shorter than 300 ms would be renewed more
 * often than a busy database answers). */
function logDbOf(values: { 'log-db'?: string; lease?: string }) {
  const url = values['log-db']
  if (url === undefined) {
    if (values.lease !== undefined) throw new UsageError('--lease needs --log-db')
    return {}
  }
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new UsageError(`invalid --log-db ${JSON.stringify(url)}: expected postgres://…`)
  }
  return { logDb: url, leaseMs: parseMs(values.lease ?? '3000', 'lease', 300) }
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
    ...logDbOf(values),
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
    await node.close() // writes the lazy records still pending
    process.exit(0)
  }
  if (isClientCommand(argv[0])) {
    const { runClient } = await import('./lib/cli/client.ts')
    process.exit(await runClient(argv))
  }
  const problem = await runBatch(await parseBatchArgs(argv))
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
