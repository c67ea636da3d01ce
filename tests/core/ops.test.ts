// Operations a transaction carries to a participant (lib/core/ops.ts): a malformed list is a
// 400 with a message naming the bad field; a well-formed one either holds over the committed
// values (and says what it writes) or gives the first reason it does not (a `no` vote).
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import {
  canonical,
  evaluateOps,
  isReadOnly,
  keysOf,
  MAX_KEY_BYTES,
  MAX_OPS,
  MAX_VALUE_BYTES,
  MAX_VALUE_DEPTH,
  OpError,
  parseOps,
  sqlOps,
  type Json,
  type Op,
} from '../../lib/core/ops.ts'
import { jsonProblem } from '../../lib/wire/limits.ts'

/** The OpError `parseOps(value)` throws; fails the test when it throws nothing or another kind. */
function opError(value: unknown): string {
  try {
    parseOps(value)
  } catch (error) {
    expect(error).toBeInstanceOf(OpError)
    return (error as OpError).message
  }
  throw new Error(`parseOps accepted ${JSON.stringify(value)}`)
}

describe('parseOps', () => {
  const EXAMPLE = '{"op":"set","key":"k","value":1}'
  test.each([
    ['an object', { op: 'set' }, 'invalid "ops": expected an array of operations'],
    ['a string', 'set k 1', 'invalid "ops": expected an array of operations'],
    ['null', null, 'invalid "ops": expected an array of operations'],
    ['a number as an op', [1], `invalid ops[0]: expected an object such as ${EXAMPLE}`],
    ['null as an op', [null], `invalid ops[0]: expected an object such as ${EXAMPLE}`],
    ['an array as an op', [['set']], `invalid ops[0]: expected an object such as ${EXAMPLE}`],
    ['a missing key', [{ op: 'delete' }], 'invalid ops[0].key: expected a string'],
    ['an empty key', [{ op: 'delete', key: '' }], 'invalid ops[0].key: expected a string'],
    ['a numeric key', [{ op: 'delete', key: 7 }], 'invalid ops[0].key: expected a string'],
    [
      'an unknown op, at its index',
      [
        { op: 'delete', key: 'a' },
        { op: 'inc', key: 'a' },
      ],
      'invalid ops[1].op "inc": expected set, delete, insert, add, check or sql',
    ],
    [
      'a missing op',
      [{ key: 'a' }],
      'invalid ops[0].op undefined: expected set, delete, insert, add, check or sql',
    ],
    ['a set without a value', [{ op: 'set', key: 'a' }], 'invalid ops[0]: missing "value"'],
    ['an insert without a value', [{ op: 'insert', key: 'a' }], 'invalid ops[0]: missing "value"'],
    [
      'an add without an amount',
      [{ op: 'add', key: 'n' }],
      'invalid ops[0].amount: expected a finite number',
    ],
    [
      'an add of a numeric string',
      [{ op: 'add', key: 'n', amount: '1' }],
      'invalid ops[0].amount: expected a finite number',
    ],
    [
      'an add of NaN',
      [{ op: 'add', key: 'n', amount: NaN }],
      'invalid ops[0].amount: expected a finite number',
    ],
    [
      'an add of Infinity',
      [{ op: 'add', key: 'n', amount: Infinity }],
      'invalid ops[0].amount: expected a finite number',
    ],
    [
      'an add with a bad min',
      [{ op: 'add', key: 'n', amount: 1, min: null }],
      'invalid ops[0].min: expected a finite number',
    ],
  ])('refuses %s', (_, value, message) => {
    expect(opError(value)).toBe(message)
  })

  test(`refuses more than ${MAX_OPS} operations, and takes exactly ${MAX_OPS}`, () => {
    const ops = Array.from({ length: MAX_OPS }, (_, i) => ({ op: 'delete', key: `k${i}` }))
    expect(parseOps(ops)).toHaveLength(MAX_OPS)
    expect(opError([...ops, { op: 'delete', key: 'one-more' }])).toBe(
      `invalid "ops": more than ${MAX_OPS} operations`,
    )
  })

  // Bytes, not characters: "é" is two bytes in UTF-8.
  test(`a key may be ${MAX_KEY_BYTES} bytes of UTF-8, not one more`, () => {
    expect(parseOps([{ op: 'delete', key: 'é'.repeat(MAX_KEY_BYTES / 2) }])).toHaveLength(1)
    expect(opError([{ op: 'delete', key: `${'é'.repeat(MAX_KEY_BYTES / 2)}x` }])).toBe(
      `invalid ops[0].key: longer than ${MAX_KEY_BYTES} bytes`,
    )
  })

  test(`a value may be ${MAX_VALUE_BYTES} bytes as JSON, not one more`, () => {
    const fits = 'v'.repeat(MAX_VALUE_BYTES - 2) // the two quotes make it MAX_VALUE_BYTES
    expect(parseOps([{ op: 'set', key: 'a', value: fits }])).toHaveLength(1)
    expect(opError([{ op: 'check', key: 'a', equals: `${fits}v` }])).toBe(
      `invalid ops[0].equals: larger than ${MAX_VALUE_BYTES} bytes as JSON`,
    )
  })

  test(`a value may nest ${MAX_VALUE_DEPTH} levels: it fits every message that carries it`, () => {
    const nested = (levels: number): Json => (levels === 1 ? 1 : { a: nested(levels - 1) })
    const deepest = nested(MAX_VALUE_DEPTH)
    expect(parseOps([{ op: 'set', key: 'a', value: deepest }])).toHaveLength(1)
    expect(parseOps([{ op: 'check', key: 'a', equals: [[[]]] }])).toHaveLength(1)
    expect(opError([{ op: 'set', key: 'a', value: nested(MAX_VALUE_DEPTH + 1) }])).toBe(
      `invalid ops[0].value: nested deeper than ${MAX_VALUE_DEPTH} levels`,
    )
    // The deepest wrapping a node relays it in: a batch's prepare, as a statement's parameter.
    const op = { op: 'sql', text: 'SELECT $1', params: [deepest] }
    const batch = { messages: [{ type: 'prepare', txn: 't', ops: [op] }] }
    expect(jsonProblem(JSON.parse(JSON.stringify(batch)))).toBeNull()
    expect(parseOps([op])).toHaveLength(1)
  })

  test('keeps the fields of each op and drops any others', () => {
    const raw = [
      { op: 'set', key: 'a', value: { x: [1, null] }, extra: true },
      { op: 'delete', key: 'b', value: 'ignored' },
      { op: 'insert', key: 'c', value: null },
      { op: 'add', key: 'n', amount: -2.5 },
      { op: 'add', key: 'm', amount: 1, min: 0 },
      { op: 'check', key: 'd' },
      { op: 'check', key: 'e', equals: null },
    ]
    expect(parseOps(raw)).toEqual([
      { op: 'set', key: 'a', value: { x: [1, null] } },
      { op: 'delete', key: 'b' },
      { op: 'insert', key: 'c', value: null },
      { op: 'add', key: 'n', amount: -2.5 },
      { op: 'add', key: 'm', amount: 1, min: 0 },
      { op: 'check', key: 'd' },
      { op: 'check', key: 'e', equals: null },
    ])
  })

  test('an empty list is a list of no operations', () => {
    expect(parseOps([])).toEqual([])
  })
})

