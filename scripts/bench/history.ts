// `bun run bench -- --history N`: what N transactions leave behind. A fresh cluster's throughput
// (short runs at concurrency 64), then N transactions as fast as they go (concurrency 256),
// then every node stopped with SIGTERM and started again on the same directories and ports,
// timed from spawn to healthy. Beside it a control: a new cluster on directories of its own.
// Both run past their retention first (so both fold), then take turns at the same short runs,
// so that the machine's drift from one minute to the next falls on both alike; the figure is
// the median of the turns' ratios. Also shown: start-up time, resident memory and the nodes'
// files on disk, before and after.
import { join } from 'node:path'
import { wrap } from '../../lib/cli/flags.ts'
import { DEFAULT_RETAIN } from '../../lib/node/retention.ts'
import type { Node } from '../../testing/nodes.ts'
import {
  filesOf,
  nodeBytes,
  notableFiles,
  rssBytes,
  startCluster,
  stopCluster,
  type Stopped,
} from './cluster.ts'
import {
  LEGEND,
  NAMES,
  bodyOf,
  idle,
  level,
  nodesOf,
  round,
  rowLines,
  warm,
  type Cluster,
  type Row,
  type Settings,
} from './level.ts'
import { drive } from './load.ts'
import { megabytes, table, type Column } from './table.ts'

/** How many keys the history writes, over and over. */
const KEYS = 10_000

/** The concurrency of the short runs, and of the history. */
export const SHORT = 64
export const PUSH = 256
/** Short runs on each side: a run of a few seconds on a shared machine spreads by more than
 * the difference it is meant to show, so each side's figure is the median of these. */
export const SHORT_RUNS = 3
/** Turns of the restarted cluster and the control, one short run each, alternating. */
export const TURNS = 5

/** One node's figures. */
type NodeFigures = {
  startMs: { fresh: number; restarted: number }
  stop: Stopped
  /** RSS: after the fresh runs, after the history, just restarted, after the turns, and the
   * control's node of the same name after the turns. */
  rssBytes: { fresh: number; history: number; restarted: number; after: number; control: number }
  diskBytes: { history: number; stopped: number; end: number }
  fileBytes: { history: Record<string, number>; end: Record<string, number> }
}

export type History = {
  transactions: number
  concurrency: number
  seconds: number
  perSecond: number
  /** Decided transactions GET /status lists: after the history, after the restart, and on the
   * control before its turns. */
  listed: { history: number; restarted: number; control: number }
  /** Unmeasured transactions on each of the two clusters before their turns. */
  steady: number
  /** The median short run of each side (by throughput), and every one of them: the fresh
   * cluster before the history, the control, and the restarted cluster after the history. */
  fresh: Row
  control: Row
  after: Row
  runs: { fresh: Row[]; control: Row[]; after: Row[] }
  /** After over control, turn by turn, and their median: the figure the target is judged by. */
  turns: number[]
  ratio: number
  /** The medians' ratios: after over control, and after over the fresh cluster before. */
  ratios: { control: number; fresh: number }
  nodes: Record<string, NodeFigures>
}

type Say = (line: string) => void

/** What the nodes hold at one point: each one's RSS (none once stopped) and files. */
type Snapshot = { rss: number[]; files: Record<string, number>[] }

/** Runs the whole procedure with the nodes it starts in `started` (for the caller to clean up);
 * `retained` is the nodes' `--retain`. */
export async function history(
  s: Settings,
  n: number,
  started: Node[],
  say: Say,
  retained = DEFAULT_RETAIN,
) {
  const snapshot = (cluster?: Cluster): Snapshot => ({
    rss: cluster ? nodesOf(cluster).map((node) => rssBytes(node.proc.pid)) : [],
    files: NAMES.map((name) => filesOf(join(s.root, name))),
  })
  const fresh = await startCluster(s, started)
  const freshRuns = await shortRuns(s, fresh.cluster)
  const afterFresh = snapshot(fresh.cluster)
  const push = await pushHistory(s, fresh.cluster, n, snapshot, say)
  const listedHistory = await idle(fresh.cluster.coordinator)
  const afterHistory = snapshot(fresh.cluster)
  const stops = await stopCluster(fresh.cluster)
  const stopped = snapshot()
  const ports = nodesOf(fresh.cluster).map((node) => node.port)
  const again = await startCluster(s, started, ports)
  const listedRestarted = await idle(again.cluster.coordinator)
  const restarted = snapshot(again.cluster)
  const control = await startCluster({ ...s, root: join(s.root, 'control') }, started)
  const steady = retained + s.warmup
  const { listedControl, ...turns } = await takeTurns(s, control.cluster, again.cluster, steady)
  const end = snapshot(again.cluster)
  const controlEnd = snapshot(control.cluster)
  const figures = (i: number): NodeFigures => ({
    startMs: { fresh: round(fresh.startMs[i]!, 1), restarted: round(again.startMs[i]!, 1) },
    stop: { ...stops[i]!, ms: round(stops[i]!.ms, 1) },
    rssBytes: {
      ...{ fresh: afterFresh.rss[i]!, history: afterHistory.rss[i]! },
      ...{ restarted: restarted.rss[i]!, after: end.rss[i]!, control: controlEnd.rss[i]! },
    },
    diskBytes: {
      ...{ history: nodeBytes(afterHistory.files[i]!), stopped: nodeBytes(stopped.files[i]!) },
      end: nodeBytes(end.files[i]!),
    },
    fileBytes: { history: afterHistory.files[i]!, end: end.files[i]! },
  })
  const nodes = Object.fromEntries(NAMES.map((name, i) => [name, figures(i)]))
  const listed = { history: listedHistory, restarted: listedRestarted, control: listedControl }
  const runs = { fresh: freshRuns, ...turns }
  return { ...push, listed, steady, ...compared(runs), nodes } satisfies History
}

