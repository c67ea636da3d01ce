// Operations a transaction carries to a participant, checked at prepare and applied at commit.
// Pure: the store supplies the committed values through `read`.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

export type Op =
  | { op: 'set'; key: string; value: Json }
  | { op: 'delete'; key: string }
  /** Fails if the key exists. */
  | { op: 'insert'; key: string; value: Json }
  /** Numeric; a missing key counts as 0. Fails if the result would fall below `min`. */
  | { op: 'add'; key: string; amount: number; min?: number }
  /** Fails unless the committed value equals `equals` (absent when `equals` is omitted). */
  | { op: 'check'; key: string; equals?: Json }
  /** A statement run, in order, inside the transaction a PostgreSQL participant prepares
   * (only one started with --allow-sql). Fails if the database refuses it, or if `expect`
   * names a row count the statement did not affect or return. It touches no key. */
  | SqlOp

export type SqlOp = { op: 'sql'; text: string; params: Json[]; expect?: { rows: number } }

/** Operations on keys: every one but `sql`. */
export type KeyOp = Exclude<Op, SqlOp>

export const MAX_SQL_BYTES = 64 * 1024
export const MAX_SQL_PARAMS = 100

export const MAX_KEY_BYTES = 256
export const MAX_VALUE_BYTES = 64 * 1024
/** How deep a value may nest (a scalar is 1). Every body a node reads may nest 64 levels
 * (lib/wire/limits.ts), and the messages that carry a value wrap it in up to seven (a batch's
 * prepare holding a statement's parameter): a value the coordinator took must still fit the
 * batch it relays, or the participant refuses that batch for ever. */
export const MAX_VALUE_DEPTH = 56
export const MAX_OPS = 1000

/** Thrown for a malformed op list: the request is bad (400), not a reason to vote no. */
export class OpError extends Error {}

/** Checks the shape of `value` as an op list; throws an OpError saying what is wrong. */
export function parseOps(value: unknown): Op[] {
  if (!Array.isArray(value)) throw new OpError('invalid "ops": expected an array of operations')
  if (value.length > MAX_OPS) throw new OpError(`invalid "ops": more than ${MAX_OPS} operations`)
  try {
    return value.map((op, i) => parseOp(op, `ops[${i}]`))
  } catch (error) {
    // A value nested too deeply to serialize (RangeError) is bad input too, not a crash.
    if (error instanceof RangeError)
      throw new OpError('invalid "ops": a value is nested too deeply')
    throw error
  }
}

function parseOp(raw: unknown, at: string): Op {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new OpError(`invalid ${at}: expected an object such as {"op":"set","key":"k","value":1}`)
  }
  const o = raw as Record<string, unknown>
  if (o.op === 'sql') return parseSql(o, at)
  const key = keyOf(o.key, at)
  switch (o.op) {
    case 'set':
    case 'insert':
      return { op: o.op, key, value: valueOf(o, 'value', at) }
    case 'delete':
      return { op: 'delete', key }
    case 'add': {
      const amount = numberOf(o.amount, `${at}.amount`)
      const min = o.min === undefined ? undefined : numberOf(o.min, `${at}.min`)
      return min === undefined ? { op: 'add', key, amount } : { op: 'add', key, amount, min }
    }
    case 'check':
      return 'equals' in o
        ? { op: 'check', key, equals: valueOf(o, 'equals', at) }
        : { op: 'check', key }
    default:
      throw new OpError(
        `invalid ${at}.op ${JSON.stringify(o.op)}: expected set, delete, insert, add, check ` +
          'or sql',
      )
  }
}

/** `{"op":"sql","text","params"?,"expect"?:{"rows"}}`: the statement's shape only; whether this
 * participant runs SQL at all is its own business (--allow-sql). */