describe('evaluateOps', () => {
  const committed: Record<string, Json> = { a: 1, s: 'text', o: { y: 2, x: 1 } }
  const read = (key: string): Json | undefined => committed[key]
  /** `read`, noting each key it reads in `reads`. */
  const readsInto = (reads: string[]) => (key: string) => {
    reads.push(key)
    return read(key)
  }
  const writesOf = (ops: Op[]) => {
    const result = evaluateOps(ops, read)
    if (!result.ok) throw new Error(`expected the ops to hold: ${result.reason}`)
    return Object.fromEntries(result.writes)
  }

  test('each op writes its key: set, insert, delete (as undefined) and add', () => {
    expect(
      writesOf([
        { op: 'set', key: 'a', value: 'new' },
        { op: 'insert', key: 'b', value: [1] },
        { op: 'delete', key: 's' },
        { op: 'add', key: 'n', amount: 5 }, // absent counts as 0
      ]),
    ).toEqual({ a: 'new', b: [1], s: undefined, n: 5 })
  })

  test('later ops see the writes of earlier ones, not only the committed values', () => {
    expect(
      writesOf([
        { op: 'add', key: 'a', amount: 2 },
        { op: 'add', key: 'a', amount: 3 },
        { op: 'check', key: 'a', equals: 6 },
        { op: 'delete', key: 's' },
        { op: 'insert', key: 's', value: 'again' },
      ]),
    ).toEqual({ a: 6, s: 'again' })
  })

  test('checks that hold write nothing', () => {
    expect(
      writesOf([
        { op: 'check', key: 'a', equals: 1 },
        { op: 'check', key: 'o', equals: { x: 1, y: 2 } }, // key order does not matter
        { op: 'check', key: 'absent' },
      ]),
    ).toEqual({})
  })

  test.each([
    [
      'an insert of a key that exists',
      { op: 'insert', key: 'a', value: 2 },
      'key a already exists',
    ],
    ['an add to a string', { op: 'add', key: 's', amount: 1 }, 'key s is not a number'],
    [
      'an add below its min',
      { op: 'add', key: 'a', amount: -2, min: 0 },
      'add would take a below 0',
    ],
    ['a check of another value', { op: 'check', key: 'a', equals: 2 }, 'check failed: key a is 1'],
    [
      'a check of an absent key',
      { op: 'check', key: 'z', equals: 1 },
      'check failed: key z is absent',
    ],
    ['a check for absence', { op: 'check', key: 's' }, 'check failed: key s is "text"'],
  ] as [string, Op, string][])('%s fails with its reason', (_, op, reason) => {
    expect(evaluateOps([op], read)).toEqual({ ok: false, reason })
  })

  test('an add may reach its min exactly', () => {
    expect(writesOf([{ op: 'add', key: 'a', amount: -1, min: 0 }])).toEqual({ a: 0 })
  })

  test('the first failure is the reason, whatever follows', () => {
    const ops: Op[] = [
      { op: 'set', key: 'b', value: 1 },
      { op: 'insert', key: 'b', value: 2 },
      { op: 'add', key: 's', amount: 1 },
    ]
    expect(evaluateOps(ops, read)).toEqual({ ok: false, reason: 'key b already exists' })
  })

  test('a failed check shows at most 100 characters of the value', () => {
    const long = 'x'.repeat(500)
    const result = evaluateOps([{ op: 'check', key: 'k' }], () => long)
    expect(result).toEqual({ ok: false, reason: `check failed: key k is "${'x'.repeat(99)}` })
  })

  test('reads each key from the store only while it has no write of its own', () => {
    const reads: string[] = []
    const counting = readsInto(reads)
    const ops: Op[] = [
      { op: 'add', key: 'a', amount: 1 },
      { op: 'add', key: 'a', amount: 1 },
      { op: 'check', key: 's', equals: 'text' },
    ]
    expect(evaluateOps(ops, counting).ok).toBe(true)
    expect(reads).toEqual(['a', 's'])
  })

  test('reads nothing for a set or a delete: they hold whatever the key holds', () => {
    const reads: string[] = []
    const counting = readsInto(reads)
    const ops: Op[] = [
      { op: 'set', key: 'a', value: 2 },
      { op: 'delete', key: 's' },
      { op: 'set', key: 'absent', value: null },
      { op: 'insert', key: 'b', value: 1 },
      { op: 'add', key: 'a', amount: 1 }, // the set's value, not the committed one
      { op: 'check', key: 'o', equals: { x: 1, y: 2 } },
    ]
    const result = evaluateOps(ops, counting)
    expect(result.ok && Object.fromEntries(result.writes)).toEqual({
      a: 3,
      s: undefined,
      absent: null,
      b: 1,
    })
    expect(reads).toEqual(['b', 'o'])
  })
})

