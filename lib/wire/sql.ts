// Whether a prepare may carry `sql` operations: only to a participant started with --allow-sql
// (its store then runs them, lib/store/pg-sql.ts). Anyone else is refused with a 400 that says
// so, before anything is checked, locked or logged. With a cluster secret, a coordinator takes
// them only from requests that prove it, not from a client token.
import { sqlOps, type Op } from '../core/index.ts'
import { WireError } from './participant.ts'

export function refuseSql(ops: readonly Op[], allowSql: boolean): void {
  if (allowSql || sqlOps(ops).length === 0) return
  throw new WireError(
    'this participant runs no "sql" operations: start it with --allow-sql and a PostgreSQL --store',
  )
}

/** What a coordinator answers a client token's transaction that carries `sql` operations: SQL
 * reaches a database only from the cluster (the secret's proof), never from a client token. */
export const SQL_NEEDS_CLUSTER =
  '"sql" operations need the cluster secret\'s proof (--secret-file), not a client token'

/** Whether the `ops` of a POST /transactions (a list, or lists by participant) hold `sql`. */
export function carriesSql(ops: unknown): boolean {
  const lists = Array.isArray(ops)
    ? [ops]
    : typeof ops === 'object' && ops
      ? Object.values(ops)
      : []
  return lists.some(
    (list) => Array.isArray(list) && list.some((o) => (o as { op?: unknown } | null)?.op === 'sql'),
  )
}
