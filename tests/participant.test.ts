// The participant's HTTP interface, in process: `createApp(node).request()` with no sockets, each
// test on a fresh directory, asserting status, body and the files on disk.
import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Hono } from 'hono'
import { createApp } from '../lib/http/participant-app.ts'
import { ParticipantNode, SqliteStore, parseVotes, readVotesFile } from '../lib.ts'
import { MAX_BODY_BYTES } from '../lib/http/json-errors.ts'
import type { VotesFile } from '../lib.ts'

const dirs: string[] = []
const nodes = new Set<ParticipantNode>()

afterEach(async () => {
  for (const node of nodes) await node.close()
  nodes.clear()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'participant-test-'))
  dirs.push(dir)
  return dir
}

type Participant = { dir: string; node: ParticipantNode; app: Hono }

/** A started participant on `dir` (a fresh one by default) and its app. */
async function open(votes: VotesFile | null = null, dir = tempDir()): Promise<Participant> {
  const node = new ParticipantNode(dir, votes)
  nodes.add(node)
  await node.start()
  return { dir, node, app: createApp(node) }
}

async function close(p: Participant): Promise<void> {
  nodes.delete(p.node)
  await p.node.close()
}

const JSON_ACCEPT = { Accept: 'application/json' }

function post(p: Participant, path: string, body: unknown, headers: Record<string, string> = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  return p.app.request(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: text,
  })
}

const prepare = (p: Participant, txn: string, headers?: Record<string, string>) =>
  post(p, '/prepare', { txn }, headers)
const commit = (p: Participant, txn: string, headers?: Record<string, string>) =>
  post(p, '/commit', { txn }, headers)
const abort = (p: Participant, txn: string, headers?: Record<string, string>) =>
  post(p, '/abort', { txn }, headers)

/** state.txt as bytes, or null when it does not exist. */
function stateBytes(p: Participant): Buffer | null {
  const path = join(p.dir, 'state.txt')
  return existsSync(path) ? readFileSync(path) : null
}

const stateText = (p: Participant) => readFileSync(join(p.dir, 'state.txt'), 'utf8')

async function txnState(p: Participant, txn: string): Promise<string> {
  const res = await p.app.request(`/transactions/${txn}`)
  expect(res.status).toBe(200)
  const body = (await res.json()) as { txn: string; state: string }
  expect(body.txn).toBe(txn)
  return body.state
}

async function status(p: Participant): Promise<unknown> {
  const res = await p.app.request('/status')
  expect(res.status).toBe(200)
  return res.json()
}

/** Everything a refused request must leave alone. */
async function snapshot(p: Participant, txns: readonly string[]) {
  return {
    state: stateBytes(p),
    records: (p.node.store as SqliteStore).records().length,
    txns: await Promise.all(txns.map((t) => txnState(p, t))),
    status: await status(p),
  }
}

/** A 4xx (`status`) with a JSON body `{ error: string }`. */
async function expectError(res: Response, status: number): Promise<string> {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type') ?? '').toContain('application/json')
  const body = (await res.json()) as { error?: unknown }
  expect(typeof body.error).toBe('string')
  expect((body.error as string).length).toBeGreaterThan(0)
  return body.error as string
}

/** t1 committed, t2 aborted, t3 prepared: a participant with something to lose. */
async function seeded(): Promise<Participant> {
  const p = await open()
  for (const txn of ['t1', 't2', 't3']) expect((await prepare(p, txn)).status).toBe(200)
  expect((await commit(p, 't1')).status).toBe(200)
  expect((await abort(p, 't2')).status).toBe(200)
  expect(stateText(p)).toBe('t1=committed\nt2=aborted\n')
  return p
}
const SEEDED = ['t1', 't2', 't3']

