// One measured level of the bench: `count` transactions at one concurrency against a running
// cluster, with the latency, forced writes and requests per transaction, and the CPU each
// process used (as a share of the wall clock and in microseconds per transaction).
import { readFileSync } from 'node:fs'
import type { Node } from '../../testing/nodes.ts'
import { drive, type Client } from './load.ts'
import { table, type Column } from './table.ts'

export type Mix = 'commit' | 'conflict' | 'data' | 'single'

/** How each transaction runs: two-phase commit (the service's default) or three-phase. */
export type Protocol = '2pc' | '3pc'

export const PROTOCOL_NAMES: Record<Protocol, string> = {
  '2pc': 'two-phase commit (2pc)',
  '3pc': 'three-phase commit (3pc)',
}

/** What every run of the bench is set up with. */
export type Settings = {
  mix: Mix
  protocol: Protocol
  ackWait: number
  client: Client
  /** Transactions measured per level. */
  count: number
  warmup: number
  /** The bench's temp directory: the nodes' directories and the load generator's files. */
  root: string
  /** Extra flags for every participant and for `coordinator.ts serve` (`--retain R`). */
  participantArgs: string[]
  coordinatorArgs: string[]
}

export type Cluster = { coordinator: Node; participants: Node[] }

export type Row = {
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
  /** CPU % of the measured window, by process. */
  cpu: Record<string, number>
  /** CPU microseconds (user + system) per measured transaction, by process. */
  cpuMicros: Record<string, number>
}

/** The processes' names in the order of `nodesOf`, then the load generator's. */
export const NAMES = ['coordinator', 'p0', 'p1', 'p2']

export function nodesOf(cluster: Cluster): Node[] {
  return [cluster.coordinator, ...cluster.participants]
}

/** The body of transaction `i` of `run` for the mix of `s`, in its protocol (two-phase commit
 * names none: the service's default); it writes key `key` (by default a new one, `k:RUN:I`). */
export function bodyOf(
  s: Pick<Settings, 'mix' | 'protocol'>,
  i: number,
  run: string,
  key = `k:${run}:${i}`,
): string {
  // Ids as the CLI assigns them (lib/cli/commands.ts) and the service does when a request has
  // none: time-ordered, so a folded table grows at its end and a new id is known new unread.
  const body: Record<string, unknown> = { id: Bun.randomUUIDv7(), ...opsOf(s.mix, i, key) }
  if (s.protocol === '3pc') body.protocol = '3pc'
  return JSON.stringify(body)
}

function opsOf(mix: Mix, i: number, key: string): { ops?: unknown } {
  if (mix === 'commit') return {}
  // One participant per transaction, in turn: one-phase commit (in 2pc).
  if (mix === 'single') return { ops: { [i % 3]: [{ op: 'set', key, value: i }] } }
  // One list for every participant: each writes its own copy of the key.
  const hot = mix === 'conflict' && i % 10 === 0
  const op = hot ? { op: 'add', key: 'hot', amount: 1 } : { op: 'set', key, value: i }
  return { ops: [op] }
}

/** CPU seconds (user + system, every thread) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

async function io(url: string): Promise<{ flushes: number; requests: number }> {
  return (await (await fetch(`${url}/metrics.json`)).json()) as {
    flushes: number
    requests: number
  }
}

type Counts = { preparing: number; commit: number; abort: number; delivering: number }

async function counts(coordinator: Node): Promise<Counts> {
  return ((await (await fetch(`${coordinator.url}/status`)).json()) as { counts: Counts }).counts
}

/** Waits until the coordinator has no transaction undecided or undelivered; how many decided
 * ones its GET /status lists. */
