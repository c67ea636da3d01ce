// A PREPARE TRANSACTION whose answer is lost (the connection cut after the server ran it) leaves
// the participant unsure whether it prepared: it never voted yes on it, so what the server may
// hold must not outlive the failure. The store rolls it back once the server answers again, and
// never a later prepare of the same transaction (which waits for that first).
import { afterEach, expect, test } from 'bun:test'
import { SQL } from 'bun'
import type { Op } from '../lib.ts'
import { pgPool } from '../lib/store/pg-pool.ts'
import { PgStore } from '../lib/store/pg-store.ts'
import { PgProxy } from '../testing/pg-proxy.ts'
import { usePgCluster } from '../testing/pg.ts'
import { waitFor } from '../testing/processes.ts'

const pg = usePgCluster('twophase-pg-lost-answer-')
const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
})

const { freshDatabase } = pg

/** A store on a fresh database, reached through a proxy that can lose answers. */
async function storeBehindProxy(options: ConstructorParameters<typeof PgStore>[1] = {}) {
  const url = await freshDatabase()
  const proxy = await PgProxy.start(pg.cluster().port)
  stops.push(() => proxy.stop())
  const store = new PgStore(proxy.url(url), options)
  await store.connect(() => {})
  stops.push(() => store.close())
  await store.load()
  return { store, proxy, url }
}

/** The transactions prepared on the server, asked directly (not through the proxy). */
async function prepared(url: string): Promise<string[]> {
  const db = new SQL({ url, max: 1 })
  try {
    const rows = await db`SELECT gid FROM pg_prepared_xacts WHERE database = current_database()`
    return (rows as { gid: string }[]).map((r) => r.gid.replace(/^tp:[^:]+:/, ''))
  } finally {
    await db.close()
  }
}

const OPS: Op[] = [{ op: 'set', key: 'k', value: 1 }]
const PREPARED = { txn: 't1', state: 'prepared', vote: 'yes' } as const

/** A check that votes yes, then a prepare whose answer is lost: the write fails, and the core
 * lets go of the transaction (`discard`), as it does for any failed prepare. */
async function loseThePrepare(store: PgStore, proxy: PgProxy, thenClose = false) {
  expect((await store.check('t1', OPS)).vote).toBe('yes')
  proxy.loseAnswerTo('PREPARE TRANSACTION', thenClose)
  await expect(store.persist(PREPARED)).rejects.toThrow(/database unavailable/)
  expect(proxy.lost).toBe(1)
  await store.discard('t1')
}

test('what a lost PREPARE TRANSACTION left on the server is rolled back', async () => {
  const { store, proxy, url } = await storeBehindProxy()
  await loseThePrepare(store, proxy)
  await waitFor(async () => (await prepared(url)).length === 0)
  // The key is free again: another transaction on it prepares and commits.
  expect((await store.check('t2', OPS)).vote).toBe('yes')
  await store.persist({ ...PREPARED, txn: 't2' })
  await store.persist({ txn: 't2', state: 'committed', vote: 'yes' }, 'apply')
  expect(await store.get('k')).toBe(1)
}, 30_000)

test('while the server is unreachable it waits; a new prepare of the same id is kept', async () => {
  const held = Promise.withResolvers<void>()
  const waiting = Promise.withResolvers<void>()
  const sleep = () => {
    waiting.resolve()
    return held.promise // the background attempts pause here until the test lets them go on
  }
  const { store, proxy, url } = await storeBehindProxy({ sleep })
  await loseThePrepare(store, proxy, true)
  await waiting.promise // the first background attempt failed
  expect(await prepared(url)).toEqual(['t1']) // the statement did run
  const vote = await store.check('t1', OPS)
  expect(vote).toEqual({ vote: 'no', reason: expect.stringContaining('database unavailable') })
  expect(await prepared(url)).toEqual(['t1'])
  await proxy.reopen()
  // The coordinator asks again: the first attempt is rolled back before this one begins, which
  // the background attempts, let go now, leave alone.
  expect((await store.check('t1', OPS)).vote).toBe('yes')
  await store.persist(PREPARED)
  held.resolve()
  await store.settled()
  expect(await prepared(url)).toEqual(['t1'])
  await store.persist({ txn: 't1', state: 'committed', vote: 'yes' }, 'apply')
  expect(await prepared(url)).toEqual([])
  expect(await store.get('k')).toBe(1)
}, 30_000)

test('a server that drops new connections unanswered fails a query, not stalls it', async () => {
  const url = await freshDatabase()
  const proxy = await PgProxy.start(pg.cluster().port)
  stops.push(() => proxy.stop())
  proxy.close('drop')
  const pool = pgPool(proxy.url(url), 1)
  stops.push(() => pool.close())
  await expect(pool`SELECT 1`).rejects.toThrow(/closed/)
}, 20_000) // Bun's own connection timeout is 30 s; a node's pools have CONNECT_TIMEOUT_S