type Runs = History['runs']

/** Each side's median run, the turns' ratios and their median, and the medians' ratios. */
function compared(runs: Runs) {
  const [fresh, control, after] = [median(runs.fresh), median(runs.control), median(runs.after)]
  const turns = runs.after.map((a, i) => round(a.perSecond / runs.control[i]!.perSecond, 3))
  const ratios = {
    control: round(after.perSecond / control.perSecond, 3),
    fresh: round(after.perSecond / fresh.perSecond, 3),
  }
  const ratio = turns.toSorted((a, b) => a - b)[Math.floor(turns.length / 2)]!
  return { fresh, control, after, runs, turns, ratio, ratios }
}

/** TURNS short runs on each of the two clusters, the control first in every turn, after
 * `steady` unmeasured transactions on each: the nodes' retention (`--retain`) and `s.warmup`.
 * A node folds each transaction that finishes once it retains that many, and not before: a
 * control that had not filled its retention would be spared that work, which the restarted
 * cluster, and any cluster past its first `--retain` transactions, does all the time. */
async function takeTurns(s: Settings, control: Cluster, after: Cluster, steady: number) {
  const controlSettings = { ...s, root: join(s.root, 'control') }
  await warm(controlSettings, control, steady, SHORT)
  await warm(s, after, steady, SHORT)
  const listedControl = await idle(control.coordinator)
  const turns = { listedControl, control: [] as Row[], after: [] as Row[] }
  for (let i = 0; i < TURNS; i++) {
    turns.control.push(await level(controlSettings, control, SHORT))
    turns.after.push(await level(s, after, SHORT))
  }
  return turns
}

/** The fresh cluster's short runs: `s.warmup` unmeasured transactions first when asked for,
 * then SHORT_RUNS runs of `s.count`. */
async function shortRuns(s: Settings, cluster: Cluster): Promise<Row[]> {
  if (s.warmup > 0) await warm(s, cluster, s.warmup, SHORT)
  const rows: Row[] = []
  for (let i = 0; i < SHORT_RUNS; i++) rows.push(await level(s, cluster, SHORT))
  return rows
}

/** The run of median throughput. */
function median(rows: readonly Row[]): Row {
  return rows.toSorted((a, b) => a.perSecond - b.perSecond)[Math.floor(rows.length / 2)]!
}

/** `n` transactions at concurrency 256 in tenths, each tenth's throughput and the nodes' memory
 * said as it ends. */
async function pushHistory(
  s: Settings,
  cluster: Cluster,
  n: number,
  snapshot: (cluster: Cluster) => Snapshot,
  say: Say,
) {
  const tenth = Math.ceil(n / 10)
  const started = performance.now()
  let done = 0
  for (let k = 0; done < n; k++) {
    const run = `h${k}-${Date.now().toString(36)}`
    const spec = {
      url: cluster.coordinator.url,
      concurrency: PUSH,
      total: Math.min(tenth, n - done),
      // The keys cycle through KEYS, so the data stays the size a fresh cluster's runs give
      // it: what grows is the history alone.
      bodyOf: (i: number) => bodyOf(s, i, run, `k:${(done + i) % KEYS}`),
    }
    const load = await drive(s.client, spec, s.root)
    done += spec.total
    const elapsed = (performance.now() - started) / 1000
    const rss = snapshot(cluster).rss.map((b) => Math.round(b / 2 ** 20))
    say(
      `history ${String(Math.round((100 * done) / n)).padStart(3)}% ${done}/${n}: ` +
        `${Math.round(spec.total / load.seconds)} txn/s, ${elapsed.toFixed(1)} s in all, ` +
        `RSS MB coord ${rss[0]} p0 ${rss[1]} p1 ${rss[2]} p2 ${rss[3]}`,
    )
  }
  const seconds = (performance.now() - started) / 1000
  const perSecond = Math.round(n / seconds)
  return { transactions: n, concurrency: PUSH, seconds: round(seconds, 1), perSecond }
}

