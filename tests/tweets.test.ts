// The tweet store (examples/tweets.ts) over real processes: two workers and a coordinator
// service; each write one transaction on both workers, a second writer of a tweet refused with
// 409, and a worker down failing writes cleanly while the other still serves the feed; on a
// cluster with a secret and mutual TLS, it proves both.
import { afterEach, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { requestHeaders } from '../lib/node/ports.ts'
import { ROOT, spawnNode, type Node } from '../testing/nodes.ts'
import { makeCerts, tlsFlags } from '../testing/tls.ts'
import {
  cleanup,
  kill,
  postJson,
  runCommand,
  startCoordinatorService,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'

const ours: Node[] = []
afterEach(async () => {
  for (const n of ours.splice(0)) {
    n.proc.kill('SIGKILL')
    await n.proc.exited
  }
  await cleanup()
})

const TWEETS = [process.execPath, join(ROOT, 'examples', 'tweets.ts')]

/** Two workers, a service, and the tweet store on them. */
async function cluster() {
  const workers = [await startParticipant(tempDir()), await startParticipant(tempDir())]
  const args = ['--timeout', '1000']
  const urls = workers.map((w) => w.url)
  const service = await startCoordinatorService(tempDir(), { participants: urls, args })
  const tweets = await spawnNode([...TWEETS, '--port', '0', '--coordinator', service.url], ROOT, {})
  ours.push(tweets)
  return { workers, service, url: tweets.url }
}

/** A client with its own session cookie. */
function client(base: string) {
  let cookie = ''
  return async (method: string, path: string, body?: unknown) => {
    const response = await fetch(base + path, {
      method,
      headers: { 'content-type': 'application/json', cookie },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const set = response.headers.get('set-cookie')
    if (set) cookie = set.split(';')[0]!
    return { status: response.status, body: (await response.json()) as any }
  }
}

const stored = async (worker: Node, id: string) => {
  const response = await fetch(`${worker.url}/kv/tweet:${id}`)
  return response.status === 404 ? null : ((await response.json()) as any).value
}

test('log in, post, update, delete and log out; both workers hold every tweet', async () => {
  const { workers, url } = await cluster()
  const alice = client(url)
  expect(await alice('POST', '/api/tweet', { content: 'hi' })).toEqual({
    status: 401,
    body: { error: 'log in first: POST /api/login {"username"}' },
  })
  expect((await alice('POST', '/api/login', { username: 'a b' })).status).toBe(400)
  expect(await alice('POST', '/api/login', { username: 'alice' })).toEqual({
    status: 200,
    body: { username: 'alice' },
  })
  const posted = await alice('POST', '/api/tweet', { content: 'hello, world' })
  expect(posted.status).toBe(201)
  const id = posted.body.tweet.id
  for (const w of workers) expect((await stored(w, id)).content).toBe('hello, world')
  const feed = await alice('GET', '/api/tweets')
  expect(feed.body.tweets.map((t: any) => [t.author, t.content])).toEqual([
    ['alice', 'hello, world'],
  ])

  const updated = await alice('PUT', `/api/tweet/${id}`, { content: 'hello again' })
  expect(updated.status).toBe(200)
  for (const w of workers) expect((await stored(w, id)).content).toBe('hello again')
  const bob = client(url)
  await bob('POST', '/api/login', { username: 'bob' })
  expect((await bob('PUT', `/api/tweet/${id}`, { content: 'mine now' })).status).toBe(403)
  expect((await bob('DELETE', `/api/tweet/${id}`)).status).toBe(403)
  expect((await alice('PUT', `/api/tweet/${id}`, { content: '' })).status).toBe(400)

  expect(await alice('DELETE', `/api/tweet/${id}`)).toEqual({ status: 200, body: { deleted: id } })
  for (const w of workers) expect(await stored(w, id)).toBeNull()
  expect((await alice('GET', '/api/tweets')).body.tweets).toEqual([])
  expect((await alice('DELETE', `/api/tweet/${id}`)).status).toBe(404)
  expect(await alice('DELETE', '/api/login')).toEqual({ status: 200, body: { username: null } })
  expect((await alice('POST', '/api/tweet', { content: 'after' })).status).toBe(401)
})

test('a second writer of a tweet being modified gets 409, and nothing changes', async () => {
  const { workers, url } = await cluster()
  const alice = client(url)
  await alice('POST', '/api/login', { username: 'alice' })
  const id = (await alice('POST', '/api/tweet', { content: 'v1' })).body.tweet.id
  // Another transaction writing the tweet, prepared on worker 1 and undecided: it holds the key.
  const other = { txn: 'other-writer', ops: [{ op: 'set', key: `tweet:${id}`, value: 'x' }] }
  expect((await postJson(`${workers[1]!.url}/prepare`, other)).body.vote).toBe('yes')
  expect(await alice('PUT', `/api/tweet/${id}`, { content: 'v2' })).toEqual({
    status: 409,
    body: { error: `tweet ${id} is being modified, try again` },
  })
  expect((await alice('DELETE', `/api/tweet/${id}`)).status).toBe(409)
  for (const w of workers) expect((await stored(w, id)).content).toBe('v1')
  await postJson(`${workers[1]!.url}/abort`, { txn: 'other-writer' })
  expect((await alice('PUT', `/api/tweet/${id}`, { content: 'v2' })).status).toBe(200)
  for (const w of workers) expect((await stored(w, id)).content).toBe('v2')
})

test('a worker down: writes fail cleanly, the feed is read from the other worker', async () => {
  const { workers, url } = await cluster()
  const alice = client(url)
  await alice('POST', '/api/login', { username: 'alice' })
  const id = (await alice('POST', '/api/tweet', { content: 'kept' })).body.tweet.id
  await kill(workers[0]!)
  const refused = await alice('POST', '/api/tweet', { content: 'lost' })
  expect(refused.status).toBe(503)
  expect(refused.body.error).toContain(`a worker is unavailable (${workers[0]!.url})`)
  expect((await alice('PUT', `/api/tweet/${id}`, { content: 'changed' })).status).toBe(503)
  const feed = await alice('GET', '/api/tweets')
  expect(feed.status).toBe(200)
  expect(feed.body.tweets.map((t: any) => t.content)).toEqual(['kept'])
  expect((await stored(workers[1]!, id)).content).toBe('kept')
})

test('bad requests are 4xx JSON errors', async () => {
  const { url } = await cluster()
  const alice = client(url)
  const bad = await fetch(`${url}/api/login`, { method: 'POST', body: '{' })
  expect([bad.status, await bad.json()]).toEqual([400, { error: 'the body is not JSON' }])
  await alice('POST', '/api/login', { username: 'alice' })
  expect((await alice('POST', '/api/tweet', { content: 'x'.repeat(281) })).status).toBe(400)
  expect((await alice('PUT', '/api/tweet/..%2f', { content: 'x' })).status).toBe(400)
  expect((await alice('GET', '/api/nothing')).status).toBe(404)
})

test('on its own it starts two workers and a service, and stops them on SIGTERM', async () => {
  const tweets = await spawnNode([...TWEETS, '--port', '0', '--timeout', '1000'], ROOT, {})
  ours.push(tweets)
  const alice = client(tweets.url)
  await alice('POST', '/api/login', { username: 'alice' })
  expect((await alice('POST', '/api/tweet', { content: 'alone' })).status).toBe(201)
  expect((await alice('GET', '/api/tweets')).body.tweets.length).toBe(1)
  const pid = tweets.proc.pid
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')
  expect(children.length).toBe(3)
  tweets.proc.kill('SIGTERM')
  expect(await tweets.proc.exited).toBe(0)
  // Its cluster is gone with it.
  for (const child of children) expect(() => process.kill(Number(child), 0)).toThrow()
  expect(await fetch(`${tweets.url}/api/tweets`).catch(() => null)).toBeNull()
})

test('a bad flag or a silent coordinator: one line and a non-zero exit', async () => {
  const badPort = await runCommand(TWEETS, ['--port', 'abc'])
  expect(badPort.code).toBe(2)
  expect(badPort.stderr.trim()).toBe('error: invalid port "abc": expected a number 0-65535')
  const nobody = await runCommand(TWEETS, ['--port', '0', '--coordinator', 'http://127.0.0.1:1'])
  expect(nobody.code).toBe(2)
  expect(nobody.stderr.trim()).toStartWith(
    'error: --coordinator http://127.0.0.1:1: no answer from its /status',
  )
  expect(nobody.stderr.trim().split('\n').length).toBe(1)
})

test('on a cluster with a secret and mutual TLS it proves both; else it is refused', async () => {
  const dir = tempDir()
  const secretFile = join(dir, 'secret')
  writeFileSync(secretFile, 'tweets-cluster-secret-0123456789\n')
  const certs = makeCerts(dir)
  const args = ['--secret-file', secretFile, ...tlsFlags(certs)]
  const workers = [
    await startParticipant(tempDir(), { args }),
    await startParticipant(tempDir(), { args }),
  ]
  const participants = workers.map((w) => w.url)
  expect(participants.every((u) => u.startsWith('https://'))).toBe(true)
  const service = await startCoordinatorService(tempDir(), {
    participants,
    args: ['--timeout', '1000', ...args],
  })
  const onlyTls = ['--port', '0', '--coordinator', service.url, ...tlsFlags(certs)]
  const refused = await runCommand(TWEETS, onlyTls)
  expect(refused.code).toBe(2)
  expect(refused.stderr.trim()).toStartWith(
    `error: --coordinator ${service.url}: its /status answered 401: unauthorized`,
  )
  const tweets = await spawnNode(
    [...TWEETS, '--port', '0', '--coordinator', service.url, ...args],
    ROOT,
    {},
  )
  ours.push(tweets)
  const alice = client(tweets.url)
  await alice('POST', '/api/login', { username: 'alice' })
  const posted = await alice('POST', '/api/tweet', { content: 'signed' })
  expect(posted.status).toBe(201)
  expect((await alice('GET', '/api/tweets')).body.tweets.map((t: any) => t.content)).toEqual([
    'signed',
  ])
  // Both workers hold it (read with the proof), and refuse a request without it.
  const tls = {
    ca: readFileSync(certs.ca, 'utf8'),
    cert: readFileSync(certs.cert, 'utf8'),
    key: readFileSync(certs.key, 'utf8'),
  }
  for (const w of workers) {
    const url = `${w.url}/kv/tweet:${posted.body.tweet.id}`
    const signed = requestHeaders('GET', url, '', 'tweets-cluster-secret-0123456789')
    const held = await fetch(url, { headers: signed, tls })
    expect(((await held.json()) as any).value.content).toBe('signed')
    expect((await fetch(url, { tls })).status).toBe(401)
  }
})

test('on its own with a secret, its cluster requires the secret too', async () => {
  const secretFile = join(tempDir(), 'secret')
  writeFileSync(secretFile, 'tweets-cluster-secret-0123456789\n')
  const command = [...TWEETS, '--port', '0', '--timeout', '1000', '--secret-file', secretFile]
  const tweets = await spawnNode(command, ROOT, {})
  ours.push(tweets)
  const alice = client(tweets.url)
  await alice('POST', '/api/login', { username: 'alice' })
  expect((await alice('POST', '/api/tweet', { content: 'alone, signed' })).status).toBe(201)
  const pid = tweets.proc.pid
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')
  expect(children.length).toBe(3)
  for (const child of children) {
    const argv = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0')
    expect(argv.slice(argv.indexOf('--secret-file'), argv.indexOf('--secret-file') + 2)).toEqual([
      '--secret-file',
      secretFile,
    ])
  }
})
