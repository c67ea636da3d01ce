// The bank: accounts spread over the coordinator's participants (account i lives on participant
// i % n as key `acct:<i>`), random concurrent transfers, each ONE transaction through the
// coordinator service, and a check that no money was made or lost on the way.
//   bun examples/bank.ts [--coordinator URL] [--accounts 30] [--transfers 500] [--concurrency 16]
//     [--seed N] [--initial 100] [--max-amount 50] [--protocol 2pc|3pc] [--secret-file PATH]
//     [--token-file PATH] [--tls-cert PEM --tls-key PEM] [--tls-ca PEM] [--secure]
// Without --coordinator it starts its own cluster (3 participants and `coordinator.ts serve` as
// real processes on free loopback ports in a temp directory) and stops it at the end; with
// --secure, that cluster has a fresh secret and mutual TLS.
import { UsageError, fail } from '../lib/cli/args.ts'
import { flagLines, parseCommand, wrap, type Command } from '../lib/cli/flags.ts'
import { coordinatorUrl } from '../lib/cli/http.ts'
import { readClientTokens, readSecurity, schemeOf } from '../lib/cli/security.ts'
import {
  connect,
  homeOf,
  mulberry32,
  openAccounts,
  planTransfers,
  readBalances,
  runTransfers,
  startCluster,
  topReasons,
  waitSettled,
  type Auth,
  type Bank,
  type Outcome,
  type Protocol,
} from '../testing/bank.ts'
import { integerFlag } from '../testing/util.ts'

type Options = {
  coordinator: string | undefined
  accounts: number
  count: number
  concurrency: number
  seed: number
  initial: number
  maxAmount: number
  protocol: Protocol
  /** What the requests to a given --coordinator carry. */
  auth: Auth
  /** Start the cluster with a fresh secret and mutual TLS. */
  secure: boolean
}

const FLAGS = {
  coordinator: {
    value: 'URL',
    default: 'none: start a cluster of 3 participants and a service for this run',
    help: 'a running coordinator service (a URL or host:port)',
  },
  accounts: { value: 'N', default: '30', help: 'how many accounts (2-10000)' },
  transfers: { value: 'N', default: '500', help: 'how many random transfers' },
  concurrency: { value: 'N', default: '16', help: 'how many transfers at a time' },
  seed: { value: 'N', default: '1', help: 'the seed of the transfer plan' },
  initial: { value: 'N', default: '100', help: 'the balance each new account opens with' },
  'max-amount': { value: 'N', default: '50', help: 'the largest transfer' },
  protocol: {
    value: '2pc|3pc',
    default: '2pc',
    help: 'how every transaction runs: two-phase or three-phase commit ("protocol" of the POST)',
  },
  'secret-file': {
    value: 'PATH',
    default: '$TWOPHASE_SECRET_FILE with --coordinator, else none',
    help: "the cluster's secret: every request carries its proof (the participants' reads need it)",
  },
  'token-file': {
    value: 'PATH',
    default: '$TWOPHASE_TOKEN_FILE with --coordinator, else none',
    help: "a client token of the service: sent to the coordinator instead of the secret's proof",
  },
  'tls-cert': {
    value: 'PEM',
    default: 'none',
    help: 'a client certificate (with --tls-key), for nodes on mutual TLS',
  },
  'tls-key': { value: 'PEM', default: 'none', help: 'the private key of --tls-cert' },
  'tls-ca': {
    value: 'PEM',
    default: "none: the system's CAs",
    help: "the CA the nodes' certificates come from (host:port then means https)",
  },
  secure: {
    help: 'start the cluster with a fresh secret and mutual TLS (not with --coordinator)',
  },
} as const

const USAGE =
  'examples/bank.ts [--coordinator URL] [--accounts N] [--transfers N] [--concurrency N] ' +
  '[--seed N] [--initial N] [--max-amount N] [--protocol 2pc|3pc] [--secret-file PATH] ' +
  '[--token-file PATH] [--tls-cert PEM --tls-key PEM] [--tls-ca PEM] [--secure]'

