// `sql` operations on a PostgreSQL participant started with --allow-sql: the user's statements
// run inside the transaction PREPARE TRANSACTION seals, on the user's own tables, through real
// participant and coordinator processes and the client's `SQL` keyword.
import { afterEach, describe, expect, test } from 'bun:test'
import { SQL } from 'bun'
import { ROOT, cleanEnv } from '../testing/nodes.ts'
import {
  cleanup,
  getJson,
  outputOf,
  postJson,
  runCommand,
  startCoordinatorService,
  startParticipant,
  tempDir,
  type Node,
} from '../testing/processes.ts'
import { usePgCluster } from '../testing/pg.ts'

const pg = usePgCluster('twophase-sql-')
let databases = 0
afterEach(cleanup)

/** A fresh database with the user's own table `accounts` (a: 500, b: 0). */
async function accountsDatabase(): Promise<{ url: string; db: SQL }> {
  const admin = new SQL({ url: pg.cluster().url, max: 1 })
  const name = `s${++databases}`
  await admin.unsafe(`CREATE DATABASE ${name}`)
  await admin.close()
  const url = pg.cluster().url.replace(/\/postgres$/, `/${name}`)
  const db = new SQL({ url, max: 2 })
  await db`CREATE TABLE accounts (id text PRIMARY KEY, balance int NOT NULL)`
  await db`INSERT INTO accounts VALUES ('a', 500), ('b', 0)`
  return { url, db }
}

async function sqlParticipant(url: string, allow = true): Promise<Node> {
  const args = ['--store', url, ...(allow ? ['--allow-sql'] : [])]
  return startParticipant(tempDir(), { args })
}

const debit = (amount: number, id = 'a') => ({
  op: 'sql',
  text: 'UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1',
  params: [amount, id],
  expect: { rows: 1 },
})

async function balances(db: SQL): Promise<Record<string, number>> {
  const rows = (await db`SELECT id, balance FROM accounts ORDER BY id`) as {
    id: string
    balance: number
  }[]
  return Object.fromEntries(rows.map((r) => [r.id, r.balance]))
}

async function preparedCount(db: SQL): Promise<number> {
  const [row] = await db`SELECT count(*)::int AS n FROM pg_prepared_xacts`
  return row.n as number
}