describe('prepare', () => {
  test('votes yes or no per votes.txt, in plain text', async () => {
    const p = await open(parseVotes('yes\nno\n'))
    for (const [txn, vote] of [
      ['t1', 'yes'],
      ['t2', 'no'],
      ['t3', 'no'], // no line for t3
      ['x1', 'no'], // not of the form tN
    ] as const) {
      const res = await prepare(p, txn)
      expect(res.status).toBe(200)
      expect(await res.text()).toBe(vote)
    }
    expect(await txnState(p, 't1')).toBe('prepared')
    // A no vote is a unilateral abort: it is an outcome, and state.txt shows it.
    expect(await txnState(p, 't2')).toBe('aborted')
    expect(stateText(p)).toBe('t2=aborted\nt3=aborted\nx1=aborted\n')
  })

  test('reads the votes from a votes.txt on disk', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'votes.txt'), 'no\r\nYES\n\n')
    const p = await open(readVotesFile(dir), dir)
    expect(await (await prepare(p, 't1')).text()).toBe('no')
    expect(await (await prepare(p, 't2')).text()).toBe('yes')
  })

  test('answers JSON {txn, vote, reason} with Accept: application/json', async () => {
    const p = await open(parseVotes('yes\nno\n'))
    const yes = await prepare(p, 't1', JSON_ACCEPT)
    expect(yes.status).toBe(200)
    expect(yes.headers.get('content-type') ?? '').toContain('application/json')
    const yesBody = (await yes.json()) as Record<string, unknown>
    expect(yesBody).toMatchObject({ txn: 't1', vote: 'yes' })
    expect('reason' in yesBody).toBe(true)
    const no = await prepare(p, 't2', JSON_ACCEPT)
    expect(no.status).toBe(200)
    const noBody = (await no.json()) as Record<string, unknown>
    expect(noBody).toMatchObject({ txn: 't2', vote: 'no' })
    expect(typeof noBody.reason).toBe('string')
  })

  test('votes yes on everything without votes.txt', async () => {
    const dir = tempDir()
    expect(readVotesFile(dir)).toBeNull()
    const p = await open(readVotesFile(dir), dir)
    for (const txn of ['t1', 't2', 't99', 'order-7', 'A'.repeat(128)]) {
      const res = await prepare(p, txn)
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('yes')
      expect(await txnState(p, txn)).toBe('prepared')
    }
  })

  test('a yes vote is in the log by the time it is answered', async () => {
    const p = await open()
    expect((p.node.store as SqliteStore).records()).toEqual([])
    expect(await (await prepare(p, 't1')).text()).toBe('yes')
    expect((p.node.store as SqliteStore).records()).toEqual([
      expect.objectContaining({ txn: 't1', state: 'prepared' }),
    ])
    // A prepared transaction is not decided: state.txt does not list it.
    expect(stateText(p)).toBe('')
  })
})

