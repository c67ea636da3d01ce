// The resource API's promises, in process: a Resource under the real ParticipantNode and its
// Hono app, driven with app.request; a restart is a new node over the same directory.
import { afterEach, expect, test } from 'bun:test'
import { ParticipantNode } from '../lib/node/participant-node.ts'
import { createApp } from '../lib/http/participant-app.ts'
import { ResourceStore } from '../lib/resource/resource-store.ts'
import type { Resource, ResourceVote } from '../lib/resource/resource.ts'
import type { Op } from '../lib/core/index.ts'
import { resolveHeuristically } from '../lib/cli/resolve.ts'
import { cleanup, tempDir } from '../testing/processes.ts'

afterEach(cleanup)

/** A resource that keeps its work in memory (or, with `held`, reports it as durable) and
 * records every call. Its prepare says no to a key named `bad`. */
function memoryResource(held: string[] | null = null) {
  const calls: string[] = []
  const prepared = new Map<string, readonly Op[]>()
  const committed: string[] = []
  let failCommits = 0
  const resource: Resource = {
    prepare(txn, ops): ResourceVote {
      calls.push(`prepare ${txn}`)
      if (ops.some((o) => o.op !== 'sql' && o.key === 'bad')) return { vote: 'no', reason: 'bad' }
      if (ops.some((o) => o.op !== 'sql' && o.key === 'boom')) throw new Error('boom')
      if (ops.every((o) => o.op === 'check')) return { vote: 'read-only' }
      prepared.set(txn, ops)
      return { vote: 'yes' }
    },
    commit(txn) {
      calls.push(`commit ${txn}`)
      if (failCommits-- > 0) throw new Error('the service is down')
      if (prepared.delete(txn)) committed.push(txn)
    },
    abort(txn) {
      calls.push(`abort ${txn}`)
      prepared.delete(txn)
    },
    ...(held === null ? {} : { recover: () => held }),
  }
  const failNextCommits = (n: number) => void (failCommits = n)
  return { resource, calls, prepared, committed, failNextCommits }
}

async function nodeOf(dir: string, resource: Resource) {
  const node = new ParticipantNode(dir, null, { store: new ResourceStore(resource, dir) })
  await node.start()
  const app = createApp(node)
  const post = async (path: string, body: unknown) => {
    const response = await app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    })
    return { status: response.status, body: (await response.json()) as any }
  }
  const state = async (txn: string) =>
    ((await (await app.request(`/transactions/${txn}`)).json()) as { state: string }).state
  return { node, post, state }
}

const SET: Op[] = [{ op: 'set', key: 'k', value: 1 }]

test('a yes is logged with its operations, then commit and abort reach the resource', async () => {
  const dir = tempDir()
  const r = memoryResource()
  const { node, post } = await nodeOf(dir, r.resource)
  expect((await post('/prepare', { txn: 'a', ops: SET })).body.vote).toBe('yes')
  expect((await post('/commit', { txn: 'a' })).status).toBe(200)
  expect((await post('/prepare', { txn: 'b', ops: SET })).body.vote).toBe('yes')
  expect((await post('/abort', { txn: 'b' })).status).toBe(200)
  expect(r.calls).toEqual(['prepare a', 'commit a', 'prepare b', 'abort b'])
  expect(r.committed).toEqual(['a'])
  expect((node.store as ResourceStore).flushes).toBeGreaterThanOrEqual(4)
  await node.close()
})

test('a no carries the resource reason; a prepare that throws is a no and is aborted', async () => {
  const r = memoryResource()
  const { node, post, state } = await nodeOf(tempDir(), r.resource)
  const no = await post('/prepare', { txn: 'n', ops: [{ op: 'set', key: 'bad', value: 1 }] })
  expect(no.body).toEqual({ txn: 'n', vote: 'no', reason: 'bad' })
  const boom = await post('/prepare', { txn: 'x', ops: [{ op: 'set', key: 'boom', value: 1 }] })
  expect(boom.body).toEqual({ txn: 'x', vote: 'no', reason: 'resource: boom' })
  expect(r.calls).toContain('abort x')
  expect(await state('x')).toBe('aborted')
  const sql = await post('/prepare', { txn: 's', ops: [{ op: 'sql', text: 'SELECT 1' }] })
  expect(sql.status).toBe(400) // no --allow-sql: refused before the resource hears of it
  expect(r.calls).not.toContain('prepare s')
  await node.close()
})

