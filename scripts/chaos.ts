// A chaos run of real processes: three participants (SQLite) and a coordinator service on free
// loopback ports in a temp directory, the bank's random transfers through the coordinator's HTTP
// API, and meanwhile a seeded loop that SIGKILLs and restarts any node (the coordinator too) and
// stalls participants with SIGSTOP/SIGCONT. Once the faults stop and everything is quiet, the
// nodes' own APIs and files are checked: money conserved, no negative balance, one outcome per
// transaction everywhere, decision.txt and state.txt agreeing with the APIs, nothing left locked.
//   bun scripts/chaos.ts [--seconds 30] [--seed N] [--accounts 30] [--concurrency 16] [--json]
//     [--verbose] [--keep] [--secure]
// With --secure every node has a fresh secret, client tokens and mutual TLS: the clients use a
// token and the certificate, the checks the secret.
// Exit status 0 when every invariant holds, 1 when one does not (or the run broke), 2 for usage.
// The run itself lives in testing/chaos/: run.ts (the steps), cluster.ts (the processes),
// clients.ts (the workload), faults.ts (the seeded faults), observe.ts and checks.ts (the
// invariants), report.ts (the report).
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
} as const

const USAGE =
  'scripts/chaos.ts [--seconds N] [--seed N] [--accounts N] [--concurrency N] [--json] ' +
  '[--verbose] [--keep] [--secure]'

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
      'that money is conserved and every node agrees on every outcome.',
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