describe('commit and abort', () => {
  test('answer 200 once the outcome is in state.txt', async () => {
    const p = await open()
    expect(await txnState(p, 't1')).toBe('unknown')
    await prepare(p, 't1')
    await prepare(p, 't2')
    expect(await txnState(p, 't1')).toBe('prepared')
    const c = await commit(p, 't1')
    expect(c.status).toBe(200)
    expect(await c.text()).toBe('committed')
    expect(stateText(p)).toBe('t1=committed\n')
    const a = await abort(p, 't2')
    expect(a.status).toBe(200)
    expect(await a.text()).toBe('aborted')
    expect(stateText(p)).toBe('t1=committed\nt2=aborted\n')
    expect(await txnState(p, 't1')).toBe('committed')
    expect(await txnState(p, 't2')).toBe('aborted')
    expect(await txnState(p, 't3')).toBe('unknown')
  })

  // Rule: in a batch an outcome record may wait a moment to share a flush, but its answer still
  // waits until it is in the log.
  test('in a batch, a commit and an abort are answered once they are in the log', async () => {
    const p = await open()
    await prepare(p, 't1')
    await prepare(p, 't2')
    const messages = [
      { type: 'commit', txn: 't1' },
      { type: 'abort', txn: 't2' },
    ]
    const res = await p.app.request('/batch', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages }),
    })
    expect(res.status).toBe(200)
    expect((p.node.store as SqliteStore).records()).toEqual([
      expect.objectContaining({ txn: 't1', state: 'prepared' }),
      expect.objectContaining({ txn: 't2', state: 'prepared' }),
      expect.objectContaining({ txn: 't1', state: 'committed' }),
      expect.objectContaining({ txn: 't2', state: 'aborted' }),
    ])
  })

  test('answer JSON with Accept: application/json', async () => {
    const p = await open()
    await prepare(p, 't1')
    const res = await commit(p, 't1', JSON_ACCEPT)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ txn: 't1', state: 'committed' })
  })

  test('state.txt is sorted by transaction id in plain string order', async () => {
    const p = await open()
    const ids = ['t2', 't10', 't1', 'b', 'B1', 't3', 'a.1', 'a-1', 'a:1', 'a_1']
    for (const txn of ids) await prepare(p, txn)
    for (const [i, txn] of ids.entries()) {
      expect((await (i % 2 === 0 ? commit(p, txn) : abort(p, txn))).status).toBe(200)
    }
    // Code-unit order: upper case before lower, '-' < '.' < ':' < '_', t10 before t2.
    expect(stateText(p)).toBe(
      [
        'B1=committed',
        'a-1=aborted',
        'a.1=committed',
        'a:1=committed',
        'a_1=aborted',
        'b=aborted',
        't1=committed',
        't10=aborted',
        't2=committed',
        't3=aborted',
        '',
      ].join('\n'),
    )
  })

  test('GET /transactions/:txn gives every state', async () => {
    const p = await open()
    await prepare(p, 'p1')
    await prepare(p, 'c1')
    await commit(p, 'c1')
    await abort(p, 'a1')
    const res = await p.app.request('/transactions/p1')
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ txn: 'p1', state: 'prepared' })
    expect(await txnState(p, 'c1')).toBe('committed')
    expect(await txnState(p, 'a1')).toBe('aborted')
    expect(await txnState(p, 'u1')).toBe('unknown')
  })
})

