// A chaos run of real processes: three participants (SQLite) and a coordinator service on free
// loopback ports in a temp directory, the bank's random transfers through the coordinator's HTTP
// API, and meanwhile a seeded loop that SIGKILLs and restarts any node (the coordinator too) and
// stalls participants with SIGSTOP/SIGCONT. Once the faults stop and everything is quiet, the
// nodes' own APIs and files are checked: money conserved, no negative balance, one outcome per
// transaction everywhere, decision.txt and state.txt agreeing with the APIs, nothing left locked.
//   bun scripts/chaos.ts [--seconds 30] [--seed N] [--accounts 30] [--concurrency 16] [--json]
//     [--verbose] [--keep] [--secure] [--coordinators 1] [--log-db URL] [--lease 1000]
// With --secure every node has a fresh secret, client tokens and mutual TLS: the clients use a
// token and the certificate, the checks the secret. With --coordinators N (N > 1) or --log-db
// URL, N coordinator services share one log in PostgreSQL (the URL's, else a throwaway server
// in the run's directory, which is crashed and restarted too): the clients are spread over
// them, coordinators are stalled too (some past their lease: taken over and fenced), and the
// log's own tables are checked (one decision per transaction, no lease overlap).
// Exit status 0 when every invariant holds, 1 when one does not (or the run broke), 2 for usage.
// The run itself lives in testing/chaos/: run.ts (the steps), cluster.ts (the processes),
// clients.ts (the workload), faults.ts (the seeded faults), observe.ts and checks.ts (the
// invariants), log-db.ts and log-checks.ts (a shared log's database and its invariants),
// report.ts (the report).
import { UsageError, fail } from '../lib/cli/args.ts'
import { flagLines, parseCommand, wrap, type Command } from '../lib/cli/flags.ts'
import { formatReport } from '../testing/chaos/report.ts'
import { runChaos } from '../testing/chaos/run.ts'
import { message } from '../testing/chaos/util.ts'
import { integerFlag } from '../testing/util.ts'

const FLAGS = {
  seconds: { value: 'N', default: '30', help: 'how long the faults and the workload run' },
  seed: { value: 'N', default: 'random', help: 'the seed of the faults and the transfers' },
  accounts: { value: 'N', default: '30', help: 'how many bank accounts (at least 2)' },
  concurrency: { value: 'N', default: '16', help: 'how many transfers at a time' },
  json: { help: 'the report as JSON' },
  verbose: { help: 'print every fault as it happens' },
  keep: { help: "keep the nodes' directories (they are kept anyway when a check fails)" },
  secure: {
    help: 'a fresh secret, client tokens and mutual TLS on every node; the clients use a token',
  },
  coordinators: {
    value: 'N',
    default: '1',
    help: 'coordinator services; more than one share a log in PostgreSQL (see --log-db)',
  },
  'log-db': {
    value: 'URL',
    help: 'the shared log in this PostgreSQL database (postgres://…) instead of a throwaway one',
  },
  lease: { value: 'MS', default: '1000', help: "the coordinators' --lease on the shared log" },
} as const

const USAGE =
  'scripts/chaos.ts [--seconds N] [--seed N] [--accounts N] [--concurrency N] [--json] ' +
  '[--verbose] [--keep] [--secure] [--coordinators N] [--log-db URL] [--lease MS]'

const CHAOS: Command<typeof FLAGS> = {
  name: 'scripts/chaos.ts',
  usage: USAGE,
  flags: FLAGS,
  help: () =>
    [
      ...wrap(`usage: ${USAGE}`, 'usage: scripts/chaos.ts '.length, 100, ' ['),
      '       (or: npm run chaos -- FLAGS)',
      '',
      'Real nodes under SIGKILL, restarts and SIGSTOP while bank transfers run, then checks',
      'that money is conserved and every node agrees on every outcome. With several',
      'coordinators on one PostgreSQL log, the log server is crashed too, and the log must hold',
      'one decision per transaction and no write by a coordinator after its takeover.',
      '',
      'flags:',
      ...flagLines(FLAGS),
      '',
      'exit status: 0 every invariant holds, 1 one does not (or the run broke), 2 usage error',
    ].join('\n'),
}

async function main(): Promise<number> {
  const { values } = parseCommand(Bun.argv.slice(2), CHAOS)
  const seed = integerFlag(values.seed, Math.floor(Math.random() * 2 ** 31), 'seed', 0)
  const accounts = integerFlag(values.accounts, 30, 'accounts', 2)
  const logDb = values['log-db']
  if (logDb !== undefined && !/^postgres(ql)?:\/\//.test(logDb)) {
    throw new UsageError(`invalid --log-db ${JSON.stringify(logDb)}: expected postgres://…`)
  }
  const coordinators = integerFlag(values.coordinators, 1, 'coordinators', 1)
  if (values.lease !== undefined && coordinators === 1 && logDb === undefined) {
    throw new UsageError('--lease needs a shared log: --coordinators N (N > 1) or --log-db URL')
  }
  const controller = new AbortController()
  const interrupt = () => controller.abort()
  process.on('SIGINT', interrupt)
  process.on('SIGTERM', interrupt)
  const report = await runChaos({
    seconds: integerFlag(values.seconds, 30, 'seconds'),
    seed,
    accounts,
    concurrency: integerFlag(values.concurrency, 16, 'concurrency'),
    log: values.json ? undefined : (line) => console.log(line),
    verbose: values.verbose,
    keep: values.keep ? 'always' : 'on-failure',
    secure: values.secure ?? false,
    coordinators,
    ...(logDb !== undefined ? { logDb } : {}),
    leaseMs: integerFlag(values.lease, 1000, 'lease', 300),
    signal: controller.signal,
  })
  if (values.json) console.log(JSON.stringify(report, null, 2))
  else for (const line of formatReport(report)) console.log(line)
  return controller.signal.aborted ? 130 : report.ok ? 0 : 1
}

if (import.meta.main) {
  try {
    process.exit(await main())
  } catch (error) {
    if (error instanceof UsageError) fail(error)
    console.error(`error: ${message(error)}`)
    process.exit(1)
  }
}
