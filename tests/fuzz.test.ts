// Property-based fuzzing of every endpoint of both nodes, in process through their real Hono
// apps (testing/fuzz/): each generated request must get a 4xx with {"error": string} or a
// documented 200, never a 5xx, never a stack trace, and a refused request (or a read) must
// leave the node's state as it was. FUZZ_SEED=N replays a run; FUZZ_SCALE=N runs N times more.
import { afterAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { cleanup, tempDir } from '../testing/processes.ts'
import { ID_POOL, coordinatorRequest, waitsOn } from '../testing/fuzz/coordinator-requests.ts'
import { participantRequest } from '../testing/fuzz/participant-requests.ts'
import {
  Fuzzer,
  Tally,
  capturingConsole,
  leakedLine,
  runTogether,
  send,
  signer,
  type Sign,
} from '../testing/fuzz/harness.ts'
import {
  coordinatorTarget,
  participantTarget,
  servedParticipant,
  type Target,
} from '../testing/fuzz/targets.ts'
import type { FuzzRequest } from '../testing/fuzz/requests.ts'

const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const scale = Number(process.env.FUZZ_SCALE ?? 1)
const tally = new Tally()
const captured: string[] = []
const closers: (() => Promise<void>)[] = []

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  await cleanup()
})

/** Runs `runs` requests from `requests` against `target` one at a time, then about `runs / 5`
 * more in groups of 2 to 8 sent at once; a failure is shrunk by fast-check and reported with
 * its request (and FUZZ_SEED replays it). */
async function fuzz(
  target: Target,
  requests: fc.Arbitrary<FuzzRequest>,
  runs: number,
  sign?: Sign,
) {
  const fuzzer = new Fuzzer(target, tally, sign)
  const options = { seed, includeErrorInReport: true }
  const together = fc.array(requests, { minLength: 2, maxLength: 8 })
  const [, lines] = await capturingConsole(async () => {
    await fc.assert(
      fc.asyncProperty(requests, (r) => fuzzer.run(r)),
      {
        ...options,
        numRuns: Math.round(runs * scale),
      },
    )
    await fc.assert(
      fc.asyncProperty(together, (rs) => runTogether(fuzzer, rs)),
      {
        ...options,
        numRuns: Math.round((runs * scale) / 25),
      },
    )
  })
  captured.push(...lines)
  // The node still answers once the run is over.
  const health = await send(target.app, { method: 'GET', path: '/healthz', headers: {} }, sign)
  expect(health.status).toBe(200)
  expect(JSON.parse(health.text)).toEqual({ ok: true })
}

/** The suite for a cluster with `secret` (null: none), `share` of the full number of cases.
 * With a secret, most requests carry a proof of it and some carry none or a forged one. */
function fuzzSuite(secret: string | null, share: number) {
  const sign = secret === null ? undefined : signer(secret)
  const runs = (n: number) => Math.round(n * share)
  test('a participant', async () => {
    const target = await participantTarget(tempDir('fuzz-participant-'), secret)
    closers.push(() => target.close())
    await fuzz(target, participantRequest, runs(6000), sign)
  }, 120_000)

  test('the coordinator service, one participant up and one unreachable', async () => {
    const live = await servedParticipant(tempDir('fuzz-live-'), secret)
    closers.push(() => live.close())
    const dead = 'http://127.0.0.1:1'
    const cluster = { participants: [live.url, dead], names: { live: live.url, dead } }
    const target = await coordinatorTarget(tempDir('fuzz-coordinator-'), cluster, secret)
    closers.push(() => target.close())
    const slowIds = ID_POOL.slice(0, 6)
    const requests = coordinatorRequest(cluster).filter((r) => !waitsOn(r, cluster, dead, slowIds))
    await fuzz(target, requests, runs(1500), sign)
  }, 120_000)

  test('the coordinator service, two participants up', async () => {
    const up = [
      await servedParticipant(tempDir('fuzz-p0-'), secret),
      await servedParticipant(tempDir('fuzz-p1-'), secret),
    ]
    for (const p of up) closers.push(() => p.close())
    const names = { zero: up[0]!.url, one: up[1]!.url }
    const cluster = { participants: up.map((p) => p.url), names }
    const target = await coordinatorTarget(tempDir('fuzz-coordinator-'), cluster, secret)
    closers.push(() => target.close())
    await fuzz(target, coordinatorRequest(cluster), runs(2000), sign)
  }, 120_000)

  test('the coordinator service without participants', async () => {
    const cluster = { participants: [], names: {} }
    const target = await coordinatorTarget(tempDir('fuzz-lonely-'), cluster, secret)
    closers.push(() => target.close())
    await fuzz(target, coordinatorRequest(cluster), runs(700), sign)
    expect(target.node.txns.size).toBe(0)
  }, 60_000)
}

describe('fuzz, without credentials', () => fuzzSuite(null, 1))
describe('fuzz, with a cluster secret', () => fuzzSuite('fuzz-secret-0123456789abcdef', 0.5))

test('fuzz: every case answered right', () => {
  const seen = `statuses ${tally.breakdown()}; ${captured.length} lines on stderr`
  console.log(`${tally.line()} (seed ${seed}; ${seen})`)
  expect(leakedLine(captured)).toBeNull()
  expect(tally.failed).toBe(0)
  expect(tally.changes).toBe(0)
  expect(tally.cases).toBeGreaterThanOrEqual(15_000 * scale)
})