export async function idle(coordinator: Node): Promise<number> {
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

/** `total` transactions at `concurrency`, unmeasured, then a wait for the coordinator's idle. */
export async function warm(s: Settings, cluster: Cluster, total: number, concurrency = 64) {
  const run = `warmup-${Date.now().toString(36)}`
  const spec = {
    url: cluster.coordinator.url,
    concurrency,
    total,
    bodyOf: (i: number) => bodyOf(s, i, run),
  }
  await drive(s.client, spec, s.root)
  await idle(cluster.coordinator)
}

/** `s.count` transactions at `concurrency`, measured. */
export async function level(s: Settings, cluster: Cluster, concurrency: number): Promise<Row> {
  const run = `c${concurrency}-${Date.now().toString(36)}`
  const nodes = nodesOf(cluster)
  const before = await Promise.all(nodes.map((n) => io(n.url)))
  const decidedBefore = await idle(cluster.coordinator)
  const cpuBefore = nodes.map((n) => cpuSeconds(n.proc.pid))
  const spec = {
    url: cluster.coordinator.url,
    concurrency,
    total: s.count,
    bodyOf: (i: number) => bodyOf(s, i, run),
  }
  const load = await drive(s.client, spec, s.root)
  const cpuAfter = nodes.map((n) => cpuSeconds(n.proc.pid))
  // Forced writes and requests are counted once the stragglers are through, per transaction
  // the coordinator ran (wrk's last few are still in flight when the measured ones are answered;
  // a coordinator that compacts its log may list fewer than it ran, hence the floor).
  const ran = Math.max((await idle(cluster.coordinator)) - decidedBefore, load.answered)
  const after = await Promise.all(nodes.map((n) => io(n.url)))
  const delta = (i: number, k: 'flushes' | 'requests') => after[i]![k] - before[i]![k]
  let participantWrites = 0
  for (let i = 1; i < nodes.length; i++) participantWrites += delta(i, 'flushes')
  const used = [...nodes.map((_, i) => cpuAfter[i]! - cpuBefore[i]!), load.cpuSeconds]
  const names = [...NAMES.slice(0, nodes.length), 'loadgen']
  const by = (f: (cpu: number) => number) =>
    Object.fromEntries(names.map((n, i) => [n, f(used[i]!)]))
  return {
    concurrency,
    transactions: load.answered,
    perSecond: Math.round(load.answered / load.seconds),
    p50: round(load.p50),
    p99: round(load.p99),
    max: round(load.max),
    committed: load.committed,
    coordinatorWrites: round(delta(0, 'flushes') / ran, 3),
    participantWrites: round(participantWrites / (nodes.length - 1) / ran, 3),
    requests: round(delta(0, 'requests') / ran, 2),
    cpu: by((cpu) => Math.round((100 * cpu) / load.seconds)),
    cpuMicros: by((cpu) => Math.round((1e6 * cpu) / load.answered)),
  }
}

export function round(x: number, digits = 2): number {
  return Number(x.toFixed(digits))
}

/** The columns of the levels' table. */
export const COLUMNS: Column[] = [
  { label: 'conc', width: 4 },
  { label: 'txn/s', width: 6 },
  { label: 'p50 ms', width: 7 },
  { label: 'p99 ms', width: 7 },
  { label: 'max ms', width: 7 },
  { label: 'commits', width: 8 },
  { label: 'c', width: 6, group: 'fsync/txn' },
  { label: 'p', width: 6, group: 'fsync/txn' },
  { label: 'req/txn', width: 8 },
  { label: 'coord', width: 6, group: 'CPU µs/txn' },
  { label: 'p0', width: 5, group: 'CPU µs/txn' },
  { label: 'p1', width: 5, group: 'CPU µs/txn' },
  { label: 'p2', width: 5, group: 'CPU µs/txn' },
  { label: 'load', width: 5, group: 'CPU µs/txn' },
]

/** The rows as table lines (two lines of headings first); `labels` replace the concurrency. */
export function rowLines(rows: Row[], labels?: string[]): string[] {
  const columns = labels ? [{ label: 'run', width: 5 }, ...COLUMNS.slice(1)] : COLUMNS
  const cells = rows.map((r, i) => [
    labels ? labels[i]! : String(r.concurrency),
    ...[r.perSecond, r.p50, r.p99, r.max, r.committed].map(String),
    ...[r.coordinatorWrites, r.participantWrites, r.requests].map(String),
    ...Object.values(r.cpuMicros).map(String),
  ])
  return table(columns, cells)
}

/** What the columns mean, for the lines under the table. */
export const LEGEND = [
  'fsync/txn: forced writes per transaction (c: the coordinator, p: each participant)',
  'CPU µs/txn: CPU time per transaction measured (coordinator, p0-p2, the load generator)',
  'req/txn: requests to the participants per transaction (a batch on a channel counts as one)',
]
