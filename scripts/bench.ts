// The benchmark: a fresh cluster (three participants and `coordinator.ts serve` as real
// processes on loopback, SQLite with synchronous=FULL), driven through POST /transactions.
//   bun run bench [-- --concurrency 1,64,256] [--transactions 5000] [--warmup 10000]
//                 [--mix commit|conflict|data|single] [--ack-wait MS] [--retain R]
//                 [--protocol 2pc|3pc] [--client wrk|fetch] [--json] [--profile DIR]
//   bun run bench -- --history N   (N transactions, then a restart, against a fresh cluster)
//   bun run bench -- --classic 20   (the classic exercise's coordinator, timed from spawn to exit)
//   bun run bench -- --in-process   (every node in this one process: the code's own CPU cost)
// --warmup runs that many transactions at concurrency 64 first, unmeasured: the nodes' code is
// compiled by the JIT as it runs, and the first thousands of transactions pay for that.
// --profile writes each node's CPU profile (markdown) into DIR when the run ends.
// --protocol 3pc runs every transaction (warm-up, levels, history) in three-phase commit.
// Prints, per concurrency: transactions/s, latency p50/p99/max, forced writes (fsyncing commits)
// and protocol HTTP requests per transaction, and the CPU time per transaction of each process.
// --history (scripts/bench/history.ts) prints the throughput of short runs on the fresh cluster,
// then after N transactions and a restart in turns with a new cluster beside it (the control),
// with each node's start-up time, memory and files.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fail } from '../lib/cli/args.ts'
import { flagLines, parseCommand, wrap, type Command } from '../lib/cli/flags.ts'
import { timeClassicRuns } from './bench/classic.ts'
import { inProcessLines, inProcessRuns } from './bench/in-process.ts'
import { retainArgs, startCluster } from './bench/cluster.ts'
import { SHORT, history, historyLines } from './bench/history.ts'
import { sharedLines, sharedLogRuns } from './bench/shared.ts'
import {
  LEGEND,
  PROTOCOL_NAMES,
  level,
  round,
  rowLines,
  warm,
  type Row,
  type Settings,
} from './bench/level.ts'
import type { Node } from '../testing/nodes.ts'
import { integerFlag } from '../testing/util.ts'

const FLAGS = {
  concurrency: { value: 'N,N,...', default: '1,64,256', help: 'the client counts to measure' },
  transactions: { value: 'N', default: '5000', help: 'transactions measured per concurrency' },
  warmup: {
    value: 'N',
    default: '10000; 0 with --history',
    help: 'unmeasured transactions first, at 64 (--history: on each cluster, before its runs)',
  },
  mix: {
    value: 'MIX',
    default: 'data',
    help:
      'data (a write each), commit (no operations), conflict (a hot key), single (one ' +
      'participant each: one phase in 2pc)',
  },
  'ack-wait': {
    value: 'MS',
    default: '1000 (the service default: answered once acknowledged)',
    help: '0 answers at the commit point (favourable: the commits go on in the background)',
  },
  retain: {
    value: 'R',
    default: "not passed: the nodes' own",
    help:
      'passed as --retain R to every participant and to coordinator.ts serve, each if its ' +
      '--help lists it (else a note, and it starts without)',
  },
  'no-views': {
    help: 'start every node with --no-views (no state.txt / decision.txt: bounded memory)',
  },
  protocol: {
    value: '2pc|3pc',
    default: '2pc',
    help:
      'two-phase or three-phase commit: each transaction\'s "protocol" (--classic: the batch ' +
      "coordinator's --protocol)",
  },
  client: {
    value: 'wrk|fetch',
    default: 'wrk when installed, else fetch',
    help: 'the load generator',
  },
  history: {
    value: 'N',
    help:
      'instead of the levels: a short run (--transactions at 64) on a fresh cluster, N ' +
      'transactions at 256 (writing 10,000 keys over and over), a restart of every node, the ' +
      'short run again; start-up ms, RSS and disk per node',
  },
  classic: { value: 'RUNS', help: "time the classic exercise's coordinator RUNS times instead" },
  'in-process': {
    help:
      'instead of the processes: the coordinator service and three participants in this one ' +
      'process, batches handed over in memory (no network): the CPU their code costs a ' +
      'transaction (TMPDIR=/dev/shm: no fsync either)',
  },
  'log-db': {
    value: 'URL|embedded',
    help:
      "instead of the levels: the coordinator's log in this PostgreSQL (embedded: the " +
      "project's throwaway server), against one coordinator on SQLite, clients spread over " +
      '--coordinators; Bun fetch as the client',
  },
  coordinators: {
    value: 'N,N,...',
    default: '1,2,3',
    help: 'with --log-db: how many coordinators share the log, in turn',
  },
  json: { help: 'the figures as JSON' },
  profile: { value: 'DIR', help: "write each node's CPU profile (markdown) into DIR" },
} as const

