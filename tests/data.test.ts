// Transactions that carry data: operation semantics, no-wait locks and reads, through HTTP on real
// processes. The same suite runs with every participant on SQLite and with one on PostgreSQL.
import { afterEach, describe, expect, test } from 'bun:test'
import {
  cleanup,
  getJson,
  kill,
  postJson,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
  type Node,
} from '../testing/processes.ts'
import { usePgCluster } from '../testing/pg.ts'

const pg = usePgCluster('twophase-pg-')
/** A database of its own for each test, so that it starts from empty data. */
const { freshDatabase } = pg
afterEach(cleanup)

type StoreKind = 'sqlite' | 'postgres'

async function participant(kind: StoreKind, dir = tempDir(), port?: number, store?: string) {
  const args: string[] = kind === 'postgres' ? ['--store', store ?? (await freshDatabase())] : []
  const node = await startParticipant(dir, { args, port })
  return { node, store: args[1] }
}

async function prepare(node: Node, txn: string, ops: unknown) {
  return postJson(`${node.url}/prepare`, { txn, ops })
}

async function value(node: Node, key: string) {
  const response = await fetch(`${node.url}/kv/${encodeURIComponent(key)}`)
  return response.status === 404 ? undefined : ((await response.json()) as { value: unknown }).value
}