const NODE_COLUMNS: Column[] = [
  { label: 'node', width: 11, left: true },
  { label: 'fresh', width: 6, group: 'start ms' },
  { label: 'again', width: 6, group: 'start ms' },
  { label: 'stop ms', width: 7 },
  { label: 'fresh', width: 7, group: 'RSS MB' },
  { label: 'history', width: 7, group: 'RSS MB' },
  { label: 'again', width: 7, group: 'RSS MB' },
  { label: '+turns', width: 7, group: 'RSS MB' },
  { label: 'control', width: 7, group: 'RSS MB' },
  { label: 'history', width: 8, group: 'disk MB' },
  { label: 'stopped', width: 8, group: 'disk MB' },
  { label: 'end', width: 8, group: 'disk MB' },
]

/** The figures as lines of text. */
export function historyLines(h: History, s: Settings): string[] {
  const lines = [
    `history: ${h.transactions} transactions at concurrency ${h.concurrency} in ${h.seconds} s ` +
      `(${h.perSecond} txn/s)`,
    `GET /status lists ${h.listed.history} decided transactions after the history, ` +
      `${h.listed.restarted} after the restart, ${h.listed.control} on the control`,
    `throughput at concurrency ${SHORT}, runs of ${s.count} transactions` +
      `: ${SHORT_RUNS} on the fresh cluster` +
      (s.warmup > 0 ? ` (after ${s.warmup} unmeasured)` : '') +
      `, then ${TURNS} turns of the control and of the cluster restarted after the history ` +
      `(after ${h.steady} unmeasured on each: the retention and the warm-up)`,
    ...rowLines([...h.runs.fresh, ...interleaved(h)], runLabels(h)),
    `after/control, turn by turn: ${h.turns.join(', ')}; median ${h.ratio}`,
    `after/control, medians: ${h.ratios.control} (${h.after.perSecond} / ` +
      `${h.control.perSecond} txn/s); after/fresh: ${h.ratios.fresh} (${h.fresh.perSecond} txn/s)`,
    '',
    ...table(NODE_COLUMNS, Object.entries(h.nodes).map(nodeCells)),
  ]
  return [...lines, ...notes(h)]
}

/** The turns' rows in the order they ran: control, then after, turn by turn. */
function interleaved(h: History): Row[] {
  return h.runs.after.flatMap((after, i) => [h.runs.control[i]!, after])
}

function runLabels(h: History): string[] {
  const turns = h.runs.after.flatMap((_, i) => [`c${i + 1}`, `a${i + 1}`])
  return [...h.runs.fresh.map((_, i) => `f${i + 1}`), ...turns]
}

function nodeCells([name, f]: [string, NodeFigures]): string[] {
  const ms = (x: number) => String(Math.round(x))
  const mb = (bytes: number) => String(Math.round(bytes / 2 ** 20))
  return [
    name,
    ...[f.startMs.fresh, f.startMs.restarted, f.stop.ms].map(ms),
    ...[f.rssBytes.fresh, f.rssBytes.history, f.rssBytes.restarted].map(mb),
    ...[f.rssBytes.after, f.rssBytes.control].map(mb),
    ...[f.diskBytes.history, f.diskBytes.stopped, f.diskBytes.end].map(megabytes),
  ]
}

/** What the node table's columns mean, each node's files at the end, and unclean stops. */
function notes(h: History): string[] {
  const lines = [
    `f1-f${SHORT_RUNS}: the short runs on the fresh cluster, before the history;`,
    `  c1-c${TURNS}, a1-a${TURNS}: the turns of the control (a new cluster beside it) and of`,
    '  the cluster restarted after the history',
    'start ms: from spawn until GET /healthz answers, fresh and again (the same directories)',
    'stop ms: from SIGTERM to exit, after the history',
    'RSS MB: after the fresh runs, after the history, just started again, after the turns; and',
    "  the control's node after the turns",
    "disk MB: the node's participant.db*, coordinator.db*, state.txt and decision.txt after the",
    '  history, once stopped, and at the end',
    ...LEGEND,
    "files at the end (MB; the nodes' own and any other of 64 KiB or more):",
  ]
  for (const [name, f] of Object.entries(h.nodes)) {
    const files = notableFiles(f.fileBytes.end).map(([file, size]) => `${file} ${megabytes(size)}`)
    lines.push(...wrap(`  ${name}: ${files.join(', ')}`, 4))
    if (f.stop.code !== 0) {
      lines.push(`  ${name} did not stop cleanly: code ${f.stop.code}, signal ${f.stop.signal}`)
    }
  }
  return lines
}
