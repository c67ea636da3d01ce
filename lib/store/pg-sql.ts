// The `sql` operations of a PostgreSQL participant started with --allow-sql: the user's own
// statements, run in order inside the database transaction that PREPARE TRANSACTION then seals,
// so they commit or roll back with the outcome. A statement never waits: a lock another
// transaction holds (a prepared one included) or a slow statement makes the vote `no`.
import type { ReservedSQL } from 'bun'
import type { SqlOp } from '../core/index.ts'
import type { Verdict } from './store.ts'

/** How long one statement may run before it is cancelled (and the vote is `no`). */
export const SQL_STATEMENT_TIMEOUT_MS = 5000
/** How long a statement may wait for a lock: as good as never (PostgreSQL's 0 means forever). */
const LOCK_TIMEOUT_MS = 1

/** Statements that would end, split or reconfigure the transaction the vote seals: a COMMIT
 * inside it would make the work permanent before the decision. */
const REFUSED = /^(begin|start|commit|end|rollback|abort|savepoint|release|prepare|set|reset)\b/i

/** Runs `ops` on `conn` (inside its open transaction); null when every statement succeeded and
 * met its `expect`, else the `no` with the database's message. The caller rolls back on `no`. */
export async function runSqlOps(
  conn: ReservedSQL,
  ops: readonly SqlOp[],
  timeoutMs = SQL_STATEMENT_TIMEOUT_MS,
): Promise<Verdict | null> {
  if (ops.length === 0) return null
  for (const [i, op] of ops.entries()) {
    const keyword = firstWord(op.text)
    if (REFUSED.test(keyword)) return no(i, `${keyword.toUpperCase()} is not allowed in a vote`)
  }
  try {
    await conn.unsafe(`SET LOCAL statement_timeout = ${Math.max(1, Math.round(timeoutMs))}`)
    await conn.unsafe(`SET LOCAL lock_timeout = ${LOCK_TIMEOUT_MS}`)
    const [before] = await conn`SELECT pg_current_xact_id()::text AS xid`
    for (const [i, op] of ops.entries()) {
      const failure = await runOne(conn, op)
      if (failure !== null) return no(i, failure)
    }
    // A statement that slipped past REFUSED and ended the transaction would show here.
    const [after] = await conn`SELECT pg_current_xact_id_if_assigned()::text AS xid`
    if (after?.xid !== before?.xid) return { vote: 'no', reason: 'sql: the transaction ended' }
    return null
  } catch (error) {
    return { vote: 'no', reason: `sql: ${messageOf(error)}` }
  }
}

/** Why `op` failed (the database's message, or an unmet `expect`), or null. */
async function runOne(conn: ReservedSQL, op: SqlOp): Promise<string | null> {
  let result: { count?: number | null; length: number }
  try {
    // Bun's client sends an object as JSON (for jsonb) and an array as a PostgreSQL array.
    result = await conn.unsafe(op.text, op.params as unknown[])
  } catch (error) {
    return messageOf(error)
  }
  const rows = typeof result.count === 'number' ? result.count : result.length
  if (op.expect !== undefined && rows !== op.expect.rows) {
    return `expected ${op.expect.rows} row${op.expect.rows === 1 ? '' : 's'}, got ${rows}`
  }
  return null
}

/** The first keyword of a statement, after whitespace, comments and parentheses. */
function firstWord(text: string): string {
  const stripped = text.replace(/^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/|\()*/, '')
  return /^[A-Za-z_]+/.exec(stripped)?.[0] ?? ''
}

function no(index: number, message: string): Verdict {
  return { vote: 'no', reason: `sql operation ${index + 1}: ${message}` }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