describe('canonical', () => {
  test('sorts object keys at every depth, so equal values have equal text', () => {
    expect(canonical({ b: 1, a: { d: [3, { z: 0, y: 1 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[3,{"y":1,"z":0}]},"b":1}',
    )
    expect(canonical({ x: 1, y: 2 })).toBe(canonical({ y: 2, x: 1 }))
  })

  test('keeps the order of arrays', () => {
    expect(canonical([2, 1])).not.toBe(canonical([1, 2]))
  })

  test('absent is its own text, unlike null or the string "undefined"', () => {
    expect(canonical(undefined)).toBe('undefined')
    expect(canonical(null)).toBe('null')
    expect(canonical('undefined')).toBe('"undefined"')
  })

  // The digests in a participant's log were taken of this text: any JSON value, parsed from a
  // request or built in code, has exactly the text it had.
  const sortedCopy = (value: unknown) =>
    JSON.stringify(value, (_, v: unknown) =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
    )
  const keys = fc.oneof(
    fc.string(),
    fc.constantFrom('0', '9', '10', '01', '4294967295', '__proto__', 'toJSON', 'é', '\u{1F600}'),
  )
  const tricky = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.jsonValue({ maxDepth: 2 }),
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(keys, tie('value'), { maxKeys: 5 }),
    ),
  })).value

  test('is the text of JSON.stringify over a copy with sorted keys', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), tricky), (value) => {
        expect(canonical(value as Json)).toBe(sortedCopy(value))
        // The same value as a request carries it, parsed from its text.
        const parsed = JSON.parse(JSON.stringify(value)) as Json
        expect(canonical(parsed)).toBe(sortedCopy(parsed))
      }),
      { numRuns: 2000 },
    )
  })

  test('integer keys first in numeric order, as JSON.stringify writes them', () => {
    const value = JSON.parse('{"b":1,"10":2,"9":3,"__proto__":{"z":[{"y":2,"x":1}]},"a":null}')
    expect(canonical(value)).toBe('{"9":3,"10":2,"__proto__":{"z":[{"x":1,"y":2}]},"a":null,"b":1}')
  })

  test('members that are not JSON are written as JSON.stringify writes them', () => {
    const values: [unknown, string][] = [
      [{ z: new Date(0), a: 1 }, '{"a":1,"z":"1970-01-01T00:00:00.000Z"}'],
      [{ z: undefined, a: 1 }, '{"a":1}'],
      [{ z: () => 1, a: 1 }, '{"a":1}'],
      [[undefined, { z: 1, y: 2 }], '[null,{"y":2,"z":1}]'],
    ]
    for (const [value, text] of values) {
      expect(canonical(value as Json)).toBe(text)
      expect(canonical(value as Json)).toBe(sortedCopy(value))
    }
  })
})

