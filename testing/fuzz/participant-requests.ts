// Requests to a participant: every endpoint's body valid or almost, its ids and keys from small
// pools (so prepares, commits and aborts meet the same transactions and locks), and every
// other method and path.
import fc from 'fast-check'
import { arrayText, entries, hostileValue, objectText, q, type Entries, type Text } from './json.ts'
import {
  almost,
  anyMethod,
  bodyOf,
  field,
  get,
  headers,
  post,
  request,
  segment,
  unknownRequest,
  type FuzzRequest,
} from './requests.ts'

const TXN_POOL = [...Array.from({ length: 24 }, (_, i) => `p${i}`), 't1', 't2', 'x.y:z', 'A-1_b']

/** Mostly ids from the pool, sometimes a fresh one. */
export const txnId: fc.Arbitrary<string> = fc.oneof(
  { weight: 9, arbitrary: fc.constantFrom(...TXN_POOL) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,16}$/) },
)

export const BAD_TXNS: readonly Text[] = [
  ...['', ' ', 'bad id', '-a', '.a', 'a/b', 'é', 'a\nb', 't1 ', 'T1\u0000', '%74%31'].map(q),
  q('t'.repeat(129)),
  q('t'.repeat(128)),
  '1',
  'null',
  'true',
  '[]',
  '{}',
  '["t1"]',
]

const txnText = field(txnId, BAD_TXNS)

// Keys whose order differs between UTF-16 (JavaScript's `<`) and UTF-8 (SQLite's): '\uE000',
// '\uFFFD', '😀'; and keys that a path or a C string would cut: '/', '%2F', NUL.
const KEY_POOL = [
  'k0',
  'k1',
  'k2',
  'balance',
  'ключ',
  '😀',
  '\uE000',
  '\uFFFD',
  'a b',
  'a/b',
  '%2F',
]
const ODD_KEYS = ['\u0000k', 'k\u0000', 'z', 'k']

const key = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...KEY_POOL) },
  { weight: 1, arbitrary: fc.constantFrom(...ODD_KEYS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }) },
)

const value: fc.Arbitrary<Text> = fc.oneof(
  fc.integer({ min: -100, max: 100 }).map(String),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  fc.constantFrom('null', '"x"', '{"a":[1,2]}', '9007199254740991', '-0'),
)

const amount = fc.integer({ min: -60, max: 60 }).map(String)

/** One operation of each kind, with its fields. */
const opEntries: fc.Arbitrary<Entries> = fc.oneof(
  fc
    .tuple(fc.constantFrom('set', 'insert'), key, value)
    .map(([op, k, v]) => entries(['op', q(op)], ['key', q(k)], ['value', v])),
  key.map((k) => entries(['op', q('delete')], ['key', q(k)])),
  fc
    .tuple(key, amount, fc.option(fc.integer({ min: -10, max: 50 }).map(String)))
    .map(([k, a, min]) =>
      entries(['op', q('add')], ['key', q(k)], ['amount', a], min === null ? null : ['min', min]),
    ),
  fc
    .tuple(key, fc.option(value))
    .map(([k, v]) => entries(['op', q('check')], ['key', q(k)], v === null ? null : ['equals', v])),
  // A statement: only a participant started with --allow-sql runs one (the fuzzed ones: 400).
  fc
    .tuple(key, fc.array(value, { maxLength: 3 }), fc.option(amount))
    .map(([text, params, rows]) =>
      entries(
        ['op', q('sql')],
        ['text', q(text)],
        ['params', arrayText(params)],
        rows === null ? null : ['expect', `{"rows":${rows}}`],
      ),
    ),
)

const manyOps = (n: number) =>
  arrayText(Array.from({ length: n }, (_, i) => `{"op":"set","key":"m${i % 7}","value":${i}}`))
const MANY_OPS = [manyOps(1000), manyOps(1001)]

/** An `ops` list: a few operations, each valid or almost, or a list at the limit (1000). */
export const opsText: fc.Arbitrary<Text> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.array(almost(opEntries, 8).map(objectText), { maxLength: 4 }).map(arrayText),
  },
  { weight: 1, arbitrary: fc.constantFrom(...MANY_OPS) },
)

const URLS = ['http://127.0.0.1:1', 'https://peer.example:9443/base', 'http://[::1]:9']
const BAD_URLS = [q('ftp://x'), q('http://a b'), q('localhost:9000'), '1', 'null', q('')]

const urlText = field(fc.constantFrom(...URLS), BAD_URLS)
const peersText = fc.oneof(
  { weight: 6, arbitrary: fc.array(urlText, { maxLength: 3 }).map(arrayText) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(64, 65).map((n) => arrayText(Array(n).fill(q(URLS[0]!)))),
  },
)

const optional = (name: string, text: fc.Arbitrary<Text>) =>
  fc.option(
    text.map((t) => [name, t] as const),
    { freq: 2 },
  )

/** What a prepare carries: the transaction, and maybe operations, whom to ask, one phase. */
function prepareEntries(type?: string): fc.Arbitrary<Entries> {
  return fc
    .tuple(
      txnText,
      optional('ops', opsText),
      optional('coordinator', urlText),
      optional('participants', peersText),
      optional('onePhase', fc.constantFrom('true', 'false', '"yes"')),
    )
    .map(([txn, ...rest]) => [
      ...(type === undefined ? [] : [['type', q(type)] as const]),
      ['txn', txn] as const,
      ...rest.filter((e) => e !== null),
    ])
}

