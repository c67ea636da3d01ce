// `bun run bench` works with both load generators and both protocols: a tiny run (not a
// measurement: the figures are whatever they are) commits every transaction and reports each
// column of the table.
import { expect, test } from 'bun:test'
import { join } from 'node:path'
import { ROOT } from '../testing/nodes.ts'
import { outputOf } from '../testing/processes.ts'

const BENCH = [process.execPath, join(ROOT, 'scripts/bench.ts')]

type Row = {
  concurrency: number
  transactions: number
  perSecond: number
  committed: number
  coordinatorWrites: number
  participantWrites: number
  requests: number
  cpu: Record<string, number>
}

function bench(args: string[]) {
  return outputOf(Bun.spawn([...BENCH, ...args], { stdout: 'pipe', stderr: 'pipe' }))
}

// wrk only widens what is tested: the wrk case runs where wrk is installed, and always in CI
// (CI=true), whose .ci/run installs it, so there a missing wrk fails instead of going untested.
// Without wrk elsewhere it does not run; the fetch case still covers the bench.
const runWrk = Bun.which('wrk') !== null || Boolean(process.env.CI)

for (const client of ['fetch', 'wrk']) {
  const title = `bench with the ${client} client: all transactions commit, all columns show`
  test.if(client === 'fetch' || runWrk)(title, async () => {
    const args = ['--client', client, '--transactions', '60', '--warmup', '20']
    const run = await bench([...args, '--concurrency', '1,8', '--json'])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    const { rows, ...rest } = JSON.parse(run.stdout) as { rows: Row[] }
    expect(rest).toEqual({ protocol: '2pc', mix: 'data', ackWait: 1000, client, warmup: 20 })
    expect(rows.map((r) => r.concurrency)).toEqual([1, 8])
    for (const r of rows) {
      expect(r.transactions).toBe(60)
      expect(r.committed).toBe(60)
      expect(r.perSecond).toBeGreaterThan(0)
      expect(r.coordinatorWrites).toBeGreaterThan(0)
      expect(r.participantWrites).toBeGreaterThan(0)
      expect(r.requests).toBeGreaterThan(0)
      expect(Object.keys(r.cpu)).toEqual(['coordinator', 'p0', 'p1', 'p2', 'loadgen'])
    }
    // Alone, each transaction forces its commit decision at the coordinator (its lazy records
    // mostly ride those flushes; on a slow machine one may wait out its timer and go alone),
    // and sends six requests.
    expect(rows[0]!.coordinatorWrites).toBeGreaterThanOrEqual(1)
    expect(rows[0]!.coordinatorWrites).toBeLessThan(1.5)
    expect(rows[0]!.requests).toBe(6)
  })
}

test('bench --history: a history, a restart, and turns with a control cluster', async () => {
  const args = ['--client', 'fetch', '--history', '300', '--transactions', '20', '--retain', '40']
  const run = await bench([...args, '--json'])
  expect(run.code).toBe(0)
  // The progress goes to stderr, a line every tenth.
  expect(run.stderr).toContain('history 100% 300/300:')
  type Rss = { after: number; control: number }
  type Nodes = Record<
    string,
    { startMs: { restarted: number }; stop: { code: number }; rssBytes: Rss }
  >
  type Side = 'fresh' | 'control' | 'after'
  const { history: h } = JSON.parse(run.stdout) as {
    history: { transactions: number; listed: Record<string, number>; nodes: Nodes } & {
      runs: Record<Side, Row[]>
      turns: number[]
      ratio: number
      ratios: { control: number; fresh: number }
      steady: number
    } & Record<Side, Row>
  }
  expect(h.transactions).toBe(300)
  // Past --retain, what the coordinator lists is the retained, before and after the restart,
  // and on the control too: before its turns it ran as many unmeasured, and the warm-up (none).
  expect(h.listed).toEqual({ history: 40, restarted: 40, control: 40 })
  expect(h.steady).toBe(40)
  expect(h.runs.fresh.map((r) => r.committed)).toEqual([20, 20, 20])
  expect(h.runs.control.map((r) => r.committed)).toEqual([20, 20, 20, 20, 20])
  expect(h.runs.after.map((r) => r.committed)).toEqual([20, 20, 20, 20, 20])
  const middle = (xs: number[]) => xs.toSorted((a, b) => a - b)[(xs.length - 1) / 2]!
  // Each side's figure is its median run.
  for (const side of ['fresh', 'control', 'after'] as const) {
    expect(h[side].perSecond).toBe(middle(h.runs[side].map((r) => r.perSecond)))
  }
  // The figure is the median of the turns' ratios, each the after run over the control's.
  const turns = h.runs.after.map((a, i) => a.perSecond / h.runs.control[i]!.perSecond)
  expect(h.turns.length).toBe(5)
  h.turns.forEach((t, i) => expect(t).toBeCloseTo(turns[i]!, 2))
  expect(h.ratio).toBeCloseTo(middle(turns), 2)
  expect(h.ratios.control).toBeCloseTo(h.after.perSecond / h.control.perSecond, 2)
  expect(h.ratios.fresh).toBeCloseTo(h.after.perSecond / h.fresh.perSecond, 2)
  expect(Object.keys(h.nodes)).toEqual(['coordinator', 'p0', 'p1', 'p2'])
  for (const node of Object.values(h.nodes)) {
    expect(node.stop.code).toBe(0)
    expect(node.startMs.restarted).toBeGreaterThan(0)
    // The control's nodes are other processes, running at the end.
    expect(node.rssBytes.control).toBeGreaterThan(0)
  }
})

