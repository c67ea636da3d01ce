// Group commit: records appended together share one forced write, and none is acknowledged
// before its own write reached the disk.
import { afterEach, expect, jest, test } from 'bun:test'
import { join } from 'node:path'
import { DurableLog } from '../lib/store/log.ts'
import { cleanup, tempDir } from '../testing/processes.ts'

afterEach(async () => {
  jest.useRealTimers()
  await cleanup()
})

/** One turn of the event loop: a forced append's flush (a setImmediate) has run after it. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

test('100 concurrent appends share far fewer than 100 forced writes', async () => {
  const log = new DurableLog<{ n: number }>(join(tempDir(), 'log.db'))
  await Promise.all(Array.from({ length: 100 }, (_, n) => log.append({ n })))
  expect(log.flushes).toBeLessThan(100)
  expect(log.flushes).toBeGreaterThanOrEqual(1)
  expect(log.records().map((r) => r.n)).toEqual(Array.from({ length: 100 }, (_, n) => n))
  log.close()
})

test('an append resolves only after its flush: nothing acknowledged is pending', async () => {
  const log = new DurableLog<{ n: number }>(join(tempDir(), 'log.db'))
  let resolved = false
  const pending = log.append({ n: 1 }).then(() => (resolved = true))
  expect(resolved).toBe(false)
  expect(log.flushes).toBe(0)
  await pending
  expect(log.flushes).toBe(1)
  log.close()
})

test.each([3, 17, 40])(
  'a crash between queueing and flushing (flush %i) loses no acknowledged record, folded or not',
  async (flush) => {
    const path = join(tempDir(), 'log.db')
    const writer = Bun.spawn(
      [process.execPath, join(import.meta.dir, 'fixtures/log-writer.ts'), path],
      {
        env: { ...process.env, TWOPHASE_FAILPOINTS: `log-before-flush@${flush}` },
        stdout: 'pipe',
        stderr: 'pipe',
      },
    )
    const [stdout, code] = await Promise.all([new Response(writer.stdout).text(), writer.exited])
    expect(code).toBe(137) // killed itself at the failpoint, with records still queued
    const acked = stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => Number(line.split(' ')[1]))
    expect(acked.length).toBeGreaterThan(0)
    const log = new DurableLog<{ txn: string; n: number }>(path)
    const live = new Set(log.records().map((r) => r.n))
    // Folded (every even one may be, if its fold was flushed) or live, never both, never lost.
    const folded = acked.filter((n) => log.folded(`t${n}`) !== undefined)
    log.close()
    expect(acked.filter((n) => !live.has(n) && !folded.includes(n))).toEqual([])
    expect(folded.filter((n) => live.has(n) || n % 2 === 1)).toEqual([])
    if (flush >= 17) expect(folded.length).toBeGreaterThan(0) // folds were written by then
  },
)

test('a lazy record starts no flush: it rides the next forced one, acked only then', async () => {
  // The lazy timer runs on a virtual clock (bun fakes timers, not setImmediate): every moment
  // short of lazyMs passes, and the turn a forced append would have flushed on too.
  jest.useFakeTimers()
  const log = new DurableLog<{ n: number }>(join(tempDir(), 'log.db'), 60_000)
  let lazyDone = false
  const lazy = log.append({ n: 1 }, undefined, true).then(() => (lazyDone = true))
  await nextTurn()
  jest.advanceTimersByTime(60_000 - 1)
  await nextTurn()
  expect(log.flushes).toBe(0)
  expect(lazyDone).toBe(false)
  await log.append({ n: 2 })
  await lazy
  expect(log.flushes).toBe(1)
  expect(log.records().map((r) => r.n)).toEqual([1, 2])
  log.close()
})

test('a lazy record alone is flushed by its timer', async () => {
  jest.useFakeTimers()
  const log = new DurableLog<{ n: number }>(join(tempDir(), 'log.db'), 20)
  const lazy = log.append({ n: 1 }, undefined, true)
  await nextTurn()
  jest.advanceTimersByTime(19)
  expect(log.flushes).toBe(0) // not before lazyMs
  jest.advanceTimersByTime(1)
  await lazy
  expect(log.flushes).toBe(1)
  log.close()
})

test('close writes the lazy records still pending', async () => {
  const path = join(tempDir(), 'log.db')
  const log = new DurableLog<{ n: number }>(path, 60_000)
  void log.append({ n: 1 }, undefined, true)
  log.close()
  const reopened = new DurableLog<{ n: number }>(path)
  expect(reopened.records().map((r) => r.n)).toEqual([1])
  reopened.close()
})

test('with no lazy window, a lazy record flushes in the next turn, acked only then', async () => {
  // A participant's log: a batch's outcome records share a flush with what came with them, and
  // a lone one waits for no timer (jest's fake timers would hold it if it did).
  jest.useFakeTimers()
  const log = new DurableLog<{ n: number }>(join(tempDir(), 'log.db'), 0)
  let acked = 0
  const appends = [1, 2, 3].map((n) => log.append({ n }, undefined, true).then(() => (acked += 1)))
  expect(acked).toBe(0)
  expect(log.flushes).toBe(0) // nothing is written before its turn: the three share it
  await Promise.all(appends)
  expect(log.flushes).toBe(1)
  expect(log.records().map((r) => r.n)).toEqual([1, 2, 3])
  log.close()
})