const BANK: Command<typeof FLAGS> = {
  name: 'examples/bank.ts',
  usage: USAGE,
  flags: FLAGS,
  help: () =>
    [
      ...wrap(`usage: ${USAGE}`, 'usage: examples/bank.ts '.length, 100, ' ['),
      '',
      "Accounts on the coordinator's participants, random transfers (each one transaction),",
      'then a check that no money was made or lost.',
      '',
      'flags:',
      ...flagLines(FLAGS),
      '',
      'exit status: 0 the total held and no balance is negative, 1 not (or a failure), 2 usage',
    ].join('\n'),
}

function readOptions(): Options {
  const { values } = parseCommand(Bun.argv.slice(2), BANK)
  const accounts = integerFlag(values.accounts, 30, 'accounts')
  if (accounts < 2 || accounts > 10_000) throw new UsageError('--accounts must be 2-10000')
  const own = values.coordinator === undefined
  const secure = values.secure ?? false
  if (secure && !own)
    throw new UsageError('--secure starts its own cluster: not with --coordinator')
  // The environment's secret and token are for a cluster given; the one started here has its own.
  const security = readSecurity(values, own ? {} : process.env)
  const tokenFile = values['token-file'] ?? (own ? undefined : process.env.TWOPHASE_TOKEN_FILE)
  const auth: Auth = { secret: security.secret, token: readToken(tokenFile), tls: security.tls }
  if (own && (auth.secret || auth.token || auth.tls)) {
    throw new UsageError(
      '--secret-file, --token-file and --tls-* are for a running cluster (--coordinator); ' +
        '--secure secures the one started here',
    )
  }
  return {
    // host:port or a URL, as every other --coordinator takes it; host:port is https with TLS.
    coordinator: own ? undefined : coordinatorUrl(values.coordinator!, schemeOf(security)),
    accounts,
    count: integerFlag(values.transfers, 500, 'transfers'),
    concurrency: integerFlag(values.concurrency, 16, 'concurrency'),
    seed: integerFlag(values.seed, 1, 'seed', 0),
    initial: integerFlag(values.initial, 100, 'initial'),
    maxAmount: integerFlag(values['max-amount'], 50, 'max-amount'),
    protocol: protocolOf(values.protocol),
    auth,
    secure,
  }
}

function protocolOf(value: string | undefined): Protocol {
  if (value === undefined || value === '2pc' || value === '3pc') return value ?? '2pc'
  throw new UsageError(`invalid --protocol ${JSON.stringify(value)}: expected 2pc or 3pc`)
}

/** The first token of `--token-file`, as the client reads it. */
function readToken(path: string | undefined): string | null {
  if (!path) return null
  const token = readClientTokens(path)[0]
  if (token === undefined) throw new UsageError(`--token-file ${path}: no token in it`)
  return token
}

/** The bank behind the coordinator; one that cannot be reached is said as such. */
async function connectTo(url: string, auth: Auth): Promise<Bank> {
  try {
    return await connect(url, auth)
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error)
    const unreachable = (error as { code?: unknown }).code === 'ECONNREFUSED'
    if (unreachable) throw new Error(`cannot reach the coordinator at ${url}`)
    const tls = /TLS|certificate|EPROTO/i.test(why)
    const hint = tls ? ' (on TLS: --tls-ca, and for mutual TLS --tls-cert and --tls-key)' : ''
    throw new Error(`${url}: ${why}${hint}`)
  }
}

async function main(): Promise<number> {
  const options = readOptions()
  const secure = options.secure ? { secret: true, tls: true } : {}
  const cluster = options.coordinator === undefined ? await startCluster(secure) : null
  try {
    const url = options.coordinator ?? cluster!.coordinator
    const connected = await connectTo(url, cluster?.auth ?? options.auth)
    // Two-phase commit is the service's default: those requests name no protocol.
    const bank = options.protocol === '3pc' ? { ...connected, protocol: '3pc' as const } : connected
    const started = options.secure
      ? 'started for this run, secret and mutual TLS'
      : 'started for this run'
    const mode = cluster ? started : 'given'
    console.log(
      `coordinator ${bank.coordinator} (${mode}), ${bank.participants.length} participants`,
    )
    const expected = await openBank(bank, options)
    const run = await runPlan(bank, options)
    await waitSettled(bank)
    const balances = await readBalances(bank, options.accounts)
    printBalances(bank, balances)
    printOutcomes(run, options.count)
    return checkTotal(balances, expected)
  } finally {
    await cluster?.stop()
  }
}