describe.each(['sqlite', 'postgres'] as const)('a participant on %s', (kind) => {
  // SQLite commits a one-phase prepare at once; PostgreSQL prepares and votes yes instead (a
  // COMMIT whose answer is lost could be applied twice on a retry), and waits for the commit.
  test('a one-phase prepare commits at once where the store can promise it', async () => {
    const { node } = await participant(kind)
    const messages = [
      { type: 'prepare', txn: 'one', ops: [{ op: 'add', key: 'c', amount: 2 }], onePhase: true },
    ]
    const reply = await postJson(`${node.url}/batch`, { messages })
    if (kind === 'sqlite') {
      expect(reply.body.replies[0].body).toEqual({ txn: 'one', state: 'committed' })
    } else {
      expect(reply.body.replies[0].body).toMatchObject({ txn: 'one', vote: 'yes' })
      expect((await getJson(`${node.url}/transactions/one`)).state).toBe('prepared')
      expect((await postJson(`${node.url}/commit`, { txn: 'one' })).status).toBe(200)
    }
    expect(await value(node, 'c')).toBe(2)
    const again = await postJson(`${node.url}/batch`, { messages })
    expect(again.body.replies[0].status).toBe(200)
    expect(await value(node, 'c')).toBe(2) // a repeated prepare applies nothing twice
  })

  test('set, add, insert, delete and check apply at commit and are read back', async () => {
    const { node } = await participant(kind)
    const ops = [
      { op: 'set', key: 'name', value: { first: 'Ada', tags: ['x'] } },
      { op: 'add', key: 'balance', amount: 100 },
      { op: 'insert', key: 'acct:1', value: 1 },
      { op: 'insert', key: 'acct:2', value: 2 },
      { op: 'check', key: 'missing' },
    ]
    expect((await prepare(node, 'd1', ops)).body).toEqual({ txn: 'd1', vote: 'yes', reason: null })
    expect(await value(node, 'balance')).toBeUndefined() // invisible until committed
    expect((await postJson(`${node.url}/commit`, { txn: 'd1' })).status).toBe(200)
    expect(await value(node, 'name')).toEqual({ first: 'Ada', tags: ['x'] })
    expect(await value(node, 'balance')).toBe(100)
    const listed = await getJson(`${node.url}/kv?prefix=acct:&limit=10`)
    expect(listed.items).toEqual([
      { key: 'acct:1', value: 1 },
      { key: 'acct:2', value: 2 },
    ])
    expect((await getJson(`${node.url}/kv?prefix=acct:&limit=1`)).items).toHaveLength(1)
    const next = [
      { op: 'check', key: 'balance', equals: 100 },
      { op: 'delete', key: 'acct:1' },
      { op: 'add', key: 'balance', amount: -30, min: 0 },
    ]
    expect((await prepare(node, 'd2', next)).body.vote).toBe('yes')
    await postJson(`${node.url}/commit`, { txn: 'd2' })
    expect(await value(node, 'acct:1')).toBeUndefined()
    expect(await value(node, 'balance')).toBe(70)
    expect((await fetch(`${node.url}/kv/acct:1`)).status).toBe(404)
  })

  test.each([
    ['insert on an existing key', [{ op: 'insert', key: 'k', value: 2 }], 'key k already exists'],
    [
      'add below its minimum',
      [{ op: 'add', key: 'k', amount: -5, min: 0 }],
      'add would take k below 0',
    ],
    ['add to a non-number', [{ op: 'add', key: 's', amount: 1 }], 'key s is not a number'],
    ['check that differs', [{ op: 'check', key: 'k', equals: 2 }], 'check failed: key k is 1'],
  ])('%s votes no with the reason, and changes nothing', async (_, ops, reason) => {
    const { node } = await participant(kind)
    await prepare(node, 'seed', [
      { op: 'set', key: 'k', value: 1 },
      { op: 'set', key: 's', value: 'text' },
    ])
    await postJson(`${node.url}/commit`, { txn: 'seed' })
    expect((await prepare(node, 'bad', ops)).body).toEqual({ txn: 'bad', vote: 'no', reason })
    // Operations that only read keep nothing, even when refused (see read-only participants).
    const state = ops.every((o) => o.op === 'check') ? 'unknown' : 'aborted'
    expect(await getJson(`${node.url}/transactions/bad`)).toMatchObject({ state })
    expect(await value(node, 'k')).toBe(1)
    expect((await getJson(`${node.url}/status`)).locks).toEqual({})
  })

  test('two transactions on one key: the second is refused, naming the holder', async () => {
    const { node } = await participant(kind)
    expect((await prepare(node, 't7', [{ op: 'set', key: 'balance', value: 1 }])).body.vote).toBe(
      'yes',
    )
    const second = await prepare(node, 't8', [{ op: 'add', key: 'balance', amount: 1 }])
    expect(second.body).toEqual({
      txn: 't8',
      vote: 'no',
      reason: 'key balance is locked by transaction t7',
    })
    expect((await getJson(`${node.url}/status`)).locks).toEqual({ balance: 't7' })
    await postJson(`${node.url}/commit`, { txn: 't7' })
    expect((await getJson(`${node.url}/status`)).locks).toEqual({})
    expect((await prepare(node, 't9', [{ op: 'add', key: 'balance', amount: 1 }])).body.vote).toBe(
      'yes',
    )
    await postJson(`${node.url}/abort`, { txn: 't9' })
    expect(await value(node, 'balance')).toBe(1)
  })

  test('a prepared participant killed and restarted still holds its locks', async () => {
    const dir = tempDir()
    const { node, store } = await participant(kind, dir)
    expect((await prepare(node, 'held', [{ op: 'set', key: 'k', value: 'new' }])).body.vote).toBe(
      'yes',
    )
    await kill(node)
    const back = (await participant(kind, dir, node.port, store)).node
    expect((await getJson(`${back.url}/transactions/held`)).state).toBe('prepared')
    const blocked = await prepare(back, 'other', [{ op: 'set', key: 'k', value: 'x' }])
    expect(blocked.body.vote).toBe('no')
    expect(blocked.body.reason).toStartWith('key k is locked by transaction')
    expect((await postJson(`${back.url}/commit`, { txn: 'held' })).status).toBe(200)
    expect(await value(back, 'k')).toBe('new')
    expect((await prepare(back, 'after', [{ op: 'set', key: 'k', value: 'x' }])).body.vote).toBe(
      'yes',
    )
  })

  test('malformed operations are a 400 that changes nothing', async () => {
    const { node } = await participant(kind)
    const bad = [
      'nope',
      [{ op: 'set', key: 'k' }],
      [{ op: 'frob', key: 'k' }],
      [{ op: 'add', key: 'k', amount: '1' }],
      [{ op: 'set', key: 'x'.repeat(257), value: 1 }],
      [{ op: 'set', key: 'k', value: 'v'.repeat(70_000) }],
      [{ op: 'delete' }],
    ]
    for (const ops of bad) {
      const reply = await prepare(node, 'm1', ops)
      expect(reply.status).toBe(400)
      expect(typeof reply.body.error).toBe('string')
    }
    // A value nested too deeply to serialize is still bad input, not a crash.
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    const nested = await fetch(`${node.url}/prepare`, {
      method: 'POST',
      body: `{"txn":"m1","ops":[{"op":"set","key":"k","value":${deep}}]}`,
    })
    expect(nested.status).toBe(400)
    const error = 'request body refused: it is nested deeper than 64 levels'
    expect(await nested.json()).toEqual({ error })
    expect((await getJson(`${node.url}/transactions/m1`)).state).toBe('unknown')
  })

  test('via the coordinator: a replicated write, per-participant ops, lock conflict', async () => {
    const nodes = [(await participant(kind)).node, (await participant('sqlite')).node]
    const coordinator = await startCoordinatorService(tempDir(), {
      participants: [`a=${nodes[0]!.url}`, nodes[1]!.url],
    })
    const tx = (body: unknown) => postJson(`${coordinator.url}/transactions`, body)
    const replicated = await tx({ id: 'r1', ops: [{ op: 'set', key: 'balance', value: 1000 }] })
    expect(replicated.body.decision).toBe('commit')
    for (const n of nodes) expect(await value(n, 'balance')).toBe(1000)
    const transfer = await tx({
      id: 'r2',
      ops: {
        a: [{ op: 'add', key: 'balance', amount: -100, min: 0 }],
        1: [{ op: 'add', key: 'balance', amount: 100 }],
      },
    })
    expect(transfer.body.decision).toBe('commit')
    expect([await value(nodes[0]!, 'balance'), await value(nodes[1]!, 'balance')]).toEqual([
      900, 1100,
    ])
    const overdraft = await tx({
      id: 'r3',
      ops: { 0: [{ op: 'add', key: 'balance', amount: -1000, min: 0 }] },
    })
    expect(overdraft.body.decision).toBe('abort')
    expect(overdraft.body.reasons[nodes[0]!.url]).toBe('add would take balance below 0')
    expect(Object.keys(overdraft.body.votes)).toEqual([nodes[0]!.url]) // only the involved one
    expect((await getJson(`${nodes[1]!.url}/transactions/r3`)).state).toBe('unknown')
    // A transaction holds the key; a concurrent one through the coordinator is refused.
    await prepare(nodes[1]!, 'holder', [{ op: 'set', key: 'balance', value: 0 }])
    const refused = await tx({ id: 'r4', ops: { 1: [{ op: 'add', key: 'balance', amount: 1 }] } })
    expect(refused.body.decision).toBe('abort')
    expect(refused.body.reasons[nodes[1]!.url]).toBe('key balance is locked by transaction holder')
    const malformed = await tx({ ops: { 9: [] } })
    expect(malformed.status).toBe(400)
    expect((await tx({ ops: [{ op: 'nope' }] })).status).toBe(400)
  })
})

