// The `start` line: `[ID] [2PC] [OP [--on P]...]...` read from argv into a transaction id, a
// protocol and the operations, each with the participants its `--on` flags name. No I/O here:
// which participant an `--on` means is routing.ts's business, sending it is commands.ts's.
import { parseArgs } from 'node:util'
import { UsageError } from './args.ts'
import { CLIENT_FLAGS } from './http.ts'
import { isTxnId, type Json, type Op } from '../core/index.ts'

const KEYWORDS = ['set', 'insert', 'delete', 'add', 'check', 'sql'] as const

function isKeyword(word: string): boolean {
  return (KEYWORDS as readonly string[]).includes(word.toLowerCase())
}

function isProtocol(word: string): boolean {
  return /^\d+pc$/i.test(word)
}

/** One operation of the line and the participants its `--on` flags name (none: all). */
export type LineOp = { op: Op; on: string[] }
export type StartLine = { id?: string; protocol?: '2pc' | '3pc'; ops: LineOp[] }

type Item = { kind: 'word'; value: string } | { kind: 'on'; value: string }

/** The arguments of `start`: the client flags and the line they leave. */
export function readStartLine(argv: string[]): {
  values: { coordinator?: string; json?: boolean; timeout?: string }
  line: StartLine
} {
  // Negative numbers (`ADD balance -100`) are words, not flags: parse a masked copy and read
  // every word back from `argv` by its index.
  const masked = argv.map((a) => (/^-\.?\d/.test(a) ? '0' : a))
  const { values, tokens } = parseArgs({
    args: masked,
    options: { ...CLIENT_FLAGS, on: { type: 'string', multiple: true } },
    allowPositionals: true,
    strict: true,
    tokens: true,
  })
  const items: Item[] = []
  for (const token of tokens) {
    if (token.kind === 'positional') items.push({ kind: 'word', value: argv[token.index]! })
    if (token.kind === 'option' && token.name === 'on') {
      // The value as typed (the masked copy may have changed it).
      const value = token.inlineValue ? token.value : argv[token.index + 1]
      items.push({ kind: 'on', value: value ?? '' })
    }
  }
  return { values, line: parseStartLine(items) }
}

/** Where the parse is in the words and `--on` flags, in command-line order. */
type Cursor = { items: readonly Item[]; at: number }

function peekWord(cursor: Cursor): string | undefined {
  const item = cursor.items[cursor.at]
  return item?.kind === 'word' ? item.value : undefined
}

/** The next word, which `keyword` needs as `what`. */
function takeWord(cursor: Cursor, keyword: string, what: string): string {
  const value = peekWord(cursor)
  if (value === undefined) throw new UsageError(`start: ${keyword.toUpperCase()} needs ${what}`)
  cursor.at += 1
  return value
}

/** Parses `[ID] [2PC|3PC] [OP [--on P]...]...`. */
function parseStartLine(items: readonly Item[]): StartLine {
  const line: StartLine = { ops: [] }
  const cursor: Cursor = { items, at: 0 }
  const first = peekWord(cursor)
  if (first !== undefined && !isKeyword(first) && !isProtocol(first)) {
    if (!isTxnId(first)) {
      throw new UsageError(`start: invalid transaction id ${JSON.stringify(first)}`)
    }
    line.id = first
    cursor.at += 1
  }
  const second = peekWord(cursor)
  if (second !== undefined && isProtocol(second)) {
    const protocol = second.toLowerCase()
    if (protocol !== '2pc' && protocol !== '3pc') {
      throw new UsageError(`start: unsupported protocol ${JSON.stringify(second)}: 2PC or 3PC`)
    }
    line.protocol = protocol
    cursor.at += 1
  }
  while (cursor.at < items.length) line.ops.push(parseLineOp(cursor))
  return line
}

/** One `OP [--on P]...`. */
function parseLineOp(cursor: Cursor): LineOp {
  const item = cursor.items[cursor.at]!
  if (item.kind === 'on') throw new UsageError('start: --on must follow an operation')
  if (!isKeyword(item.value)) {
    throw new UsageError(
      `start: expected an operation (SET, INSERT, DELETE, ADD, CHECK or SQL), ` +
        `got ${JSON.stringify(item.value)}`,
    )
  }
  cursor.at += 1
  const op = parseOp(cursor, item.value.toLowerCase())
  const on: string[] = []
  while (cursor.items[cursor.at]?.kind === 'on') on.push(cursor.items[cursor.at++]!.value)
  return { op, on }
}

/** The words after `keyword` (lower case): its key, then what that operation takes. */
function parseOp(cursor: Cursor, keyword: string): Op {
  if (keyword === 'sql') return parseSql(cursor)
  const key = takeWord(cursor, keyword, 'a key')
  if (keyword === 'set' || keyword === 'insert') {
    return { op: keyword, key, value: valueOf(takeWord(cursor, keyword, 'a value')) }
  }
  if (keyword === 'delete') return { op: 'delete', key }
  if (keyword === 'add') {
    const amount = numberOf(takeWord(cursor, keyword, 'an amount'), 'amount')
    if (peekWord(cursor)?.toLowerCase() !== 'min') return { op: 'add', key, amount }
    cursor.at += 1
    const min = numberOf(takeWord(cursor, keyword, 'a number after MIN'), 'MIN')
    return { op: 'add', key, amount, min }
  }
  // CHECK KEY [VALUE]: a word that is no keyword is the value the key must hold.
  const next = peekWord(cursor)
  if (next === undefined || isKeyword(next)) return { op: 'check', key }
  return { op: 'check', key, equals: valueOf(takeWord(cursor, keyword, 'a value')) }
}

/** `SQL TEXT [PARAMS] [ROWS N]`: PARAMS a JSON array, ROWS the row count it must affect. */
function parseSql(cursor: Cursor): Op {
  const text = takeWord(cursor, 'sql', 'a statement')
  let params: Json[] = []
  const next = peekWord(cursor)
  if (next !== undefined && next.trimStart().startsWith('[')) {
    const value = valueOf(takeWord(cursor, 'sql', 'parameters'))
    if (!Array.isArray(value)) {
      throw new UsageError(`start: invalid SQL parameters ${JSON.stringify(next)}: a JSON array`)
    }
    params = value
  }
  if (peekWord(cursor)?.toLowerCase() !== 'rows') return { op: 'sql', text, params }
  cursor.at += 1
  const rows = numberOf(takeWord(cursor, 'sql', 'a row count after ROWS'), 'ROWS')
  if (!Number.isSafeInteger(rows) || rows < 0) {
    throw new UsageError(`start: invalid ROWS ${rows}: expected a whole number`)
  }
  return { op: 'sql', text, params, expect: { rows } }
}

/** A value on the command line: JSON when it parses as JSON, else the word as a string. */
function valueOf(text: string): Json {
  try {
    return JSON.parse(text) as Json
  } catch {
    return text
  }
}

function numberOf(text: string, what: string): number {
  const n = Number(text)
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) || !Number.isFinite(n)) {
    throw new UsageError(`start: invalid ${what} ${JSON.stringify(text)}: expected a number`)
  }
  return n
}
