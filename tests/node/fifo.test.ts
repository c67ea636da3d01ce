// Fifo (lib/node/fifo.ts) and what rests on it: Retention folds the oldest finished transaction
// first, and the dashboard's Timeline drops the oldest begun, however many came and went.
import { describe, expect, test } from 'bun:test'
import { Fifo } from '../../lib/node/fifo.ts'
import { Retention } from '../../lib/node/retention.ts'
import { Timeline } from '../../lib/node/timeline.ts'
import type { CoordinatorTxn } from '../../lib/core/index.ts'

describe('Fifo', () => {
  test('gives items back in the order they were pushed, across its compactions', () => {
    const fifo = new Fifo<number>()
    const out: number[] = []
    // Pushes outpace shifts, so the dead head is cut off many times on the way.
    for (let i = 0; i < 10_000; i++) {
      fifo.push(i)
      if (i % 3 !== 0) out.push(fifo.shift()!)
    }
    expect(fifo.size).toBe(10_000 - out.length)
    while (fifo.size > 0) out.push(fifo.shift()!)
    expect(out).toEqual(Array.from({ length: 10_000 }, (_, i) => i))
    expect(fifo.shift()).toBeUndefined()
    fifo.push(7)
    expect([fifo.size, fifo.shift(), fifo.size]).toEqual([1, 7, 0])
  })
})

describe('Retention', () => {
  test('forgets the oldest finished transaction past `retain`, each once', () => {
    const forgotten: string[] = []
    const retention = new Retention(3, (txn) => forgotten.push(txn))
    for (const txn of ['a', 'b', 'a', 'c', 'd', 'e', 'd']) retention.finished(txn)
    expect(forgotten).toEqual(['a', 'b'])
    for (let i = 0; i < 5000; i++) retention.finished(`t${i}`)
    expect(forgotten.slice(0, 5)).toEqual(['a', 'b', 'c', 'd', 'e'])
    expect(forgotten.slice(-1)).toEqual(['t4996'])
    expect(forgotten.length).toBe(5002)
  })
})

describe('Timeline', () => {
  test('keeps the last `limit` transactions begun and drops the oldest', () => {
    const timeline = new Timeline(() => 0, 100)
    const begun = (txn: string) => ({ txn, logged: false, decision: null }) as CoordinatorTxn
    for (let i = 0; i < 5000; i++) timeline.changed(undefined, begun(`t${i}`))
    expect(timeline.of('t4899')).toBeUndefined()
    expect(timeline.of('t4900')?.entries).toEqual([{ at: 0, event: 'begin' }])
    expect(timeline.of('t4999')?.txn).toBe('t4999')
  })
})