test('a commit the resource fails is answered 503 and done on the retry', async () => {
  const r = memoryResource()
  const { node, post, state } = await nodeOf(tempDir(), r.resource)
  await post('/prepare', { txn: 'c', ops: SET })
  r.failNextCommits(1)
  const failed = await post('/commit', { txn: 'c' })
  expect(failed.status).toBe(503)
  expect(failed.body.error).toContain('the service is down')
  expect(await state('c')).toBe('prepared')
  expect((await post('/commit', { txn: 'c' })).status).toBe(200)
  expect(r.committed).toEqual(['c'])
  await node.close()
})

test('after a restart a resource that kept nothing prepares again from the log', async () => {
  const dir = tempDir()
  const before = await nodeOf(dir, memoryResource().resource)
  await before.post('/prepare', { txn: 'p', ops: SET })
  await before.node.close()
  const r = memoryResource()
  const after = await nodeOf(dir, r.resource)
  expect(r.calls).toEqual(['prepare p'])
  expect(r.prepared.get('p')).toEqual(SET)
  expect(await after.state('p')).toBe('prepared')
  expect((await after.post('/commit', { txn: 'p' })).status).toBe(200)
  expect(r.committed).toEqual(['p'])
  await after.node.close()
})

test('after a restart what the resource holds is finished as the log says', async () => {
  const dir = tempDir()
  const first = memoryResource()
  const before = await nodeOf(dir, first.resource)
  await before.post('/prepare', { txn: 'done', ops: SET })
  await before.post('/prepare', { txn: 'kept', ops: SET })
  first.failNextCommits(1) // the commit is logged, the resource never does it
  await before.post('/commit', { txn: 'done' })
  await before.node.close()
  // It still holds `done` and `kept`, and `ghost`, whose yes never reached the log.
  const r = memoryResource(['done', 'kept', 'ghost'])
  const after = await nodeOf(dir, r.resource)
  expect(r.calls.sort()).toEqual(['abort ghost', 'commit done'])
  expect(await after.state('done')).toBe('committed')
  expect(await after.state('kept')).toBe('prepared')
  expect(await after.state('ghost')).toBe('unknown')
  await after.node.close()
})

test('a read-only vote is kept in two-phase commit and prepared in three-phase', async () => {
  const r = memoryResource()
  const { node, post, state } = await nodeOf(tempDir(), r.resource)
  const reads = [{ op: 'check', key: 'k' }]
  expect((await post('/prepare', { txn: 'r2', ops: reads })).body.vote).toBe('read-only')
  expect(await state('r2')).toBe('unknown')
  const peers = ['http://127.0.0.1:1', 'http://127.0.0.1:2']
  const three = { protocol: '3pc', participants: peers, self: peers[0] }
  expect((await post('/prepare', { txn: 'r3', ops: reads, ...three })).body.vote).toBe('yes')
  expect(await state('r3')).toBe('prepared')
  expect((await post('/precommit', { txn: 'r3', attempt: 0 })).status).toBe(200)
  expect((await post('/commit', { txn: 'r3' })).status).toBe(200)
  expect(r.calls).toContain('commit r3')
  await node.close()
})

test('a resolve of a stopped participant reaches the resource at its start', async () => {
  const dir = tempDir()
  const before = await nodeOf(dir, memoryResource().resource)
  await before.post('/prepare', { txn: 'h1', ops: SET })
  await before.node.close()
  expect(await resolveHeuristically(dir, 'h1', 'abort')).toBe('h1=aborted (heuristic)')
  const r = memoryResource(['h1'])
  const after = await nodeOf(dir, r.resource)
  expect(r.calls).toEqual(['abort h1'])
  expect(await after.state('h1')).toBe('aborted')
  await after.node.close()
})
