// A real private PostgreSQL cluster: a transaction prepared with Bun's SQL client survives kill -9
// and commits after the restart. Fails (never skips) where the server binaries are missing.
import { afterAll, expect, test } from 'bun:test'
import { SQL } from 'bun'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findPgBin, startPgCluster, type PgCluster } from '../lib/store/pg-cluster.ts'

const dir = mkdtempSync(join(tmpdir(), 'pg-cluster-test-'))
let cluster: PgCluster | undefined

afterAll(async () => {
  await cluster?.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function rows(url: string, key: string): Promise<number> {
  const sql = new SQL({ url, max: 1 })
  try {
    const [{ n }] = await sql`select count(*)::int as n from kv where k = ${key}`
    return n
  } finally {
    await sql.close()
  }
}

test('findPgBin finds initdb and pg_ctl', () => {
  const bin = findPgBin()
  expect(existsSync(join(bin, 'initdb'))).toBe(true)
  expect(existsSync(join(bin, 'pg_ctl'))).toBe(true)
})

test('a prepared transaction survives kill -9 and commits after the restart', async () => {
  cluster = await startPgCluster(dir)
  expect(cluster.url).toBe(`postgres://postgres@127.0.0.1:${cluster.port}/postgres`)
  const sql = new SQL({ url: cluster.url, max: 4 })
  const settings = await sql`select name, setting from pg_settings
    where name in ('fsync', 'listen_addresses', 'max_prepared_transactions') order by name`
  expect(settings.map((r: any) => r.setting)).toEqual(['on', '127.0.0.1', '64'])
  await sql`create table kv (k text primary key, v text)`
  await sql.beginDistributed('g1', async (tx) => {
    await tx`insert into kv values ('crash', 'survived')`
  })
  expect(await rows(cluster.url, 'crash')).toBe(0)

  // The pool keeps connections (backends) open, as a live client would during a crash.
  await cluster.kill()
  await expect(rows(cluster.url, 'crash')).rejects.toThrow()
  await sql.close()
  await cluster.start()

  const after = new SQL({ url: cluster.url, max: 2 })
  try {
    const prepared = await after`select gid from pg_prepared_xacts`
    expect(prepared.map((r: any) => r.gid)).toEqual(['g1'])
    expect(await rows(cluster.url, 'crash')).toBe(0)
    await after.commitDistributed('g1')
    expect(await rows(cluster.url, 'crash')).toBe(1)
    expect(await after`select gid from pg_prepared_xacts`).toHaveLength(0)
  } finally {
    await after.close()
  }
}, 60_000)

test('stop, then startPgCluster on the same dir reuses the data', async () => {
  await cluster?.stop()
  cluster = await startPgCluster(dir, { maxPreparedTransactions: 8 })
  const sql = new SQL({ url: cluster.url, max: 1 })
  try {
    const [{ max_prepared_transactions }] = await sql`show max_prepared_transactions`
    expect(max_prepared_transactions).toBe('8')
    expect(await rows(cluster.url, 'crash')).toBe(1)
  } finally {
    await sql.close()
  }
  await cluster.stop()
}, 60_000)
