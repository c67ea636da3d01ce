// KeyedQueue (lib/node/keyed-queue.ts): one task at a time per key (a transaction's steps never
// interleave), any number of keys at once, and a failed task does not hold up the next one.
// Tasks here wait on gates the test opens, so every order asserted is forced, not timed.
import { describe, expect, test } from 'bun:test'
import { KeyedQueue } from '../../lib/node/keyed-queue.ts'

/** A promise the test resolves when it chooses. */
function gate(): { opened: Promise<void>; open: () => void } {
  const { promise, resolve } = Promise.withResolvers<void>()
  return { opened: promise, open: () => resolve() }
}

/** A task that logs its start, waits for `until`, logs its end and returns `name`. */
function task(log: string[], name: string, until: Promise<void>): () => Promise<string> {
  return async () => {
    log.push(`${name} start`)
    await until
    log.push(`${name} end`)
    return name
  }
}

describe('KeyedQueue', () => {
  test('tasks of one key run one at a time, in the order they were queued', async () => {
    const queue = new KeyedQueue()
    const log: string[] = []
    const gates = [gate(), gate(), gate()]
    const results = ['a', 'b', 'c'].map((name, i) =>
      queue.run('t1', task(log, name, gates[i]!.opened)),
    )
    // Opened in reverse: a queue that did not wait for each task would finish c first.
    for (const g of [...gates].reverse()) g.open()
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c'])
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end'])
  })

  test('a task of an idle key starts at once, even while another key is busy', async () => {
    const queue = new KeyedQueue()
    const log: string[] = []
    const first = gate()
    const busy = queue.run('t1', task(log, 't1', first.opened))
    // t2 opens t1's gate: were the keys one queue, t2 would wait for t1 and neither would end.
    const other = queue.run('t2', async () => {
      log.push('t2 start')
      first.open()
      return 't2'
    })
    expect(log).toEqual(['t1 start', 't2 start'])
    expect(await Promise.all([busy, other])).toEqual(['t1', 't2'])
  })

  test('a rejected task rejects its caller, and the next task of its key still runs', async () => {
    const queue = new KeyedQueue()
    const log: string[] = []
    const failing = gate()
    const failed = queue.run('t1', async () => {
      log.push('failing start')
      await failing.opened
      throw new Error('disk full')
    })
    const next = queue.run('t1', task(log, 'next', Promise.resolve()))
    failing.open()
    await expect(failed).rejects.toThrow('disk full')
    expect(await next).toBe('next')
    expect(log).toEqual(['failing start', 'next start', 'next end'])
  })

  test('a key whose last task failed takes new tasks', async () => {
    const queue = new KeyedQueue()
    await expect(queue.run('t1', () => Promise.reject(new Error('bad')))).rejects.toThrow('bad')
    expect(await queue.run('t1', async () => 42)).toBe(42)
  })
})
