// The benchmark: a fresh cluster (three participants and `coordinator.ts serve` as real
// processes on loopback, SQLite with synchronous=FULL), driven through POST /transactions.
//   bun run bench [-- --concurrency 1,64,256] [--transactions 5000] [--warmup 10000]
//                 [--mix commit|conflict|data|single]
//                 [--client wrk|fetch] [--json] [--profile DIR]
//   bun run bench -- --classic 20   (the classic exercise's coordinator, timed from spawn to exit)
// --warmup runs that many transactions at concurrency 64 first, unmeasured: the nodes' code is
// compiled by the JIT as it runs, and the first thousands of transactions pay for that.
// --profile writes each node's CPU profile (markdown) into DIR when the run ends.
// Prints, per concurrency: transactions/s, latency p50/p99/max, forced writes (fsyncing commits)
// and protocol HTTP requests per transaction, and the CPU each process used.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fail } from '../lib/cli/args.ts'
import { flagLines, parseCommand, wrap, type Command } from '../lib/cli/flags.ts'
import { timeClassicRuns } from './bench/classic.ts'
import { drive } from './bench/load.ts'
import { spawnCoordinatorService, spawnParticipant, type Node } from '../testing/nodes.ts'
import { integerFlag } from '../testing/util.ts'

type Row = {
  concurrency: number
  transactions: number
  perSecond: number
  p50: number
  p99: number
  max: number
  committed: number
  coordinatorWrites: number
  participantWrites: number
  requests: number
  cpu: Record<string, number>
}

const FLAGS = {
  concurrency: { value: 'N,N,...', default: '1,64,256', help: 'the client counts to measure' },
  transactions: { value: 'N', default: '5000', help: 'transactions measured per concurrency' },
  warmup: { value: 'N', default: '10000', help: 'unmeasured transactions first, at 64' },
  mix: {
    value: 'MIX',
    default: 'data',
    help: 'data (a write each), commit (no operations), conflict (a hot key), single (one phase)',
  },
  'ack-wait': {
    value: 'MS',
    default: '1000 (the service default: answered once acknowledged)',
    help: '0 answers at the commit point (favourable: the commits go on in the background)',
  },
  client: {
    value: 'wrk|fetch',
    default: 'wrk when installed, else fetch',
    help: 'the load generator',
  },
  classic: { value: 'RUNS', help: "time the classic exercise's coordinator RUNS times instead" },
  json: { help: 'the figures as JSON' },
  profile: { value: 'DIR', help: "write each node's CPU profile (markdown) into DIR" },
} as const

const USAGE =
  'scripts/bench.ts [--concurrency N,N,...] [--transactions N] [--warmup N] [--mix MIX] ' +
  '[--ack-wait MS] [--client wrk|fetch] [--json] [--profile DIR] | --classic RUNS [--json]'