test('bench --protocol 3pc runs every transaction in three-phase commit', async () => {
  const args = ['--client', 'fetch', '--transactions', '30', '--warmup', '10', '--concurrency', '1']
  const run = await bench([...args, '--protocol', '3pc', '--json'])
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  const { rows, protocol } = JSON.parse(run.stdout) as { rows: Row[]; protocol: string }
  expect(protocol).toBe('3pc')
  const [alone] = rows
  expect(alone!.committed).toBe(30)
  // Alone, each transaction sends nine requests (prepare, precommit and commit to each of
  // three) and forces two records at the coordinator: precommit, then commit.
  expect(alone!.requests).toBe(9)
  expect(alone!.coordinatorWrites).toBeGreaterThanOrEqual(2)
  expect(alone!.coordinatorWrites).toBeLessThan(2.5)
})

test('bench --in-process: every node in one process, every transaction committed', async () => {
  const args = ['--in-process', '--transactions', '40', '--warmup', '10', '--concurrency', '1,8']
  const run = await bench([...args, '--json'])
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  type InProcessRow = Omit<Row, 'cpu'> & { cpuMicros: number }
  const { inProcess } = JSON.parse(run.stdout) as { inProcess: { rows: InProcessRow[] } }
  expect(inProcess).toMatchObject({ protocol: '2pc', mix: 'data', ackWait: 1000, warmup: 10 })
  expect(inProcess.rows.map((r) => [r.concurrency, r.transactions])).toEqual([
    [1, 40],
    [8, 40],
  ])
  for (const r of inProcess.rows) {
    expect(r.committed).toBe(40)
    expect(r.perSecond).toBeGreaterThan(0)
    expect(r.cpuMicros).toBeGreaterThan(0)
  }
  // Alone, a transaction goes through the same batches and forced writes as between processes:
  // six batches (prepare and commit to each participant), the decision forced (lazy records
  // riding it, or on a slow machine now and then waiting out their timer), and at each
  // participant its vote and its outcome, each answered only once durable.
  const [alone] = inProcess.rows
  expect(alone!.requests).toBe(6)
  expect(alone!.coordinatorWrites).toBeGreaterThanOrEqual(1)
  expect(alone!.coordinatorWrites).toBeLessThan(1.5)
  expect(alone!.participantWrites).toBe(2)
})

test('bench --in-process --ack-wait 0 waits for the commits its clients left behind', async () => {
  // Answered at the commit point, the last clients leave their commits on the way: the level
  // waits for them (they are its cost), and the nodes close only after, with nothing to report.
  const args = ['--in-process', '--ack-wait', '0', '--transactions', '60', '--warmup', '0']
  const run = await bench([...args, '--concurrency', '16', '--json'])
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  const { inProcess } = JSON.parse(run.stdout) as { inProcess: { rows: Row[] } }
  expect(inProcess.rows.map((r) => r.committed)).toEqual([60])
})

test('bench refuses a bad flag with one line and status 2, before starting anything', async () => {
  const run = await bench(['--client', 'curl'])
  expect(run.code).toBe(2)
  expect(run.stderr.trim()).toBe('error: invalid --client "curl": expected fetch, wrk')
  const alone = await bench(['--in-process', '--client', 'fetch'])
  expect(alone.code).toBe(2)
  expect(alone.stderr.trim()).toBe(
    'error: --in-process runs every node in this process: drop --client',
  )
  const protocol = await bench(['--protocol', '4pc'])
  expect(protocol.code).toBe(2)
  expect(protocol.stderr.trim()).toBe('error: invalid --protocol "4pc": expected 2pc, 3pc')
})

test.each(['2pc', '3pc'])('bench --classic times the classic exercise in %s', async (protocol) => {
  // Each run checks t1=commit t2=abort in decision.txt, and fails the bench if not. Without
  // --protocol the coordinator runs as the classic exercise does: with no flag at all.
  const flag = protocol === '3pc' ? ['--protocol', '3pc'] : []
  const run = await bench(['--classic', '2', ...flag, '--json'])
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  const { classic } = JSON.parse(run.stdout) as {
    classic: { runs: number; times: number[]; min: number; median: number; max: number }
  }
  expect(classic).toMatchObject({ protocol, runs: 2 })
  expect(classic.times).toHaveLength(2)
  expect(classic.min).toBeLessThanOrEqual(classic.median)
  expect(classic.median).toBeLessThanOrEqual(classic.max)
  expect(classic.min).toBeGreaterThan(0)
})