describe('idempotency and refusals', () => {
  test('a repeated prepare returns the recorded vote and logs nothing more', async () => {
    const p = await open(parseVotes('yes\nno\n'))
    expect(await (await prepare(p, 't1')).text()).toBe('yes')
    expect(await (await prepare(p, 't2')).text()).toBe('no')
    const before = await snapshot(p, ['t1', 't2'])
    for (let i = 0; i < 3; i++) {
      expect(await (await prepare(p, 't1')).text()).toBe('yes')
      expect(await (await prepare(p, 't2')).text()).toBe('no')
    }
    expect(await snapshot(p, ['t1', 't2'])).toEqual(before)
  })

  test('concurrent prepares of one transaction give one vote and one record', async () => {
    const p = await open()
    const answers = await Promise.all(Array.from({ length: 5 }, () => prepare(p, 't1')))
    for (const res of answers) expect(await res.text()).toBe('yes')
    expect((p.node.store as SqliteStore).records().length).toBe(1)
  })

  test('a committed transaction still answers prepare with its yes vote', async () => {
    const p = await open()
    await prepare(p, 't1')
    await commit(p, 't1')
    expect(await (await prepare(p, 't1')).text()).toBe('yes')
    expect(await txnState(p, 't1')).toBe('committed')
  })

  test.each([
    ['commit', commit, 't1=committed\n'],
    ['abort', abort, 't1=aborted\n'],
  ] as const)('a repeated %s answers 200 again and changes nothing', async (_, send, state) => {
    const p = await open()
    await prepare(p, 't1')
    expect((await send(p, 't1')).status).toBe(200)
    const before = await snapshot(p, ['t1'])
    expect(stateText(p)).toBe(state)
    for (let i = 0; i < 3; i++) expect((await send(p, 't1')).status).toBe(200)
    expect(await snapshot(p, ['t1'])).toEqual(before)
  })

  test('commit after abort is refused with 409 and changes nothing', async () => {
    const p = await open()
    await prepare(p, 't1')
    await abort(p, 't1')
    const before = await snapshot(p, ['t1'])
    await expectError(await commit(p, 't1'), 409)
    expect(await snapshot(p, ['t1'])).toEqual(before)
    expect(stateText(p)).toBe('t1=aborted\n')
  })

  test('abort after commit is refused with 409 and changes nothing', async () => {
    const p = await open()
    await prepare(p, 't1')
    await commit(p, 't1')
    const before = await snapshot(p, ['t1'])
    await expectError(await abort(p, 't1'), 409)
    expect(await snapshot(p, ['t1'])).toEqual(before)
    expect(stateText(p)).toBe('t1=committed\n')
  })

  test('commit after a no vote is refused with 409', async () => {
    const p = await open(parseVotes('no\n'))
    expect(await (await prepare(p, 't1')).text()).toBe('no')
    const before = await snapshot(p, ['t1'])
    await expectError(await commit(p, 't1'), 409)
    expect(await snapshot(p, ['t1'])).toEqual(before)
    expect(stateText(p)).toBe('t1=aborted\n')
  })

  test('commit of a never-prepared transaction is refused with 409', async () => {
    const p = await seeded()
    const before = await snapshot(p, [...SEEDED, 't9'])
    await expectError(await commit(p, 't9'), 409)
    expect(await snapshot(p, [...SEEDED, 't9'])).toEqual(before)
    expect(await txnState(p, 't9')).toBe('unknown')
  })

  test('abort of an unknown transaction is recorded and a later prepare votes no', async () => {
    const p = await open()
    const res = await abort(p, 't1')
    expect(res.status).toBe(200)
    expect(stateText(p)).toBe('t1=aborted\n')
    expect(await txnState(p, 't1')).toBe('aborted')
    const vote = await prepare(p, 't1')
    expect(vote.status).toBe(200)
    expect(await vote.text()).toBe('no')
    const json = await prepare(p, 't1', JSON_ACCEPT)
    expect(await json.json()).toMatchObject({ txn: 't1', vote: 'no' })
    expect(await txnState(p, 't1')).toBe('aborted')
    await expectError(await commit(p, 't1'), 409)
    expect(stateText(p)).toBe('t1=aborted\n')
  })

  test('a concurrent commit and abort: exactly one wins, and state.txt shows it', async () => {
    const p = await open()
    await prepare(p, 't1')
    const [c, a] = await Promise.all([commit(p, 't1'), abort(p, 't1')])
    expect([c.status, a.status].sort()).toEqual([200, 409])
    const winner = c.status === 200 ? 'committed' : 'aborted'
    expect(stateText(p)).toBe(`t1=${winner}\n`)
    expect(await txnState(p, 't1')).toBe(winner)
  })
})

const BAD_IDS: [string, string][] = [
  ['containing =', 't=1'],
  ['containing a newline', 't1\nt2'],
  ['containing /', 't/1'],
  ['starting with ..', '..t1'],
  ['equal to ..', '..'],
  ['starting with .', '.t1'],
  ['starting with -', '-t1'],
  ['containing a space', 't 1'],
  ['containing a NUL', 't\u00001'],
  ['non-ASCII', 'té'],
  ['of 129 characters', 'x'.repeat(129)],
  ['of 200 characters', 'x'.repeat(200)],
  ['empty', ''],
]

const BAD_BODIES: [string, string][] = [
  ['bad JSON', '{"txn": "t9"'],
  ['not JSON at all', 'txn=t9'],
  ['an empty body', ''],
  ['a JSON array', '["t9"]'],
  ['JSON null', 'null'],
  ['a JSON string', '"t9"'],
  ['a JSON number', '9'],
  ['missing txn', '{}'],
  ['txn under another name', '{"id": "t9"}'],
  ['txn a number', '{"txn": 9}'],
  ['txn null', '{"txn": null}'],
  ['txn a boolean', '{"txn": true}'],
  ['txn an array', '{"txn": ["t9"]}'],
  ['txn an object', '{"txn": {"id": "t9"}}'],
  ...BAD_IDS.map(([name, id]): [string, string] => [`txn ${name}`, JSON.stringify({ txn: id })]),
]

