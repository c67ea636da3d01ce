// Deterministic simulation of whole clusters (testing/sim): thousands of seeds of crashes, lost,
// duplicated and reordered messages and partitions, with the atomic-commit properties checked
// after every step. `SEED=n bun test tests/simulation.test.ts` replays one seed with its trace.
import { describe, expect, test } from 'bun:test'
import { BROKEN } from '../testing/sim/broken.ts'
import { report, runSeed, type SeedResult } from '../testing/sim/run.ts'
import { NO_FAULTS } from '../testing/sim/workload.ts'

const SEEDS = 10_000
const replay = Bun.env.SEED ? Number(Bun.env.SEED) : null

function expectClean(result: SeedResult): void {
  if (!result.ok) console.error(report(result))
  expect(result.violation).toBeNull()
}

if (replay !== null) {
  test(`replay of seed ${replay}`, () => {
    const result = runSeed(replay, { fullTrace: true })
    console.log(result.trace.join('\n'))
    expectClean(result)
  })
}

test(`${SEEDS} seeds under faults keep agreement, validity, termination and the bank total`, () => {
  const totals = { crashes: 0, drops: 0, duplicates: 0, partitions: 0, commits: 0, aborts: 0 }
  const started = performance.now()
  for (let seed = 1; seed <= SEEDS; seed++) {
    const result = runSeed(seed)
    expectClean(result)
    for (const key of ['crashes', 'drops', 'duplicates', 'partitions'] as const) {
      totals[key] += result.counts[key]
    }
    for (const d of Object.values(result.decisions))
      totals[d === 'commit' ? 'commits' : 'aborts'] += 1
  }
  const seconds = (performance.now() - started) / 1000
  console.log(
    `simulated ${SEEDS} seeds in ${seconds.toFixed(1)} s: ${totals.crashes} crashes, ` +
      `${totals.drops} drops, ${totals.duplicates} duplicates, ${totals.partitions} partitions; ` +
      `${totals.commits} commits, ${totals.aborts} aborts`,
  )
  // The faults really happened, and both outcomes occurred.
  for (const n of Object.values(totals)) expect(n).toBeGreaterThan(0)
}, 120_000)

test('without faults, every transaction on which all voted yes commits (non-triviality, AC4)', () => {
  let committed = 0
  for (let seed = 1; seed <= 300; seed++) {
    const result = runSeed(seed, { faults: NO_FAULTS })
    expectClean(result)
    for (const txn of result.allYes) expect(`${txn} ${result.decisions[txn]}`).toBe(`${txn} commit`)
    committed += result.allYes.length
  }
  expect(committed).toBeGreaterThan(100)
})

test('the trace of a seed is the same on every run (golden)', () => {
  const first = runSeed(7, { fullTrace: true })
  const second = runSeed(7, { fullTrace: true })
  expect(second.trace).toEqual(first.trace)
  expect(first.trace.join('\n')).toMatchSnapshot()
})

describe('the simulator catches a deliberately broken protocol', () => {
  test.each(Object.keys(BROKEN))('%s', (name) => {
    let caught: SeedResult | null = null
    for (let seed = 1; seed <= 2000 && caught === null; seed++) {
      const result = runSeed(seed, { protocol: BROKEN[name] })
      if (!result.ok) caught = result
    }
    expect(caught).not.toBeNull()
    console.log(`${name} caught:\n${report(caught!, name)}`)
  })
})