const BENCH: Command<typeof FLAGS> = {
  name: 'scripts/bench.ts',
  usage: USAGE,
  flags: FLAGS,
  help: () =>
    [
      ...wrap(`usage: ${USAGE}`, 'usage: scripts/bench.ts '.length, 100, ' ['),
      '       (or: npm run bench -- FLAGS)',
      '',
      'Starts three participants and a coordinator service and drives POST /transactions; prints',
      'transactions/s, latency, forced writes and requests per transaction, and CPU per process.',
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
const warmup = integerFlag(values.warmup, 10000, 'warmup', 0)
const mix = oneOf(values.mix ?? 'data', ['commit', 'conflict', 'data', 'single'], 'mix')
const ackWait = integerFlag(values['ack-wait'], 1000, 'ack-wait', 0)
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

function oneOf<T extends string>(value: string, allowed: readonly T[], name: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T
  console.error(`error: invalid --${name} ${JSON.stringify(value)}: expected ${allowed.join(', ')}`)
  process.exit(2)
}

/** The body of transaction `i` for the chosen mix. */
function bodyOf(i: number, run: string): string {
  const id = `${run}-${i}`
  if (mix === 'commit') return JSON.stringify({ id })
  // One participant per transaction, in turn: one-phase commit.
  if (mix === 'single') {
    return JSON.stringify({ id, ops: { [i % 3]: [{ op: 'set', key: `k:${run}:${i}`, value: i }] } })
  }
  const hot = mix === 'conflict' && i % 10 === 0
  const op = hot
    ? { op: 'add', key: 'hot', amount: 1 }
    : { op: 'set', key: `k:${run}:${i}`, value: i }
  return JSON.stringify({ id, ops: [op] })
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

async function io(url: string): Promise<{ flushes: number; requests: number }> {
  return (await (await fetch(`${url}/metrics`)).json()) as { flushes: number; requests: number }
}

type Counts = { preparing: number; commit: number; abort: number; delivering: number }

async function counts(coordinator: Node): Promise<Counts> {
  return ((await (await fetch(`${coordinator.url}/status`)).json()) as { counts: Counts }).counts
}

/** Waits until the coordinator has no transaction undecided or undelivered; how many it has
 * decided in all. */
async function idle(coordinator: Node): Promise<number> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const c = await counts(coordinator)
    if (c.preparing === 0 && c.delivering === 0) return c.commit + c.abort
    if (Date.now() > deadline) {
      throw new Error(`the coordinator is still busy after 60 s: ${JSON.stringify(c)}`)
    }
    await Bun.sleep(10)
  }
}

async function level(coordinator: Node, participants: Node[], concurrency: number): Promise<Row> {
  const run = `c${concurrency}-${Date.now().toString(36)}`
  const nodes = [coordinator, ...participants]
  const before = await Promise.all(nodes.map((n) => io(n.url)))
  const decidedBefore = await idle(coordinator)
  const cpuBefore = nodes.map((n) => cpuSeconds(n.proc.pid))
  const spec = {
    url: coordinator.url,
    concurrency,
    total: count,
    bodyOf: (i: number) => bodyOf(i, run),
  }
  const load = await drive(client, spec, root)
  const cpuAfter = nodes.map((n) => cpuSeconds(n.proc.pid))
  // Forced writes and requests are counted once the stragglers are through, per transaction
  // the coordinator ran (wrk's last few are still in flight when the measured ones are answered).
  const ran = (await idle(coordinator)) - decidedBefore
  const after = await Promise.all(nodes.map((n) => io(n.url)))
  const delta = (i: number, k: 'flushes' | 'requests') => after[i]![k] - before[i]![k]
  const names = ['coordinator', ...participants.map((_, i) => `p${i}`)]
  let participantWrites = 0
  for (let i = 1; i <= participants.length; i++) participantWrites += delta(i, 'flushes')
  const percent = (cpu: number) => Math.round((100 * cpu) / load.seconds)
  return {
    concurrency,
    transactions: load.answered,
    perSecond: Math.round(load.answered / load.seconds),
    p50: round(load.p50),
    p99: round(load.p99),
    max: round(load.max),
    committed: load.committed,
    coordinatorWrites: round(delta(0, 'flushes') / ran, 3),
    participantWrites: round(participantWrites / participants.length / ran, 3),
    requests: round(delta(0, 'requests') / ran, 2),
    cpu: {
      ...Object.fromEntries(names.map((n, i) => [n, percent(cpuAfter[i]! - cpuBefore[i]!)])),
      loadgen: percent(load.cpuSeconds),
    },
  }
}

function round(x: number, digits = 2): number {
  return Number(x.toFixed(digits))
}

function print(rows: Row[]): void {
  console.log(
    `mix ${mix}, ack-wait ${ackWait}, ${count} transactions per level after ${warmup} ` +
      `unmeasured, client ${client}, ` +
      '3 participants, SQLite synchronous=FULL',
  )
  const head = 'conc  txn/s   p50 ms  p99 ms  max ms  commits  fsync/txn c  fsync/txn p  req/txn'
  console.log(`${head}  CPU % (coordinator p0 p1 p2 loadgen)`)
  for (const r of rows) {
    const cells = [
      String(r.concurrency).padStart(4),
      String(r.perSecond).padStart(6),
      String(r.p50).padStart(7),
      String(r.p99).padStart(7),
      String(r.max).padStart(7),
      String(r.committed).padStart(8),
      String(r.coordinatorWrites).padStart(12),
      String(r.participantWrites).padStart(12),
      String(r.requests).padStart(8),
    ]
    console.log(`${cells.join(' ')}  ${Object.values(r.cpu).join(' ')}`)
  }
}

const root = mkdtempSync(join(tmpdir(), 'twophase-bench-'))
const started: Node[] = []
if (values.profile) {
  mkdirSync(values.profile, { recursive: true })
  process.env.BUN_OPTIONS = `--cpu-prof-md --cpu-prof-dir=${resolve(values.profile)}`
}

/** `--classic N`: the classic exercise's coordinator, timed from spawn to exit. */
async function classic(runs: number): Promise<void> {
  const times = await timeClassicRuns(runs, root)
  const sorted = [...times].sort((a, b) => a - b)
  const summary = {
    runs,
    median: round(sorted[Math.floor(runs / 2)]!, 1),
    min: round(sorted[0]!, 1),
    max: round(sorted.at(-1)!, 1),
  }
  if (values.json) console.log(JSON.stringify({ classic: { ...summary, times } }, null, 2))
  else {
    console.log(`classic exercise (t1=commit, t2=abort), ${runs} runs, fresh nodes each`)
    console.log(
      `coordinator from spawn to exit: median ${summary.median} ms, ` +
        `min ${summary.min} ms, max ${summary.max} ms`,
    )
  }
}

/** The levels: a cluster, a warm-up, then each concurrency in turn. */
async function throughput(): Promise<void> {
  const participants: Node[] = []
  for (let i = 0; i < 3; i++) {
    const dir = join(root, `p${i}`)
    mkdirSync(dir)
    participants.push(await spawnParticipant(dir))
  }
  started.push(...participants)
  const dir = join(root, 'coordinator')
  mkdirSync(dir)
  // By default the service's own --ack-wait: each client is answered once every participant
  // acknowledged. --ack-wait 0 answers at the commit point (its decision durable), with the
  // commits reaching the participants in the background: favourable, and labelled so.
  const coordinator = await spawnCoordinatorService(dir, {
    participants: participants.map((p) => p.url),
    args: ['--ack-wait', String(ackWait)],
  })
  started.push(coordinator)
  if (warmup > 0) {
    const run = `warmup-${Date.now().toString(36)}`
    const spec = {
      url: coordinator.url,
      concurrency: 64,
      total: warmup,
      bodyOf: (i: number) => bodyOf(i, run),
    }
    await drive(client, spec, root)
    await idle(coordinator)
  }
  const rows: Row[] = []
  for (const concurrency of levels) rows.push(await level(coordinator, participants, concurrency))
  if (values.json) console.log(JSON.stringify({ mix, ackWait, client, warmup, rows }, null, 2))
  else print(rows)
}

try {
  if (values.classic !== undefined) await classic(integerFlag(values.classic, 20, 'classic'))
  else await throughput()
} finally {
  // SIGTERM lets a profiled node write its profile on the way out.
  for (const n of started) n.proc.kill(values.profile ? 'SIGTERM' : 'SIGKILL')
  await Promise.all(started.map((n) => n.proc.exited))
  rmSync(root, { recursive: true, force: true })
}
