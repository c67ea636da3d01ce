// Whether a prepare may carry `sql` operations: only to a participant started with --allow-sql
// (its store then runs them, lib/store/pg-sql.ts). Anyone else is refused with a 400 that says
// so, before anything is checked, locked or logged.
import { sqlOps, type Op } from '../core/index.ts'
import { WireError } from './participant.ts'

export function refuseSql(ops: readonly Op[], allowSql: boolean): void {
  if (allowSql || sqlOps(ops).length === 0) return
  throw new WireError(
    'this participant runs no "sql" operations: start it with --allow-sql and a PostgreSQL --store',
  )
}