const FORMS = [
  '[--concurrency N,N,...] [--transactions N] [--warmup N] [--mix MIX] [--ack-wait MS] ' +
    '[--retain R] [--protocol 2pc|3pc] [--client wrk|fetch] [--json] [--profile DIR]',
  '--history N [--transactions N] [--warmup N] [--mix MIX] [--ack-wait MS] [--retain R] ' +
    '[--protocol 2pc|3pc] [--client wrk|fetch] [--json]',
  '--classic RUNS [--protocol 2pc|3pc] [--json]',
  '--in-process [--concurrency N,N,...] [--transactions N] [--warmup N] [--mix MIX] ' +
    '[--ack-wait MS] [--protocol 2pc|3pc] [--json]',
  '--log-db URL|embedded [--coordinators N,N,...] [--concurrency N,N,...] [--transactions N] ' +
    '[--warmup N] [--mix MIX] [--ack-wait MS] [--json]',
]
const USAGE = `scripts/bench.ts ${FORMS.join(' | ')}`

/** The usage as --help shows it: one form a line (or more, wrapped), each under the last. */
function usageLines(): string[] {
  return FORMS.flatMap((form, i) => {
    const head = i === 0 ? 'usage: scripts/bench.ts' : '       scripts/bench.ts'
    return wrap(`${head} ${form}`, head.length + 1, 100, ' [')
  })
}

const BENCH: Command<typeof FLAGS> = {
  name: 'scripts/bench.ts',
  usage: USAGE,
  flags: FLAGS,
  help: () =>
    [
      ...usageLines(),
      '       (or: npm run bench -- FLAGS)',
      '',
      'Starts three participants and a coordinator service and drives POST /transactions; prints',
      'transactions/s, latency, forced writes and requests per transaction, and the CPU time per',
      'transaction of each process (µs). --history N: what N transactions leave behind, against',
      'a fresh cluster and a control run in turns with it: throughput, start-up time (spawn to',
      'GET /healthz), RSS, files on disk.',
      '',
      'flags:',
      ...flagLines(FLAGS),
    ].join('\n'),
}

let values: ReturnType<typeof parseCommand<typeof FLAGS>>['values']
try {
  values = parseCommand(Bun.argv.slice(2), BENCH).values
} catch (error) {
  fail(error)
}
const levels = (values.concurrency ?? '1,64,256')
  .split(',')
  .map((c) => integerFlag(c, 1, 'concurrency'))
const count = integerFlag(values.transactions, 5000, 'transactions')
const historyOf =
  values.history === undefined ? undefined : integerFlag(values.history, 0, 'history')
// The history's short runs start on fresh processes both times: no warm-up unless asked for.
const warmup = integerFlag(values.warmup, historyOf ? 0 : 10000, 'warmup', 0)
const mix = oneOf(values.mix ?? 'data', ['commit', 'conflict', 'data', 'single'], 'mix')
const protocol = oneOf(values.protocol ?? '2pc', ['2pc', '3pc'], 'protocol')
const ackWait = integerFlag(values['ack-wait'], 1000, 'ack-wait', 0)
const retain =
  values.retain === undefined ? undefined : String(integerFlag(values.retain, 0, 'retain', 0))
