// GET /metrics on every node: Prometheus's text format through prom-client, with the counters
// moving as transactions run; the benchmarks' JSON at /metrics.json and on request.
import { afterEach, expect, test } from 'bun:test'
import {
  cleanup,
  getJson,
  postJson,
  startCoordinatorService,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'

afterEach(cleanup)

type Sample = { name: string; labels: Record<string, string>; value: number }

/** The samples of a text exposition (comments and blank lines skipped). */
function samples(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/i.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[k!] = v!
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** The value of `name` whose labels include `labels` (0 when there is none). */
function valueOf(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hit = all.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  return hit?.value ?? 0
}

async function scrape(url: string): Promise<{ text: string; all: Sample[]; type: string }> {
  const response = await fetch(`${url}/metrics`)
  expect(response.status).toBe(200)
  const text = await response.text()
  return { text, all: samples(text), type: response.headers.get('content-type') ?? '' }
}

const NAMES = [
  'twophase_transactions_total counter',
  'twophase_transaction_duration_seconds histogram',
  'twophase_transactions_in_flight gauge',
  'twophase_in_doubt gauge',
  'twophase_heuristic_total counter',
  'twophase_log_flushes_total counter',
  'twophase_messages_total counter',
]

test('every node shows its twophase_* metrics, and they move with each transaction', async () => {
  const p0 = await startParticipant(tempDir())
  const p1 = await startParticipant(tempDir())
  const coordinator = await startCoordinatorService(tempDir(), {
    participants: [p0.url, p1.url],
  })
  const before = await scrape(coordinator.url)
  expect(before.type).toStartWith('text/plain')
  for (const line of NAMES) expect(before.text).toContain(`# TYPE ${line}`)
  expect(valueOf(before.all, 'twophase_transactions_total', { decision: 'commit' })).toBe(0)
  const participantBefore = await scrape(p0.url)
  expect(participantBefore.text).toContain('# TYPE twophase_locks_held gauge')

  const set = { id: 'm1', ops: [{ op: 'set', key: 'k', value: 1 }] }
  expect((await postJson(`${coordinator.url}/transactions`, set)).body.decision).toBe('commit')
  // A check that fails votes no: the transaction aborts.
  const check = { id: 'm2', ops: [{ op: 'check', key: 'k', equals: 2 }] }
  expect((await postJson(`${coordinator.url}/transactions`, check)).body.decision).toBe('abort')

  const after = await scrape(coordinator.url)
  expect(valueOf(after.all, 'twophase_transactions_total', { decision: 'commit' })).toBe(1)
  expect(valueOf(after.all, 'twophase_transactions_total', { decision: 'abort' })).toBe(1)
  expect(valueOf(after.all, 'twophase_transaction_duration_seconds_count')).toBe(2)
  expect(valueOf(after.all, 'twophase_messages_total', { type: 'prepare' })).toBe(4)
  expect(valueOf(after.all, 'twophase_messages_total', { type: 'commit' })).toBe(2)
  expect(valueOf(after.all, 'twophase_log_flushes_total')).toBeGreaterThan(0)
  expect(valueOf(after.all, 'twophase_transactions_in_flight', { phase: 'preparing' })).toBe(0)

  const participant = await scrape(p0.url)
  expect(valueOf(participant.all, 'twophase_transactions_total', { decision: 'commit' })).toBe(1)
  expect(valueOf(participant.all, 'twophase_messages_total', { type: 'prepare' })).toBe(2)
  expect(valueOf(participant.all, 'twophase_locks_held')).toBe(0)
  expect(valueOf(participant.all, 'twophase_log_flushes_total')).toBeGreaterThan(0)
})

test('a prepared transaction holds its locks in twophase_locks_held and in flight', async () => {
  const p0 = await startParticipant(tempDir())
  const prepare = { txn: 'held', ops: [{ op: 'set', key: 'a', value: 1 }] }
  expect((await postJson(`${p0.url}/prepare`, prepare)).status).toBe(200)
  const { all } = await scrape(p0.url)
  expect(valueOf(all, 'twophase_locks_held')).toBe(1)
  expect(valueOf(all, 'twophase_transactions_in_flight', { phase: 'prepared' })).toBe(1)
  expect(valueOf(all, 'twophase_messages_total', { type: 'prepare' })).toBe(1)
  await postJson(`${p0.url}/abort`, { txn: 'held' })
  const released = (await scrape(p0.url)).all
  expect(valueOf(released, 'twophase_locks_held')).toBe(0)
  expect(valueOf(released, 'twophase_transactions_total', { decision: 'abort' })).toBe(1)
})

test('the counters the benchmarks read stay JSON at /metrics.json and on request', async () => {
  const p0 = await startParticipant(tempDir())
  const coordinator = await startCoordinatorService(tempDir(), { participants: [p0.url] })
  await postJson(`${coordinator.url}/transactions`, { id: 'j1' })
  for (const node of [p0, coordinator]) {
    const json = await getJson(`${node.url}/metrics.json`)
    expect(json).toEqual({ flushes: expect.any(Number), requests: expect.any(Number) })
    expect(json.requests).toBeGreaterThan(0)
    const asked = await fetch(`${node.url}/metrics`, { headers: { accept: 'application/json' } })
    expect(await asked.json()).toEqual(json)
  }
})

test('the duration histogram counts each observation in its bucket (le inclusive)', async () => {
  const { NodeMetrics } = await import('../lib/node/metrics.ts')
  const { exposition } = await import('../lib/node/prometheus.ts')
  const sources = { flushes: () => 0, inFlight: () => ({}), inDoubt: () => 0 }
  const m = new NodeMetrics('coordinator', [], sources)
  for (const seconds of [0.0005, 0.005, 0.006, 30]) m.observe(seconds)
  const all = samples((await exposition(m)).text)
  const bucket = (le: string) =>
    valueOf(all, 'twophase_transaction_duration_seconds_bucket', { le })
  expect([bucket('0.001'), bucket('0.005'), bucket('0.01'), bucket('10'), bucket('+Inf')]).toEqual([
    1, 2, 3, 3, 4,
  ])
  expect(valueOf(all, 'twophase_transaction_duration_seconds_sum')).toBeCloseTo(30.0115)
  expect(valueOf(all, 'twophase_locks_held')).toBe(0) // a coordinator holds no locks: no series
  expect(all.some((s) => s.name === 'twophase_locks_held')).toBe(false)
})