const ENDPOINTS = ['/prepare', '/commit', '/abort'] as const

describe('malformed input is a 4xx JSON error and changes nothing', () => {
  test.each(ENDPOINTS.flatMap((path) => BAD_BODIES.map(([name, body]) => [path, name, body])))(
    'POST %s with %s → 400',
    async (path, _, body) => {
      const p = await seeded()
      const before = await snapshot(p, [...SEEDED, 't9'])
      await expectError(await post(p, path, body), 400)
      expect(await snapshot(p, [...SEEDED, 't9'])).toEqual(before)
    },
  )

  test.each(BAD_IDS.filter(([, id]) => id !== '' && !id.includes('/') && id !== '..'))(
    'GET /transactions/<id %s> → 400',
    async (_, id) => {
      const p = await seeded()
      const before = await snapshot(p, SEEDED)
      await expectError(await p.app.request(`/transactions/${encodeURIComponent(id)}`), 400)
      expect(await snapshot(p, SEEDED)).toEqual(before)
    },
  )

  test.each([
    ['a / encoded in the id', '/transactions/t%2F1'],
    ['an = in the id', '/transactions/t=1'],
    ['an encoded newline in the id', '/transactions/t%0A1'],
  ])('GET /transactions with %s → 400', async (_, path) => {
    const p = await seeded()
    const before = await snapshot(p, SEEDED)
    await expectError(await p.app.request(path), 400)
    expect(await snapshot(p, SEEDED)).toEqual(before)
  })

  test.each([
    ['GET', '/prepare'],
    ['GET', '/commit'],
    ['GET', '/abort'],
    ['PUT', '/prepare'],
    ['DELETE', '/commit'],
    ['POST', '/transactions/t1'],
    ['DELETE', '/transactions/t3'],
    ['POST', '/status'],
    ['POST', '/healthz'],
  ])('%s %s → 405', async (method, path) => {
    const p = await seeded()
    const before = await snapshot(p, SEEDED)
    const init: RequestInit = { method }
    if (method !== 'GET') init.body = JSON.stringify({ txn: 't3' })
    const res = await p.app.request(path, init)
    await expectError(res, 405)
    expect(res.headers.get('allow')).toBeTruthy()
    expect(await snapshot(p, SEEDED)).toEqual(before)
  })

  test.each([
    ['GET', '/'],
    ['GET', '/nope'],
    ['POST', '/nope'],
    ['POST', '/prepare/t9'],
    ['POST', '/commit/t3'],
    ['GET', '/transactions/t1/extra'],
  ])('%s %s → 404', async (method, path) => {
    const p = await seeded()
    const before = await snapshot(p, SEEDED)
    const init: RequestInit = { method }
    if (method !== 'GET') init.body = JSON.stringify({ txn: 't9' })
    await expectError(await p.app.request(path, init), 404)
    expect(await snapshot(p, SEEDED)).toEqual(before)
  })

  /** Valid JSON `{"txn": txn, "pad": "xxx…"}` of exactly `size` bytes. */
  function paddedBody(txn: string, size: number): string {
    const empty = JSON.stringify({ txn, pad: '' })
    return JSON.stringify({ txn, pad: 'x'.repeat(size - empty.length) })
  }

  test.each(
    ENDPOINTS.flatMap((path) => [
      [path, 'with Content-Length', true],
      [path, 'without Content-Length', false],
    ]),
  )('POST %s with a body over 1 MiB (%s) → 413', async (path, _, withLength) => {
    const p = await seeded()
    const before = await snapshot(p, [...SEEDED, 't9'])
    const body = paddedBody(path === '/prepare' ? 't9' : 't3', MAX_BODY_BYTES + 1)
    expect(Buffer.byteLength(body)).toBe(1024 * 1024 + 1)
    const headers: Record<string, string> = withLength
      ? { 'Content-Length': String(Buffer.byteLength(body)) }
      : {}
    await expectError(await post(p, path, body, headers), 413)
    expect(await snapshot(p, [...SEEDED, 't9'])).toEqual(before)
  })

  test('a body of exactly 1 MiB is accepted', async () => {
    const p = await open()
    const body = paddedBody('t1', 1024 * 1024)
    expect(Buffer.byteLength(body)).toBe(1024 * 1024)
    const res = await post(p, '/prepare', body)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('yes')
  })

  test('a refused request leaves the node working', async () => {
    const p = await seeded()
    await expectError(await post(p, '/commit', '{"txn": '), 400)
    await expectError(await post(p, '/commit', { txn: 't=3' }), 400)
    expect((await commit(p, 't3')).status).toBe(200)
    expect(stateText(p)).toBe('t1=committed\nt2=aborted\nt3=committed\n')
  })
})