// wrk when it is installed: it leaves the nodes more of the machine they share with it.
const client = oneOf(
  values.client ?? (Bun.which('wrk') ? 'wrk' : 'fetch'),
  ['fetch', 'wrk'],
  'client',
)

if (client === 'wrk' && !Bun.which('wrk')) {
  console.error('error: --client wrk needs wrk on the PATH (Debian: apt-get install wrk)')
  process.exit(2)
}
if (historyOf && values.classic !== undefined) {
  console.error('error: --history and --classic are two different runs: give one')
  process.exit(2)
}
if (values['in-process']) {
  // What only a run of processes has: another run, its load generator, its nodes' flags.
  const others = ['history', 'classic', 'log-db', 'client', 'retain', 'no-views', 'profile']
  const given = others.find((flag) => values[flag as keyof typeof values] !== undefined)
  if (given) {
    console.error(`error: --in-process runs every node in this process: drop --${given}`)
    process.exit(2)
  }
}
if (historyOf && values.concurrency !== undefined) {
  console.error('error: --history runs at concurrency 64 and 256 of its own: drop --concurrency')
  process.exit(2)
}

function oneOf<T extends string>(value: string, allowed: readonly T[], name: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T
  console.error(`error: invalid --${name} ${JSON.stringify(value)}: expected ${allowed.join(', ')}`)
  process.exit(2)
}

/** A line for the reader: on stdout, or on stderr when stdout is the JSON. */
function say(line: string): void {
  if (values.json) console.error(line)
  else console.log(line)
}

function print(rows: Row[], s: Settings): void {
  console.log(
    `${PROTOCOL_NAMES[protocol]}, mix ${mix}, ack-wait ${ackWait}, ${count} transactions per ` +
      `level after ${warmup} unmeasured, client ${client},`,
  )
  console.log(`3 participants, SQLite synchronous=FULL${retainLabel(s)}${viewsLabel()}`)
  for (const line of [...rowLines(rows), ...LEGEND]) console.log(line)
}

function viewsLabel(): string {
  return values['no-views'] ? ', --no-views' : ''
}

/** Who was started with --retain, for the heading: `, --retain 10 (participants, coordinator)`. */
function retainLabel(s: Settings): string {
  if (retain === undefined) return ''
  const who = [
    ...(s.participantArgs.length > 0 ? ['participants'] : []),
    ...(s.coordinatorArgs.length > 0 ? ['coordinator'] : []),
  ]
  return `, --retain ${retain} (${who.length > 0 ? who.join(', ') : 'taken by no node'})`
}

const root = mkdtempSync(join(tmpdir(), 'twophase-bench-'))
const started: Node[] = []
if (values.profile) {
  mkdirSync(values.profile, { recursive: true })
  process.env.BUN_OPTIONS = `--cpu-prof-md --cpu-prof-dir=${resolve(values.profile)}`
}

/** The settings of every run, with --retain where the nodes take it. */
function settings(): Settings & { retain?: ReturnType<typeof retainArgs>['retain'] } {
  const base = { mix, protocol, ackWait, client, count, warmup, root }
  const views = values['no-views'] ? ['--no-views'] : []
  if (!retain) return { ...base, participantArgs: views, coordinatorArgs: views }
  const r = retainArgs(retain, say)
  const args = { participantArgs: [...r.participantArgs, ...views] }
  return { ...base, ...r, ...args, coordinatorArgs: [...r.coordinatorArgs, ...views] }
}

/** `--classic N`: the classic exercise's coordinator, timed from spawn to exit. */
async function classic(runs: number): Promise<void> {
  // Two-phase commit is the exercise as an outsider runs it: no flag at all.
  const args = protocol === '3pc' ? ['--protocol', '3pc'] : []
  const times = await timeClassicRuns(runs, root, args)
  const sorted = [...times].sort((a, b) => a - b)
  const summary = {
    runs,
    protocol,
    median: round(sorted[Math.floor(runs / 2)]!, 1),
    min: round(sorted[0]!, 1),
    max: round(sorted.at(-1)!, 1),
  }
  if (values.json) console.log(JSON.stringify({ classic: { ...summary, times } }, null, 2))
  else {
    console.log(
      `classic exercise (t1=commit, t2=abort) in ${PROTOCOL_NAMES[protocol]}, ${runs} runs, ` +
        'fresh nodes each',
    )
    console.log(
      `coordinator from spawn to exit: median ${summary.median} ms, ` +
        `min ${summary.min} ms, max ${summary.max} ms`,
    )
  }
}

