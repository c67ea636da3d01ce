// What examples/two-databases.ts and its test share: the two databases (a ledger, an audit
// trail) with schemas of their own, a transfer as `sql` operations on each, and the check that
// both agree.
import { SQL } from 'bun'

export const ACCOUNTS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']
export const INITIAL = 1000

export type Transfer = { id: string; from: string; to: string; amount: number }

/** The URLs of the two databases. */
export type Databases = { ledger: string; audit: string }

/** The two databases, their schemas, and the seed balances. */
export async function createDatabases(clusterUrl: string, suffix = ''): Promise<Databases> {
  const admin = new SQL({ url: clusterUrl, max: 1 })
  for (const name of ['ledger', 'audit']) await admin.unsafe(`CREATE DATABASE ${name}${suffix}`)
  await admin.close()
  const urlOf = (name: string) => clusterUrl.replace(/\/postgres$/, `/${name}${suffix}`)
  const ledger = new SQL({ url: urlOf('ledger'), max: 1 })
  await ledger`CREATE TABLE accounts (id text PRIMARY KEY, balance bigint NOT NULL)`
  for (const id of ACCOUNTS) await ledger`INSERT INTO accounts VALUES (${id}, ${INITIAL})`
  await ledger.close()
  const audit = new SQL({ url: urlOf('audit'), max: 1 })
  await audit`CREATE TABLE transfers (
    id text PRIMARY KEY, source text NOT NULL, target text NOT NULL, amount bigint NOT NULL)`
  await audit.close()
  return { ledger: urlOf('ledger'), audit: urlOf('audit') }
}

/** One transfer as the operations of each database's participant. */
export function opsOf(t: Transfer) {
  const debit = 'UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1'
  const credit = 'UPDATE accounts SET balance = balance + $1 WHERE id = $2'
  const record = 'INSERT INTO transfers (id, source, target, amount) VALUES ($1, $2, $3, $4)'
  return {
    ledger: [
      { op: 'sql', text: debit, params: [t.amount, t.from], expect: { rows: 1 } },
      { op: 'sql', text: credit, params: [t.amount, t.to], expect: { rows: 1 } },
    ],
    audit: [{ op: 'sql', text: record, params: [t.id, t.from, t.to, t.amount] }],
  }
}

export type Check = { agree: boolean; audited: Set<string>; lines: string[] }

/** Both databases agree: every audited transfer moved its money and no other money moved; the
 * total is unchanged; no transaction is left prepared. */
export async function check(urls: Databases): Promise<Check> {
  const ledger = new SQL({ url: urls.ledger, max: 1 })
  const audit = new SQL({ url: urls.audit, max: 1 })
  try {
    const rows = (await ledger`SELECT id, balance::int AS balance FROM accounts`) as {
      id: string
      balance: number
    }[]
    const moved =
      (await audit`SELECT id, source, target, amount::int AS amount FROM transfers`) as {
        id: string
        source: string
        target: string
        amount: number
      }[]
    const expected = new Map(ACCOUNTS.map((a) => [a, INITIAL]))
    for (const m of moved) {
      expected.set(m.source, expected.get(m.source)! - m.amount)
      expected.set(m.target, expected.get(m.target)! + m.amount)
    }
    const [{ n }] = await ledger`SELECT count(*)::int AS n FROM pg_prepared_xacts`
    const balances = rows.map((r) => `${r.id} ${r.balance}`).join(', ')
    const agree = n === 0 && rows.every((r) => r.balance === expected.get(r.id))
    const lines = [`ledger: ${balances}`, `audit: ${moved.length} transfers; prepared: ${n}`]
    return { agree, audited: new Set(moved.map((m) => m.id)), lines }
  } finally {
    await Promise.all([ledger.close(), audit.close()])
  }
}
