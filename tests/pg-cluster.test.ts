// A real private PostgreSQL cluster, on the server binaries npm installed unless $PG_BINDIR names
// others: a transaction prepared with Bun's SQL client survives kill -9 and commits after the
// restart; a participant waits for its database to come up and refuses one that cannot prepare.
// Fails (never skips) where the server binaries are missing.
import { afterAll, expect, test } from 'bun:test'
import { SQL } from 'bun'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, sep } from 'node:path'
import {
  SERVER_USER,
  findPgBin,
  npmBindir,
  npmPgPackage,
  startPgCluster,
  type PgCluster,
} from '../lib/store/pg-cluster.ts'
import { MIN_PREPARED_TRANSACTIONS } from '../lib/store/pg-store.ts'
import { PARTICIPANT, cleanEnv } from '../testing/nodes.ts'
import { getJson, waitFor } from '../testing/processes.ts'

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

/** A participant on `store` in a fresh dir, its stdout and stderr collected as they come. */
function participantOn(store: string) {
  const cwd = mkdtempSync(join(tmpdir(), 'pg-participant-'))
  const env = { ...cleanEnv(), PORT: '0', HOST: '127.0.0.1' }
  const stdio = { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' } as const
  const proc = Bun.spawn([...PARTICIPANT, '--store', store], { cwd, env, ...stdio })
  const out = { stdout: '', stderr: '' }
  const collect = async (stream: ReadableStream<Uint8Array>, key: keyof typeof out) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) out[key] += decoder.decode(chunk, { stream: true })
  }
  const done = Promise.all([collect(proc.stdout, 'stdout'), collect(proc.stderr, 'stderr')])
  const stop = async () => {
    proc.kill('SIGKILL')
    await Promise.all([proc.exited, done])
    rmSync(cwd, { recursive: true, force: true })
  }
  return { proc, out, done, stop }
}

test('findPgBin finds initdb and pg_ctl: from npm unless $PG_BINDIR says otherwise', () => {
  const bin = findPgBin()
  expect(existsSync(join(bin, 'initdb'))).toBe(true)
  expect(existsSync(join(bin, 'pg_ctl'))).toBe(true)
  // npm's binaries come before any system install (a Debian server here or not), so the suite
  // runs the same PostgreSQL everywhere.
  const fromNpm = findPgBin({})
  expect(fromNpm).toBe(npmBindir()!)
  expect(fromNpm).toContain(`${sep}node_modules${sep}${npmPgPackage()}${sep}native${sep}bin`)
  if (!process.env.PG_BINDIR) expect(bin).toBe(fromNpm)
})

test('$PG_BINDIR wins over npm, and one without initdb is an error that names it', () => {
  const fake = join(dir, 'fake-bin')
  mkdirSync(fake, { recursive: true })
  writeFileSync(join(fake, 'initdb'), '')
  expect(findPgBin({ PG_BINDIR: fake })).toBe(fake)
  const missing = join(dir, 'no-bin')
  expect(() => findPgBin({ PG_BINDIR: missing })).toThrow(
    `PG_BINDIR=${missing} holds no initdb: set it to the server binaries' folder`,
  )
})

test('a prepared transaction survives kill -9 and commits after the restart', async () => {
  cluster = await startPgCluster(dir)
  expect(cluster.url).toBe(`postgres://postgres@127.0.0.1:${cluster.port}/postgres`)
  const sql = new SQL({ url: cluster.url, max: 4 })
  const settings = await sql`select name, setting from pg_settings
    where name in ('fsync', 'listen_addresses', 'max_prepared_transactions') order by name`
  expect(settings.map((r: any) => r.setting)).toEqual(['on', '127.0.0.1', '64'])
  if (!process.env.PG_BINDIR) {
    // The server npm shipped (PostgreSQL 18), not a system one (Debian 12's is 15).
    const [{ version }] = await sql`select version()`
    const { version: shipped } = await Bun.file(join(npmBindir()!, '../../package.json')).json()
    expect(version).toStartWith(`PostgreSQL ${shipped.split('.')[0]}.`)
  }
  if (process.getuid?.() === 0) {
    // As root the server runs as the unprivileged user, from binaries that user can read.
    const uid = Number(Bun.spawnSync(['id', '-u', SERVER_USER]).stdout.toString())
    expect(uid).toBeGreaterThan(0)
    const pid = readFileSync(join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    expect(/^Uid:\s+(\d+)/m.exec(status)![1]).toBe(String(uid))
    expect(existsSync(join(cluster.binDir, 'postgres'))).toBe(true)
  }
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

// Started before its database, a participant waits like a server: it retries with backoff,
// saying where it is waiting (never the password), and listens once the database is up.
test('a participant started while its database is down waits for it, then serves', async () => {
  const pg = cluster!
  await pg.stop()
  const p = participantOn(pg.url.replace('postgres@', 'postgres:never-shown@'))
  try {
    const where = `PostgreSQL at 127.0.0.1:${pg.port} (database postgres)`
    // At least two refused attempts: it goes on retrying, it does not give up after one.
    await waitFor(() => p.out.stderr.split(`waiting for ${where}: `).length > 2)
    expect(p.out.stderr).toMatch(/; retrying in \d+ ms\n/)
    expect(p.out.stdout).not.toContain('listening')
    await pg.start()
    await waitFor(() => p.out.stdout.includes('listening on http'), 30_000)
    expect(p.out.stderr).toContain(`${where} is up\n`)
    expect(p.out.stdout + p.out.stderr).not.toContain('never-shown')
    const url = /listening on (http:\S+)/.exec(p.out.stdout)![1]!
    expect(await getJson(`${url}/healthz`)).toEqual({ ok: true })
    const prepare = await fetch(`${url}/prepare`, { method: 'POST', body: '{"txn":"up1"}' })
    expect(await prepare.text()).toBe('yes')
  } finally {
    await p.stop()
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
}, 60_000)

test('a participant refuses a server that allows too few prepared transactions', async () => {
  // The cluster now allows 8 (the test before): below what a participant needs.
  expect(MIN_PREPARED_TRANSACTIONS).toBe(20)
  const p = participantOn(cluster!.url)
  expect(await p.proc.exited).toBe(1)
  await p.done
  await p.stop()
  expect(p.out.stderr).toBe(
    `error: PostgreSQL at 127.0.0.1:${cluster!.port} (database postgres) has ` +
      'max_prepared_transactions = 8, and a participant needs at least 20: set ' +
      'max_prepared_transactions = 20 or more on the server and restart it\n',
  )
  expect(p.out.stdout).toBe('')
}, 60_000)