function parseSql(o: Record<string, unknown>, at: string): SqlOp {
  const text = o.text
  if (typeof text !== 'string' || text.trim() === '')
    throw new OpError(`invalid ${at}.text: expected an SQL statement`)
  if (utf8Longer(text, MAX_SQL_BYTES) || !text.isWellFormed() || text.includes('\0'))
    throw new OpError(`invalid ${at}.text: longer than ${MAX_SQL_BYTES} bytes or not text`)
  const params = o.params ?? []
  if (!Array.isArray(params) || params.length > MAX_SQL_PARAMS)
    throw new OpError(`invalid ${at}.params: expected an array of at most ${MAX_SQL_PARAMS}`)
  params.forEach((_, i) => valueOf(params as unknown as Record<string, unknown>, String(i), at))
  const sql: SqlOp = { op: 'sql', text, params: params as Json[] }
  if (o.expect === undefined) return sql
  const rows = (o.expect as { rows?: unknown } | null)?.rows
  if (!Number.isSafeInteger(rows) || (rows as number) < 0)
    throw new OpError(`invalid ${at}.expect: expected {"rows": N} with N a whole number`)
  return { ...sql, expect: { rows: rows as number } }
}

function keyOf(key: unknown, at: string): string {
  if (typeof key !== 'string' || key === '')
    throw new OpError(`invalid ${at}.key: expected a string`)
  if (utf8Longer(key, MAX_KEY_BYTES)) {
    throw new OpError(`invalid ${at}.key: longer than ${MAX_KEY_BYTES} bytes`)
  }
  // A lone surrogate would be stored as U+FFFD: two keys, one row, two locks.
  if (!key.isWellFormed()) throw new OpError(`invalid ${at}.key: not well-formed Unicode`)
  return key
}

function valueOf(o: Record<string, unknown>, field: string, at: string): Json {
  if (!(field in o)) throw new OpError(`invalid ${at}: missing "${field}"`)
  const text = JSON.stringify(o[field])
  if (utf8Longer(text, MAX_VALUE_BYTES)) {
    throw new OpError(`invalid ${at}.${field}: larger than ${MAX_VALUE_BYTES} bytes as JSON`)
  }
  if (deeperThan(o[field], MAX_VALUE_DEPTH)) {
    throw new OpError(`invalid ${at}.${field}: nested deeper than ${MAX_VALUE_DEPTH} levels`)
  }
  return o[field] as Json
}

/** Whether `value` nests more than `limit` levels (a scalar or an empty array or object is
 * one, anything else one more than its deepest member). */
function deeperThan(value: unknown, limit: number): boolean {
  if (limit < 1) return true
  if (value === null || typeof value !== 'object') return false
  const items = Array.isArray(value) ? value : Object.values(value)
  return items.some((item) => deeperThan(item, limit - 1))
}

function numberOf(value: unknown, at: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new OpError(`invalid ${at}: expected a finite number`)
  }
  if (Math.abs(value) > Number.MAX_SAFE_INTEGER) {
    throw new OpError(`invalid ${at}: beyond ±${Number.MAX_SAFE_INTEGER}, where it is not exact`)
  }
  return value
}

/** A UTF-16 code unit is at most 3 bytes of UTF-8: a text that short is within `limit` without
 * being encoded. */
function utf8Longer(text: string, limit: number): boolean {
  return text.length * 3 > limit && new TextEncoder().encode(text).length > limit
}

/** The keys `ops` touch, each once, in first-use order: what prepare locks. */
export function keysOf(ops: readonly Op[]): string[] {
  return [...new Set(keyOps(ops).map((o) => o.key))]
}

/** The operations on keys, without the `sql` ones. */
export function keyOps(ops: readonly Op[]): KeyOp[] {
  return ops.filter((o): o is KeyOp => o.op !== 'sql')
}

/** The `sql` operations, in order. */
export function sqlOps(ops: readonly Op[]): SqlOp[] {
  return ops.filter((o): o is SqlOp => o.op === 'sql')
}

/** True when `ops` only read: such a participant has nothing to commit. */
export function isReadOnly(ops: readonly Op[]): boolean {
  return ops.every((o) => o.op === 'check')
}