describe('a participant on PostgreSQL when the database crashes', () => {
  test.each(['commit', 'abort'] as const)(
    'PostgreSQL killed after PREPARE TRANSACTION and restarted: the %s still applies',
    async (decision) => {
      const { node } = await participant('postgres')
      const ops = [{ op: 'set', key: 'k', value: 'after' }]
      expect((await prepare(node, 'crash1', ops)).body.vote).toBe('yes')
      await pg.cluster().kill()
      // Down: a prepare votes no, a decision is refused with 503 so the coordinator retries.
      const down = await prepare(node, 'crash2', [{ op: 'set', key: 'j', value: 1 }])
      expect(down.body.vote).toBe('no')
      expect(down.body.reason).toStartWith('database unavailable')
      expect((await postJson(`${node.url}/${decision}`, { txn: 'crash1' })).status).toBe(503)
      expect((await getJson(`${node.url}/transactions/crash1`)).state).toBe('prepared')
      await pg.cluster().start()
      const state = decision === 'commit' ? 'committed' : 'aborted'
      const retried = await postJson(`${node.url}/${decision}`, { txn: 'crash1' })
      expect(retried).toEqual({ status: 200, body: { txn: 'crash1', state } })
      expect(await value(node, 'k')).toBe(decision === 'commit' ? 'after' : undefined)
      expect((await getJson(`${node.url}/status`)).locks).toEqual({})
    },
  )

  test('more concurrent prepares than the connection pool holds all get their vote', async () => {
    const { node } = await participant('postgres')
    const messages = Array.from({ length: 60 }, (_, i) => ({
      type: 'prepare',
      txn: `many-${i}`,
      ops: [{ op: 'set', key: `m${i}`, value: i }],
    }))
    const reply = await postJson(`${node.url}/batch`, { messages })
    expect(reply.body.replies.map((r: { body: { vote: string } }) => r.body.vote)).toEqual(
      messages.map(() => 'yes'),
    )
    const commits = messages.map((m) => ({ type: 'commit', txn: m.txn }))
    const done = await postJson(`${node.url}/batch`, { messages: commits })
    expect(done.body.replies.every((r: { status: number }) => r.status === 200)).toBe(true)
    expect(await value(node, 'm59')).toBe(59)
  })

  // A crash right after PREPARE TRANSACTION (or a connection lost as it succeeds) leaves a
  // prepared transaction the participant never answered for. It must still know whom to ask.
  test('killed right after PREPARE TRANSACTION, it asks its coordinator when back', async () => {
    const asked: string[] = []
    const coordinator = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(request) {
        asked.push(new URL(request.url).pathname)
        return Response.json({ id: 'orphan', state: 'unknown' }) // never heard of: abort
      },
    })
    try {
      const dir = tempDir()
      const store = await freshDatabase()
      const env = { TWOPHASE_FAILPOINTS: 'pg-after-prepare@orphan' }
      const args = ['--store', store, '--in-doubt-after', '100']
      const crashing = await startParticipant(dir, { args, env })
      const url = `http://127.0.0.1:${coordinator.port}`
      const body = { txn: 'orphan', coordinator: url, ops: [{ op: 'set', key: 'o', value: 1 }] }
      await expect(postJson(`${crashing.url}/prepare`, body)).rejects.toThrow()
      expect(await crashing.proc.exited).toBe(137)
      const back = await startParticipant(dir, { args, port: crashing.port })
      await waitFor(
        async () => (await getJson(`${back.url}/transactions/orphan`)).state === 'aborted',
      )
      expect(asked).toContain('/transactions/orphan')
      // The locks go once the abort is durable, a moment after the state says aborted.
      await waitFor(
        async () => Object.keys((await getJson(`${back.url}/status`)).locks).length === 0,
      )
      expect(await value(back, 'o')).toBeUndefined()
    } finally {
      coordinator.stop(true)
    }
  })

  test('restarted while PostgreSQL holds its prepared transaction, it rebuilds it', async () => {
    const dir = tempDir()
    const { node, store } = await participant('postgres', dir)
    await prepare(node, 'pg-held', [{ op: 'add', key: 'n', amount: 5 }])
    await kill(node)
    await pg.cluster().kill()
    await pg.cluster().start()
    const back = (await participant('postgres', dir, node.port, store)).node
    expect((await getJson(`${back.url}/transactions/pg-held`)).state).toBe('prepared')
    expect((await getJson(`${back.url}/status`)).locks).toEqual({ n: 'pg-held' })
    expect((await postJson(`${back.url}/commit`, { txn: 'pg-held' })).status).toBe(200)
    expect(await value(back, 'n')).toBe(5)
  })
})