/** Opens the accounts and resolves to the money in them, which the transfers must conserve. */
async function openBank(bank: Bank, options: Options): Promise<number> {
  const { accounts, initial } = options
  const { opened, existing } = await openAccounts(bank, accounts, initial)
  console.log(`${accounts} accounts: ${opened} opened with ${initial} each, ${existing} existed`)
  await waitSettled(bank)
  return (await readBalances(bank, accounts)).reduce((a, b) => a + b, 0)
}

type Run = { outcomes: Outcome[]; committed: number; seconds: number }

/** Runs the seeded transfers, printing progress five times on the way. */
async function runPlan(bank: Bank, options: Options): Promise<Run> {
  const { count, accounts, seed, maxAmount, concurrency } = options
  // The run tag keeps transfer ids unique when the same seed runs again on one coordinator.
  const prefix = `xfer-${seed}-${Date.now().toString(36)}`
  const plan = planTransfers(count, accounts, mulberry32(seed), { prefix, maxAmount })
  const three = options.protocol === '3pc' ? ', in three-phase commit' : ''
  console.log(
    `${count} transfers of 1-${maxAmount}, ${concurrency} at a time, seed ${seed}${three}`,
  )
  const started = performance.now()
  const step = Math.max(1, Math.ceil(count / 5))
  let committed = 0
  const outcomes = await runTransfers(bank, plan, {
    concurrency,
    onDone: (o, done) => {
      if (o.decision === 'commit') committed += 1
      if (done % step === 0 || done === count) {
        const s = ((performance.now() - started) / 1000).toFixed(1)
        console.log(`  ${done}/${count} done, ${committed} committed (${s} s)`)
      }
    },
  })
  return { outcomes, committed, seconds: (performance.now() - started) / 1000 }
}

/** Each participant's total, then its accounts ten to a row. */
function printBalances(bank: Bank, balances: readonly number[]): void {
  console.log('balances:')
  for (const [p, url] of bank.participants.entries()) {
    const mine = balances.map((b, i) => [i, b] as const).filter(([i]) => homeOf(bank, i) === p)
    const sum = mine.reduce((a, [, b]) => a + b, 0)
    console.log(`  participant ${p} ${url}  total ${sum}`)
    for (let k = 0; k < mine.length; k += 10) {
      const row = mine.slice(k, k + 10).map(([i, b]) => `${i}:${b}`.padStart(7))
      console.log(`    ${row.join(' ')}`)
    }
  }
}

/** The counts and rate, why transfers aborted, and the first few that failed outright. */
function printOutcomes({ outcomes, committed, seconds }: Run, count: number): void {
  const aborted = outcomes.filter((o) => o.decision === 'abort').length
  const failed = outcomes.filter((o) => o.decision === null)
  const rate = Math.round(count / seconds)
  const failures = failed.length > 0 ? `, failed ${failed.length}` : ''
  console.log(
    `committed ${committed}, aborted ${aborted}${failures} of ${count} transfers ` +
      `in ${seconds.toFixed(1)} s (${rate}/s)`,
  )
  if (aborted > 0) console.log('top abort reasons (one per participant that refused):')
  for (const [reason, n] of topReasons(outcomes))
    console.log(`  ${String(n).padStart(5)}  ${reason}`)
  for (const o of failed.slice(0, 3)) console.log(`  failed ${o.id}: ${o.error}`)
}

/** The exit status: 0 when no money was made or lost and no balance went negative. */
function checkTotal(balances: readonly number[], expected: number): number {
  const total = balances.reduce((a, b) => a + b, 0)
  const negative = balances.flatMap((b, i) => (b < 0 ? [`${i}:${b}`] : []))
  console.log(`total ${total} ${total === expected ? '=' : '!='} ${expected} expected`)
  if (negative.length > 0) console.log(`NEGATIVE balances: ${negative.join(' ')}`)
  return total === expected && negative.length === 0 ? 0 : 1
}

if (import.meta.main) {
  try {
    process.exit(await main())
  } catch (error) {
    fail(error)
  }
}