describe('status and health', () => {
  test('GET /status gives the counts and the prepared transactions', async () => {
    const p = await open(parseVotes('yes\nyes\nyes\nno\n'))
    const empty = (await status(p)) as { counts: Record<string, number>; prepared: string[] }
    expect(empty.counts).toMatchObject({ prepared: 0, committed: 0, aborted: 0 })
    expect(empty.prepared).toEqual([])
    for (const txn of ['t1', 't2', 't3', 't4']) await prepare(p, txn)
    await commit(p, 't1')
    await abort(p, 't5')
    const body = (await status(p)) as { counts: Record<string, number>; prepared: string[] }
    expect(body.counts).toMatchObject({ prepared: 2, committed: 1, aborted: 2 })
    expect([...body.prepared].sort()).toEqual(['t2', 't3'])
  })

  test('GET /healthz → 200 {ok: true}', async () => {
    const p = await open()
    const res = await p.app.request('/healthz')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ ok: true })
  })
})

describe('durability and recovery', () => {
  test('a prepared transaction survives a restart and can then commit', async () => {
    const first = await open()
    expect(await (await prepare(first, 't1')).text()).toBe('yes')
    await close(first)
    const second = await open(null, first.dir)
    expect(await txnState(second, 't1')).toBe('prepared')
    const st = (await status(second)) as { prepared: string[] }
    expect(st.prepared).toEqual(['t1'])
    // Its vote is remembered, not asked again.
    const again = await prepare(second, 't1')
    expect(await again.text()).toBe('yes')
    expect((second.node.store as SqliteStore).records().length).toBe(1)
    expect((await commit(second, 't1')).status).toBe(200)
    expect(stateText(second)).toBe('t1=committed\n')
    expect(await txnState(second, 't1')).toBe('committed')
  })

  test('outcomes survive a restart and still refuse the other outcome', async () => {
    const first = await seeded()
    await close(first)
    const second = await open(null, first.dir)
    expect(await txnState(second, 't1')).toBe('committed')
    expect(await txnState(second, 't2')).toBe('aborted')
    expect(await txnState(second, 't3')).toBe('prepared')
    await expectError(await abort(second, 't1'), 409)
    await expectError(await commit(second, 't2'), 409)
    expect((await commit(second, 't1')).status).toBe(200)
    expect(stateText(second)).toBe('t1=committed\nt2=aborted\n')
  })

  test('start() rebuilds a deleted state.txt from the log', async () => {
    const first = await seeded()
    await close(first)
    unlinkSync(join(first.dir, 'state.txt'))
    const node = new ParticipantNode(first.dir, null)
    nodes.add(node)
    await node.start()
    expect(readFileSync(join(first.dir, 'state.txt'), 'utf8')).toBe('t1=committed\nt2=aborted\n')
  })

  test('start() replaces a stale state.txt with the log view', async () => {
    const first = await seeded()
    await close(first)
    writeFileSync(join(first.dir, 'state.txt'), 't1=aborted\n')
    const second = await open(null, first.dir)
    expect(stateText(second)).toBe('t1=committed\nt2=aborted\n')
  })

  test('a fresh node writes an empty state.txt', async () => {
    const p = await open()
    expect(stateText(p)).toBe('')
    expect((p.node.store as SqliteStore).records()).toEqual([])
  })
})