const txnEntries: fc.Arbitrary<Entries> = txnText.map((t) => [['txn', t]])

/** Three-phase messages: a transaction and an attempt number, right or wrong. */
const attemptEntries: fc.Arbitrary<Entries> = fc
  .tuple(txnText, field(fc.nat(5).map(String), ['-1', '1.5', q('1'), 'null', '4294967296']))
  .map(([txn, attempt]) => [
    ['txn', txn],
    ['attempt', attempt],
  ])

const batchItem: fc.Arbitrary<Text> = fc
  .oneof(
    { weight: 3, arbitrary: prepareEntries('prepare') },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.constantFrom('commit', 'abort', 'precommit', 'Commit'), txnText).map(
        ([type, txn]) =>
          [
            ['type', q(type)],
            ['txn', txn],
          ] as const,
      ),
    },
  )
  .chain((e) => almost(fc.constant(e), 8))
  .map(objectText)

const bigBatch = (n: number) =>
  arrayText(Array.from({ length: n }, (_, i) => `{"type":"commit","txn":"never${i}"}`))

const messagesText: fc.Arbitrary<Text> = fc.oneof(
  { weight: 12, arbitrary: fc.array(batchItem, { maxLength: 5 }).map(arrayText) },
  { weight: 1, arbitrary: fc.constantFrom(bigBatch(256), bigBatch(257)) },
  { weight: 1, arbitrary: fc.array(hostileValue, { maxLength: 3 }).map(arrayText) },
)

const resolveEntries: fc.Arbitrary<Entries> = fc
  .tuple(txnText, field(fc.constantFrom('commit', 'abort'), [q('Commit'), q('aborted'), '1']))
  .map(([txn, decision]) => [
    ['txn', txn],
    ['decision', decision],
  ])

/** Bodies just inside and just past the 1 MiB limit: a valid prepare padded out. */
const padded = (over: number) => {
  const head = '{"txn":"big1","pad":"'
  return head + 'x'.repeat(1024 * 1024 - head.length - 2 + over) + '"}'
}
const limitBody = fc.constantFrom(padded(0), padded(1))

const kvList = fc
  .tuple(
    fc.option(fc.oneof(fc.constantFrom('k', 'm', '', '%', '%ED%A0%80', '_'), fc.string())),
    fc.option(
      fc.constantFrom('0', '1', '2', '100', '10000', '10001', '-1', '1e3', 'x', '', ' 5', '05'),
    ),
    fc.boolean(),
  )
  .map(([prefix, limit, twice]) => {
    const query = new URLSearchParams()
    if (prefix !== null) query.append('prefix', prefix)
    if (limit !== null) query.append('limit', limit)
    if (twice && limit !== null) query.append('limit', '3')
    return `/kv?${query}`
  })

/** The participant's routes, for requests with wrong methods. */
export const PARTICIPANT_PATHS = [
  '/prepare',
  '/commit',
  '/abort',
  '/batch',
  '/decision-request',
  '/precommit',
  '/preabort',
  '/state-request',
  '/resolve',
  '/transactions/t1',
  '/kv/k0',
  '/kv',
  '/status',
  '/healthz',
  '/metrics',
  '/transactions', // the coordinator's
]

/** Any request to a participant. */
export const participantRequest: fc.Arbitrary<FuzzRequest> = fc.oneof(
  { weight: 25, arbitrary: post('/prepare', bodyOf(almost(prepareEntries()))) },
  { weight: 12, arbitrary: post('/commit', bodyOf(almost(txnEntries))) },
  { weight: 8, arbitrary: post('/abort', bodyOf(almost(txnEntries))) },
  {
    weight: 10,
    arbitrary: post('/batch', bodyOf(almost(messagesText.map((m) => [['messages', m]])))),
  },
  { weight: 5, arbitrary: post('/decision-request', bodyOf(almost(txnEntries))) },
  { weight: 3, arbitrary: post('/precommit', bodyOf(almost(attemptEntries))) },
  { weight: 2, arbitrary: post('/preabort', bodyOf(almost(attemptEntries))) },
  { weight: 3, arbitrary: post('/state-request', bodyOf(almost(attemptEntries))) },
  { weight: 5, arbitrary: post('/resolve', bodyOf(almost(resolveEntries))) },
  { weight: 1, arbitrary: fc.tuple(limitBody, headers).map(bigPrepare) },
  { weight: 6, arbitrary: get(segment(txnId).map((s) => `/transactions/${s}`)) },
  { weight: 4, arbitrary: get(segment(key).map((s) => `/kv/${s}`)) },
  { weight: 4, arbitrary: get(kvList) },
  { weight: 3, arbitrary: get(fc.constantFrom('/status', '/healthz', '/metrics', '/status?x=1')) },
  { weight: 6, arbitrary: anyMethod(PARTICIPANT_PATHS) },
  { weight: 5, arbitrary: unknownRequest },
)

function bigPrepare([body, h]: [string, Record<string, string>]): FuzzRequest {
  return request({ method: 'POST', path: '/prepare', headers: h, body })
}