/** The levels: a cluster, a warm-up, then each concurrency in turn. */
async function throughput(): Promise<void> {
  const s = settings()
  const { cluster } = await startCluster(s, started)
  if (warmup > 0) await warm(s, cluster, warmup)
  const rows: Row[] = []
  for (const concurrency of levels) rows.push(await level(s, cluster, concurrency))
  const extra = s.retain ? { retain: s.retain } : {}
  if (!values.json) print(rows, s)
  else {
    const run = { protocol, mix, ackWait, client, warmup, ...extra, rows }
    console.log(JSON.stringify(run, null, 2))
  }
}

/** `--in-process`: see scripts/bench/in-process.ts. */
async function inProcess(): Promise<void> {
  const rows = await inProcessRuns(settings(), levels)
  if (values.json)
    console.log(JSON.stringify({ inProcess: { protocol, mix, ackWait, warmup, rows } }))
  else {
    console.log(
      `in one process: ${PROTOCOL_NAMES[protocol]}, mix ${mix}, ack-wait ${ackWait}, ${count} ` +
        `transactions per level after ${warmup} unmeasured,`,
    )
    console.log(`3 participants, SQLite synchronous=FULL in ${root}, no network`)
    for (const line of inProcessLines(rows)) console.log(line)
  }
}

/** `--history N`: see scripts/bench/history.ts. */
async function historyRun(n: number): Promise<void> {
  const s = settings()
  say(
    `history of ${n} transactions in ${PROTOCOL_NAMES[protocol]}: mix ${mix}, ` +
      `ack-wait ${ackWait}, client ${client},`,
  )
  say(`3 participants, SQLite synchronous=FULL${retainLabel(s)}${viewsLabel()}`)
  const h = await history(s, n, started, say, s.retain?.value)
  const retained = s.retain ? { retain: s.retain } : {}
  const run = {
    protocol,
    mix,
    ackWait,
    client,
    warmup,
    shortRun: { concurrency: SHORT, transactions: count },
  }
  if (values.json) console.log(JSON.stringify({ history: { ...run, ...retained, ...h } }, null, 2))
  else for (const line of historyLines(h, s)) console.log(line)
}

/** `--log-db`: see scripts/bench/shared.ts. */
async function sharedLogRun(target: string): Promise<void> {
  const counts = (values.coordinators ?? '1,2,3')
    .split(',')
    .map((c) => integerFlag(c, 1, 'coordinators'))
  const concurrency = values.concurrency === undefined ? [64] : levels
  const rows = await sharedLogRuns(settings(), target, counts, concurrency, started)
  if (values.json) console.log(JSON.stringify({ sharedLog: { mix, ackWait, warmup, rows } }))
  else {
    console.log(
      `the coordinator's log: SQLite, then PostgreSQL (${target}); mix ${mix}, ack-wait ` +
        `${ackWait}, ${count} transactions per level after ${warmup} unmeasured, client fetch,`,
    )
    console.log('3 participants, SQLite synchronous=FULL')
    for (const line of sharedLines(rows)) console.log(line)
  }
}

try {
  if (values['log-db'] !== undefined) await sharedLogRun(values['log-db'])
  else if (values.classic !== undefined) await classic(integerFlag(values.classic, 20, 'classic'))
  else if (historyOf) await historyRun(historyOf)
  else if (values['in-process']) await inProcess()
  else await throughput()
} finally {
  // SIGTERM lets a profiled node write its profile on the way out.
  for (const n of started) n.proc.kill(values.profile ? 'SIGTERM' : 'SIGKILL')
  await Promise.all(started.map((n) => n.proc.exited))
  rmSync(root, { recursive: true, force: true })
}