describe('readVotesFile', () => {
  test('returns null without votes.txt and the votes with it', () => {
    const dir = tempDir()
    expect(readVotesFile(dir)).toBeNull()
    writeFileSync(join(dir, 'votes.txt'), ' yes \r\nNo\n\n\n')
    expect(readVotesFile(dir)).toEqual(['yes', 'no'])
  })

  test.each([
    ['a bad word on line 2', 'yes\nmaybe\nno\n', 2],
    ['a bad word on line 1', 'y\n', 1],
    ['a blank line inside', 'yes\n\nno\n', 2],
    ['a bad line 3 after CRLF lines', 'yes\r\nno\r\nyes no\r\n', 3],
  ])('throws naming the line for %s', (_, text, line) => {
    const dir = tempDir()
    writeFileSync(join(dir, 'votes.txt'), text)
    expect(() => readVotesFile(dir)).toThrow(new RegExp(`line ${line}\\b`))
  })
})

test('state.txt shows an outcome only once its record is durable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'participant-test-'))
  const node = new ParticipantNode(dir, null)
  await node.start()
  const app = createApp(node)
  const post = (path: string, txn: string) =>
    app.request(path, { method: 'POST', body: JSON.stringify({ txn }) })
  // A slow disk for one transaction's outcome record.
  const { promise: flushed, resolve: flush } = Promise.withResolvers<void>()
  const persist = node.store.persist.bind(node.store)
  node.store.persist = async (record, effect) => {
    if (record.txn === 'slow' && record.state === 'committed') await flushed
    return persist(record, effect)
  }
  await post('/prepare', 'slow')
  await post('/prepare', 'fast')
  const slow = post('/commit', 'slow')
  expect((await post('/commit', 'fast')).status).toBe(200)
  expect(readFileSync(join(dir, 'state.txt'), 'utf8')).toBe('fast=committed\n')
  flush()
  expect((await slow).status).toBe(200)
  expect(readFileSync(join(dir, 'state.txt'), 'utf8')).toBe('fast=committed\nslow=committed\n')
  await node.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('in doubt', () => {
  // Rule: `unknown` from the coordinator is an abort, acted on before any other event of the
  // transaction. A prepare of the same id arriving meanwhile (a client retrying it after the
  // coordinator lost its lazy begin record) must get `no`, not the old `yes`: a `yes` could let
  // the new run commit what this participant is about to abort.
  test('a prepare that arrives while it asks waits for the answer and votes no', async () => {
    const { promise: asked, resolve: markAsked } = Promise.withResolvers<void>()
    const { promise: answer, resolve: release } = Promise.withResolvers<void>()
    const coordinator = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch() {
        markAsked()
        await answer
        return Response.json({ id: 'x', state: 'unknown' })
      },
    })
    try {
      const node = new ParticipantNode(tempDir(), null, { inDoubtAfterMs: 20, tickMs: 5 })
      nodes.add(node)
      await node.start()
      const url = `http://127.0.0.1:${coordinator.port}`
      expect(await node.prepare('x', [], { coordinator: url }, false)).toMatchObject({
        vote: 'yes',
      })
      await asked
      const again = node.prepare('x', [], { coordinator: url }, false)
      // A peer asking meanwhile is told `uncertain` at once, not made to wait.
      expect(await node.handle({ type: 'decision-request', txn: 'x' })).toEqual({
        kind: 'uncertain',
        txn: 'x',
      })
      release()
      expect(await again).toMatchObject({ kind: 'vote', vote: 'no' })
      expect(node.state('x').state).toBe('aborted')
    } finally {
      coordinator.stop(true)
    }
  })
})