describe('keysOf and isReadOnly', () => {
  test('keysOf lists each key once, in the order ops first use it', () => {
    const ops: Op[] = [
      { op: 'set', key: 'b', value: 1 },
      { op: 'check', key: 'a' },
      { op: 'add', key: 'b', amount: 1 },
      { op: 'delete', key: 'c' },
    ]
    expect(keysOf(ops)).toEqual(['b', 'a', 'c'])
    expect(keysOf([])).toEqual([])
  })

  test('ops that only check are read-only; any write is not', () => {
    expect(
      isReadOnly([
        { op: 'check', key: 'a' },
        { op: 'check', key: 'b', equals: 1 },
      ]),
    ).toBe(true)
    expect(
      isReadOnly([
        { op: 'check', key: 'a' },
        { op: 'delete', key: 'b' },
      ]),
    ).toBe(false)
    expect(isReadOnly([{ op: 'add', key: 'n', amount: 0 }])).toBe(false)
  })
})

describe('sql operations', () => {
  test('parse with their parameters and expect; params default to none', () => {
    const ops = parseOps([
      { op: 'sql', text: 'UPDATE t SET n = $1', params: [1], expect: { rows: 1 } },
      { op: 'sql', text: 'SELECT 1' },
    ])
    expect(ops).toEqual([
      { op: 'sql', text: 'UPDATE t SET n = $1', params: [1], expect: { rows: 1 } },
      { op: 'sql', text: 'SELECT 1', params: [] },
    ])
  })

  test.each([
    ['no text', [{ op: 'sql' }], 'invalid ops[0].text: expected an SQL statement'],
    ['blank text', [{ op: 'sql', text: '  ' }], 'invalid ops[0].text: expected an SQL statement'],
    ['params not an array', [{ op: 'sql', text: 'x', params: 1 }], 'invalid ops[0].params'],
    ['a bad expect', [{ op: 'sql', text: 'x', expect: { rows: -1 } }], 'invalid ops[0].expect'],
    ['a NUL in the text', [{ op: 'sql', text: 'x\0' }], 'invalid ops[0].text'],
  ])('refuse %s', (_, value, message) => {
    expect(opError(value)).toStartWith(message)
  })

  test('touch no key and take no part in the key operations', () => {
    const ops: Op[] = [
      { op: 'sql', text: 'SELECT 1', params: [] },
      { op: 'add', key: 'n', amount: 2 },
    ]
    expect(keysOf(ops)).toEqual(['n'])
    const evaluation = evaluateOps(ops, () => undefined)
    expect(evaluation).toEqual({ ok: true, writes: new Map([['n', 2]]) })
    expect(sqlOps(ops)).toEqual([{ op: 'sql', text: 'SELECT 1', params: [] }])
  })
})
