// Deterministic simulation of whole clusters of the real nodes (testing/sim): thousands of seeds
// of crashes, lost, duplicated and reordered messages, partitions, and disks that stall or fail,
// with the atomic-commit properties checked after every step. `SEED=n bun test
// tests/simulation.test.ts` replays one seed with its trace; `bun run simulate` runs more.
import { describe, expect, test } from 'bun:test'
import { BROKEN, BROKEN_3PC } from '../testing/sim/broken.ts'
import { report, runSeed, type SeedResult } from '../testing/sim/run.ts'
import { NO_FAULTS } from '../testing/sim/workload.ts'

const SEEDS = 2_000
const replay = Bun.env.SEED ? Number(Bun.env.SEED) : null

function expectClean(result: SeedResult): void {
  if (!result.ok) console.error(report(result))
  expect(result.violation).toBeNull()
}

if (replay !== null) {
  test(`replay of seed ${replay}`, async () => {
    const result = await runSeed(replay, { fullTrace: true })
    console.log(result.trace.join('\n'))
    expectClean(result)
  })
}

const UNDER_FAULTS = `${SEEDS} seeds under faults keep agreement, validity, termination, the bank`

test(
  UNDER_FAULTS,
  async () => {
    const totals = { crashes: 0, drops: 0, duplicates: 0, partitions: 0, diskFaults: 0 }
    // Folded: transactions checkpointed by nodes that keep two finished ones (seeds 1 and 3
    // modulo 5), under the same faults.
    const more = { failedWrites: 0, stalls: 0, commits: 0, aborts: 0, folded: 0 }
    const started = performance.now()
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runSeed(seed)
      expectClean(result)
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) {
        totals[key] += result.counts[key]
      }
      more.failedWrites += result.counts.failedWrites
      more.stalls += result.counts.stalls
      more.folded += result.folded
      for (const d of Object.values(result.decisions))
        more[d === 'commit' ? 'commits' : 'aborts'] += 1
    }
    const seconds = (performance.now() - started) / 1000
    console.log(`simulated ${SEEDS} seeds in ${seconds.toFixed(1)} s:`, { ...totals, ...more })
    // The faults really happened, disk faults included, and both outcomes occurred.
    for (const n of [...Object.values(totals), ...Object.values(more)]) expect(n).toBeGreaterThan(0)
  },
  240_000,
)

const NON_TRIVIAL = 'without faults, every transaction on which all voted yes commits (AC4)'

test(NON_TRIVIAL, async () => {
  let committed = 0
  for (let seed = 1; seed <= 300; seed++) {
    const result = await runSeed(seed, { faults: NO_FAULTS })
    expectClean(result)
    for (const txn of result.allYes) expect(`${txn} ${result.decisions[txn]}`).toBe(`${txn} commit`)
    committed += result.allYes.length
  }
  expect(committed).toBeGreaterThan(100)
})

test('the trace of a seed is the same on every run (golden)', async () => {
  const first = await runSeed(7, { fullTrace: true })
  const second = await runSeed(7, { fullTrace: true })
  expect(second.trace).toEqual(first.trace)
  expect(first.trace.join('\n')).toMatchSnapshot()
})

// Seed 30: the coordinator's disk fills while tx0's decision is being written. A shell that
// dropped the failed write left tx0 undecided for ever, every participant prepared and holding
// its locks, until a restart; the real nodes write the decision again once the disk is back.
test('a decision write that fails on a full disk is retried, not dropped (seed 30)', async () => {
  const real = await runSeed(30, { fullTrace: true })
  expectClean(real)
  expect(real.trace.some((l) => l.includes('decision of tx0 not written'))).toBe(true)
  expect(real.decisions.tx0).toBeDefined()
  const wedged = await runSeed(30, { protocol: BROKEN['drops-failed-writes'] })
  expect(wedged.violation).toContain('termination (AC5)')
})

describe('the simulator catches a deliberately broken protocol or shell', () => {
  test.each(Object.keys(BROKEN))(
    '%s',
    async (name) => {
      let caught: SeedResult | null = null
      for (let seed = 1; seed <= 2000 && caught === null; seed++) {
        const result = await runSeed(seed, { protocol: BROKEN[name] })
        if (!result.ok) caught = result
      }
      expect(caught).not.toBeNull()
      console.log(`${name} caught:\n${report(caught!, name)}`)
    },
    120_000,
  )
})

const SEEDS_3PC = 1_000

test(
  `three-phase commit: ${SEEDS_3PC} seeds of 3-5 participants under faults and split partitions, ` +
    'half with the coordinator dead for good at the end, keep every invariant and finish',
  async () => {
    const totals = { partitions: 0, crashes: 0, commits: 0, aborts: 0 }
    for (let seed = 1; seed <= SEEDS_3PC; seed++) {
      const result = await runSeed(seed, { threePhase: true })
      if (!result.ok) console.error(report(result, '', true))
      expect(result.violation).toBeNull()
      totals.partitions += result.counts.partitions
      totals.crashes += result.counts.crashes
      // With the coordinator dead, what the participants decided is what counts.
      for (const d of Object.values(result.decisions))
        totals[d === 'commit' ? 'commits' : 'aborts'] += 1
    }
    console.log(`simulated ${SEEDS_3PC} three-phase seeds:`, totals)
    for (const n of Object.values(totals)) expect(n).toBeGreaterThan(0)
  },
  240_000,
)

describe('the simulator catches a broken three-phase commit', () => {
  test.each(Object.keys(BROKEN_3PC))(
    '%s',
    async (name) => {
      let caught: SeedResult | null = null
      for (let seed = 1; seed <= 2000 && caught === null; seed++) {
        const result = await runSeed(seed, { protocol: BROKEN_3PC[name], threePhase: true })
        if (!result.ok) caught = result
      }
      expect(caught).not.toBeNull()
      console.log(`${name} caught:\n${report(caught!, name, true)}`)
    },
    120_000,
  )
})

// Seed 11: the textbook termination (no quorum) breaks atomicity. p4 is cut off after its yes;
// the four others precommit and commit; p4, in doubt and still cut off, reaches nobody and
// aborts on its own. E3PC's p4 waits for a quorum instead, and learns the commit.
test('textbook termination decides alone: agreement broken (seed 11); not in E3PC', async () => {
  const textbook = await runSeed(11, {
    protocol: BROKEN_3PC['terminates-without-quorum'],
    threePhase: true,
  })
  expect(textbook.violation).toContain('agreement (AC1): p4 decided tx2 abort')
  expectClean(await runSeed(11, { threePhase: true }))
})
