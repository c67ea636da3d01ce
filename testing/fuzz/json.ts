// JSON text for hostile requests, built as text rather than as values, so that what JSON.parse
// would never give back can be sent: 1e999, duplicate keys, lone surrogates as escapes,
// nesting thousands deep, numbers past 2^53, and bodies that are almost JSON.
import fc from 'fast-check'

/** A fragment of JSON text (some deliberately not valid JSON). */
export type Text = string
/** A JSON object as its entries, in order, keys possibly repeated: [key, value text]. */
export type Entries = readonly (readonly [string, Text])[]

export const q = (s: string): Text => JSON.stringify(s)

type Pair = readonly [string, Text]

/** The entries given, those that are null left out. */
export function entries(...pairs: (Pair | null)[]): Entries {
  return pairs.filter((p): p is Pair => p !== null)
}

export function objectText(entries: Entries): Text {
  return `{${entries.map(([k, v]) => `${q(k)}:${v}`).join(',')}}`
}

export function arrayText(items: readonly Text[]): Text {
  return `[${items.join(',')}]`
}

/** Numbers where parsers and stores disagree, and some that are not JSON at all. */
export const NUMBER_TEXTS: readonly Text[] = [
  '0',
  '-0',
  '1',
  '-1',
  '1.5',
  '1e999',
  '-1e999',
  '1e-999',
  '5e-324',
  '1.7976931348623157e308',
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '-9007199254740993',
  '123456789012345678901234567890',
  '1e21',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x10',
  '01',
  '.5',
  '1.',
  '+1',
  '1e',
  '--1',
  '"NaN"',
  '"1e999"',
  '"-0"',
]

/** Strings that are ill-formed, odd or hostile once parsed (escapes) or once decoded (raw). */
export const STRING_TEXTS: readonly Text[] = [
  '""',
  '" "',
  '"\\ud800"',
  '"a\\udc00b"',
  '"\\udbff\\udfff"',
  '"\ud800"', // a raw lone surrogate: the request's UTF-8 encoding turns it into U+FFFD
  '"\\u0000"',
  '"a\\nb"',
  '"\u2028\u2029"',
  '"\\uZZZZ"',
  '"unterminated',
  '"tab\tinside"',
  '"é😀"',
  '"../../etc/passwd"',
  '"<script>"',
  '"%00%ff"',
  '"__proto__"',
]

const cache = new Map<string, Text>()
function cached(name: string, make: () => Text): Text {
  let text = cache.get(name)
  if (text === undefined) cache.set(name, (text = make()))
  return text
}

/** Strings just inside and just past each limit: key 256 bytes, value 64 KiB as JSON, id 128
 * characters, URL 2048 characters. */
export const hugeStringText: fc.Arbitrary<Text> = fc
  .constantFrom(
    ...['a', 'é'].flatMap((c) => [255, 256, 257].map((bytes) => ({ c, bytes }))),
    { c: 'value', bytes: 65_534 },
    { c: 'value', bytes: 65_535 },
    { c: 'id', bytes: 128 },
    { c: 'id', bytes: 129 },
    { c: 'url', bytes: 2048 },
    { c: 'url', bytes: 2049 },
  )
  .map(({ c, bytes }) =>
    cached(`${c}${bytes}`, () => {
      if (c === 'é') return q('é'.repeat(Math.floor(bytes / 2)) + (bytes % 2 ? 'a' : ''))
      if (c === 'value') return q('v'.repeat(bytes))
      if (c === 'id') return q('t'.repeat(bytes))
      if (c === 'url') return q('http://h/' + 'p'.repeat(bytes - 9))
      return q(c.repeat(bytes))
    }),
  )

/** Arrays or objects nested around the depth limit (64) and far past it. */
export const deepText: fc.Arbitrary<Text> = fc
  .record({
    depth: fc.constantFrom(1, 58, 60, 61, 62, 63, 64, 65, 66, 200, 5000, 30_000),
    kind: fc.constantFrom('array', 'object'),
  })
  .map(({ depth, kind }) =>
    cached(`${kind}${depth}`, () =>
      kind === 'array'
        ? '['.repeat(depth) + ']'.repeat(depth)
        : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth),
    ),
  )

/** Any string: any code point, or only a few characters (so that keys collide). */
export const anyString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', ':', '_', '1', 'é'), maxLength: 6 }),
)

/** A value of any type, shape or size that a field might be given instead of the right one. */
export const hostileValue: fc.Arbitrary<Text> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NUMBER_TEXTS) },
  { weight: 4, arbitrary: fc.constantFrom(...STRING_TEXTS) },
  { weight: 3, arbitrary: anyString.map(q) },
  { weight: 2, arbitrary: fc.constantFrom('true', 'false', 'null', '[]', '{}', '[null]') },
  { weight: 2, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 2, arbitrary: hugeStringText },
  { weight: 2, arbitrary: deepText },
  { weight: 1, arbitrary: fc.constantFrom('undefined', "'single'", '{', ']', '', '"a" "b"') },
)

/** A whole body spoiled as text: cut short, with junk around it, or not JSON at all. */
export function corrupted(text: Text): fc.Arbitrary<Text> {
  return fc.oneof(
    fc.nat({ max: Math.max(0, text.length - 1) }).map((n) => text.slice(0, n)),
    fc.constantFrom('x', '}', ',', ']', '\u0000', ' garbage').map((junk) => text + junk),
    fc.constantFrom('\uFEFF', '/* c */', ',', '[').map((junk) => junk + text),
    fc.constant(` \n\t${text}\r\n `), // whitespace around JSON is still JSON
    fc.constant(`[${text}]`),
    fc.constant(text.replaceAll('"', "'")),
    fc.constant(text.replace(/}$/, ',}')),
    fc.constantFrom('', '   ', 'null', 'true', '0', '"str"', '[]', 'nope', 'txn=t1', '<a/>'),
  )
}