describe('sql operations on a PostgreSQL participant', () => {
  test('run inside the prepared transaction: invisible until commit, gone at abort', async () => {
    const { url, db } = await accountsDatabase()
    const node = await sqlParticipant(url)
    const vote = await postJson(`${node.url}/prepare`, { txn: 's1', ops: [debit(100)] })
    expect(vote.body).toEqual({ txn: 's1', vote: 'yes', reason: null })
    expect(await balances(db)).toEqual({ a: 500, b: 0 }) // prepared, not committed
    expect(await preparedCount(db)).toBe(1)
    expect((await postJson(`${node.url}/commit`, { txn: 's1' })).status).toBe(200)
    expect(await balances(db)).toEqual({ a: 400, b: 0 })
    await postJson(`${node.url}/prepare`, { txn: 's2', ops: [debit(50)] })
    expect((await postJson(`${node.url}/abort`, { txn: 's2' })).status).toBe(200)
    expect(await balances(db)).toEqual({ a: 400, b: 0 })
    expect(await preparedCount(db)).toBe(0)
    await db.close()
  })

  test.each([
    ['an unmet expect', [debit(10_000)], 'sql operation 1: expected 1 row, got 0'],
    [
      "the database's error",
      [debit(1), { op: 'sql', text: 'INSERT INTO nowhere VALUES (1)', params: [] }],
      'sql operation 2: relation "nowhere" does not exist',
    ],
    ['a COMMIT', [{ op: 'sql', text: ' commit', params: [] }], 'COMMIT is not allowed'],
  ])('vote no with the reason on %s, and change nothing', async (_, ops, reason) => {
    const { url, db } = await accountsDatabase()
    const node = await sqlParticipant(url)
    const vote = await postJson(`${node.url}/prepare`, { txn: 'bad', ops })
    expect(vote.body.vote).toBe('no')
    expect(vote.body.reason).toContain(reason)
    expect(await balances(db)).toEqual({ a: 500, b: 0 })
    expect(await preparedCount(db)).toBe(0)
    await db.close()
  })

  test('expect counts rows a SELECT returns; objects go as JSON, arrays as arrays', async () => {
    const { url, db } = await accountsDatabase()
    await db`CREATE TABLE notes (id int PRIMARY KEY, body jsonb NOT NULL)`
    const node = await sqlParticipant(url)
    const ops = [
      { op: 'sql', text: 'SELECT id FROM accounts ORDER BY id', expect: { rows: 2 } },
      {
        op: 'sql',
        text: 'SELECT 1 FROM accounts WHERE id = ANY($1)',
        params: [['a']],
        expect: { rows: 1 },
      },
      { op: 'sql', text: 'INSERT INTO notes VALUES ($1, $2)', params: [1, { a: [1] }] },
    ]
    expect((await postJson(`${node.url}/prepare`, { txn: 'e1', ops })).body.vote).toBe('yes')
    await postJson(`${node.url}/commit`, { txn: 'e1' })
    const [row] = await db`SELECT body FROM notes WHERE id = 1`
    expect(row.body).toEqual({ a: [1] })
    await db.close()
  })

  test('a row locked by a prepared transaction gets a no at once, not a wait', async () => {
    const { url, db } = await accountsDatabase()
    const node = await sqlParticipant(url)
    expect((await postJson(`${node.url}/prepare`, { txn: 'l1', ops: [debit(1)] })).body.vote).toBe(
      'yes',
    )
    const second = await postJson(`${node.url}/prepare`, { txn: 'l2', ops: [debit(2)] })
    expect(second.body.vote).toBe('no')
    expect(second.body.reason).toContain('lock timeout')
    await postJson(`${node.url}/commit`, { txn: 'l1' })
    expect(await balances(db)).toEqual({ a: 499, b: 0 })
    await db.close()
  })

  test('are refused with a 400 by a participant without --allow-sql', async () => {
    const { url, db } = await accountsDatabase()
    const node = await sqlParticipant(url, false)
    const refused = await postJson(`${node.url}/prepare`, { txn: 'r1', ops: [debit(1)] })
    expect(refused.status).toBe(400)
    expect(refused.body.error).toContain('--allow-sql')
    const batch = await postJson(`${node.url}/batch`, {
      messages: [{ type: 'prepare', txn: 'r2', ops: [debit(1)] }],
    })
    expect(batch.body.replies[0].status).toBe(400)
    expect((await getJson(`${node.url}/transactions/r1`)).state).toBe('unknown')
    expect(await balances(db)).toEqual({ a: 500, b: 0 })
    await db.close()
  })

  test('--allow-sql on the SQLite store is a usage error', async () => {
    const run = await runCommand(
      [process.execPath, 'participant.ts'],
      ['--allow-sql', '--dir', tempDir(), '--port', '0'],
    )
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('--allow-sql needs a PostgreSQL --store')
  })

  test('the client runs SQL "…" [params] ROWS n --on P through the coordinator', async () => {
    const { url, db } = await accountsDatabase()
    const ledger = await sqlParticipant(url)
    const other = await startParticipant(tempDir())
    const coordinator = await startCoordinatorService(tempDir(), {
      participants: [ledger.url, other.url],
    })
    const text = 'UPDATE accounts SET balance = balance + $1 WHERE id = $2'
    const run = async (id: string, rows: number) =>
      outputOf(
        Bun.spawn(
          [
            process.execPath,
            'coordinator.ts',
            'start',
            id,
            'SQL',
            text,
            '[25, "b"]',
            'ROWS',
            String(rows),
            '--on',
            '0',
            'ADD',
            'n',
            '1',
            '--on',
            '1',
            '--coordinator',
            coordinator.url,
            '--json',
          ],
          { cwd: ROOT, env: cleanEnv(), stdout: 'pipe', stderr: 'pipe' },
        ),
      )
    const ok = await run('c1', 1)
    expect(ok.code).toBe(0)
    expect(JSON.parse(ok.stdout).decision).toBe('commit')
    const refused = await run('c2', 2)
    expect(refused.code).toBe(1)
    expect(JSON.stringify(JSON.parse(refused.stdout).reasons)).toContain('expected 2 rows, got 1')
    expect(await balances(db)).toEqual({ a: 500, b: 25 })
    expect((await getJson(`${other.url}/kv/n`)).value).toBe(1)
    expect(await preparedCount(db)).toBe(0)
    await db.close()
  })
})