/** New values by key after `ops`; `undefined` deletes the key. */
export type Writes = Map<string, Json | undefined>

export type Evaluation = { ok: true; writes: Writes } | { ok: false; reason: string }

/** Runs `ops` in order over the committed values that `read` returns (undefined = absent):
 * the writes they make, or the first reason they cannot all hold. */
export function evaluateOps(
  ops: readonly Op[],
  read: (key: string) => Json | undefined,
): Evaluation {
  const writes: Writes = new Map()
  const current = (key: string) => (writes.has(key) ? writes.get(key) : read(key))
  // A store that runs `sql` does so itself; the store that cannot refuses it before this.
  for (const o of keyOps(ops)) {
    // A set or a delete holds whatever the key holds, so its value is not read: in a store
    // that is a read of the database, at prepare and again at commit, for nothing.
    if (o.op === 'set' || o.op === 'delete') {
      writes.set(o.key, o.op === 'set' ? o.value : undefined)
      continue
    }
    const value = current(o.key)
    const failure = failureOf(o, value)
    if (failure !== null) return { ok: false, reason: failure }
    if (o.op === 'insert') writes.set(o.key, o.value)
    if (o.op === 'add') writes.set(o.key, ((value as number | undefined) ?? 0) + o.amount)
  }
  return { ok: true, writes }
}

/** Why `o` cannot apply to a key whose value is `value`, or null when it can. */
function failureOf(o: KeyOp, value: Json | undefined): string | null {
  if (o.op === 'insert' && value !== undefined) return `key ${o.key} already exists`
  if (o.op === 'add') {
    if (value !== undefined && typeof value !== 'number') return `key ${o.key} is not a number`
    const result = (value ?? 0) + o.amount
    if (o.min !== undefined && result < o.min) return `add would take ${o.key} below ${o.min}`
    // A sum past 2^53 is no longer exact, and past the largest double it is Infinity.
    if (Math.abs(result) > Number.MAX_SAFE_INTEGER) return `add would take ${o.key} out of range`
  }
  if (o.op === 'check' && canonical(value) !== canonical(o.equals)) {
    const shown = value === undefined ? 'absent' : canonical(value)
    return `check failed: key ${o.key} is ${shown.slice(0, 100)}`
  }
  return null
}

/** JSON with object keys sorted, so equal values have equal text; undefined stays undefined.
 * The text JSON.stringify gives of a copy with every object's keys sorted (a property test
 * holds the two equal: a participant's log keeps digests of it), written by a walk: with a
 * replacer, the digests of the prepares' operations were 2.7 % of a loaded cluster's time. */
export function canonical(value: Json | undefined): string {
  if (value === undefined) return 'undefined'
  return walked(value) ?? JSON.stringify(value, sortedKeys)
}

function sortedKeys(_: string, v: unknown): unknown {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v
  return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/** Plain JSON's canonical text, or null where JSON.stringify's own rules would part from a
 * walk: members that are not JSON (undefined, functions), objects that are not plain (a Date
 * has its toJSON), and keys that begin with a digit (an object lists integer keys first, in
 * numeric order). */
function walked(value: unknown): string | null {
  if (value === null) return 'null'
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return JSON.stringify(value)
  }
  if (typeof value !== 'object') return null
  let text = ''
  if (Array.isArray(value)) {
    for (const item of value) {
      const inner = walked(item)
      if (inner === null) return null
      text += text === '' ? inner : `,${inner}`
    }
    return `[${text}]`
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return null
  for (const key of Object.keys(value).sort()) {
    const first = key.charCodeAt(0)
    if (first >= 48 && first <= 57) return null
    const inner = walked((value as Record<string, unknown>)[key])
    if (inner === null) return null
    text += `${text === '' ? '' : ','}${JSON.stringify(key)}:${inner}`
  }
  return `{${text}}`
}
