// The participant's channel (lib/http/channel.ts, lib/node/channel.ts), in process: a batch on
// it is answered by the same app as a POST /batch; every frame proves the secret, once; a frame
// that is not one closes the channel and changes nothing; a participant without channels, one
// that does not answer and one that goes away are each what a plain request to them would be.
import { afterEach, expect, test } from 'bun:test'
import type { ServerWebSocket } from 'bun'
import { readFileSync } from 'node:fs'
import { createApp } from '../lib/http/participant-app.ts'
import { channelSocket } from '../lib/http/channel.ts'
import { MAX_BODY_BYTES } from '../lib/http/json-errors.ts'
import { ParticipantNode, httpPorts, requestHeaders } from '../lib.ts'
import type { Ports } from '../lib/node/ports.ts'
import { cleanup, tempDir, waitFor } from '../testing/processes.ts'
import { makeCerts } from '../testing/tls.ts'
import { serveResource } from '../lib/resource/serve.ts'

const SECRET = 'a-cluster-secret-of-some-length'
const TXN = '0190f0e0-aaaa-7bbb-8ccc-0123456789ab'

const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
  await cleanup()
})

type Tls = { cert: string; key: string; ca: string }

async function participant(secret: string | null = null, tls?: Tls) {
  const node = new ParticipantNode(tempDir(), null, { ports: httpPorts({ secret }) })
  await node.start()
  const app = createApp(node, { secret })
  const channels = channelSocket(app)
  const serveTls = tls && { ...tls, requestCert: true, rejectUnauthorized: true }
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: app.fetch,
    websocket: channels.websocket,
    ...(serveTls ? { tls: serveTls } : {}),
  })
  stops.push(
    () => channels.closeAll(),
    () => server.stop(true),
    () => node.close(),
  )
  return { node, server, url: `${tls ? 'https' : 'http'}://127.0.0.1:${server.port}` }
}

function client(options: Parameters<typeof httpPorts>[0] = {}): Ports {
  const ports = httpPorts(options)
  stops.unshift(() => ports.close?.())
  return ports
}

const prepare = (txn = TXN) => ({
  messages: [{ type: 'prepare', txn, ops: [{ op: 'set', key: 'k', value: 1 }] }],
})
const commit = (txn = TXN) => ({ messages: [{ type: 'commit', txn }] })
type Replies = { replies: { status: number; body: { vote?: string; state?: string } }[] }

/** A WebSocket to `url`/channel, once it opened or failed; its frames' answers in order. */
async function socket(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/channel`, { headers } as object)
  const answers: string[] = []
  let closed: number | null = null
  ws.onmessage = (event) => answers.push(String(event.data))
  ws.onclose = (event) => (closed = event.code)
  const opened = await new Promise<boolean>((resolve) => {
    ws.onopen = () => resolve(true)
    ws.onerror = () => resolve(false)
  })
  stops.unshift(() => ws.close())
  return { ws, opened, answers, closed: () => closed }
}

test('batches travel on one channel and are answered as POST /batch answers them', async () => {
  const p = await participant()
  const ports = client()
  const voted = await ports.request('POST', `${p.url}/batch`, prepare(), 5000)
  expect(voted?.status).toBe(200)
  expect((voted?.body as Replies).replies[0]?.body.vote).toBe('yes')
  expect(p.server.pendingWebSockets).toBe(1)
  const done = await ports.request('POST', `${p.url}/batch`, commit(), 5000)
  expect((done?.body as Replies).replies[0]?.body.state).toBe('committed')
  expect(p.server.pendingWebSockets).toBe(1) // the same channel
  expect(p.node.state(TXN).state).toBe('committed')
  expect(await p.node.store.get('k')).toBe(1)
  // The same batch as a plain request gets the same answer.
  const plain = await fetch(`${p.url}/batch`, { method: 'POST', body: JSON.stringify(commit()) })
  expect((await plain.json()) as Replies).toEqual(done?.body as Replies)
  ports.close?.()
  await waitFor(() => p.server.pendingWebSockets === 0)
})

test('with a secret the upgrade and every frame need their proof, each used once', async () => {
  const p = await participant(SECRET)
  expect((await socket(p.url)).opened).toBe(false)
  const channelUrl = `${p.url}/channel`
  const s = await socket(p.url, requestHeaders('GET', channelUrl, '', SECRET))
  expect(s.opened).toBe(true)
  const body = JSON.stringify(prepare())
  const proof = requestHeaders('POST', `${p.url}/batch`, body, SECRET).authorization!
  s.ws.send(`1\n\n${body}`)
  s.ws.send(`2\n${proof}\n${body}`)
  s.ws.send(`3\n${proof}\n${body}`)
  await waitFor(() => s.answers.length === 3)
  // Answered as each is ready: in id order here.
  const [unproven, proven, replayed] = s.answers.sort()
  expect(unproven).toStartWith('1\n401\n{"error":"unauthorized: no proof')
  expect(proven).toStartWith('2\n200\n')
  expect(replayed).toStartWith('3\n401\n{"error":"unauthorized: the proof was already used')
  expect(p.node.state(TXN).state).toBe('prepared')
})

test('a node with the secret uses the channel; one without is refused over it', async () => {
  const p = await participant(SECRET)
  const voted = await client({ secret: SECRET }).request('POST', `${p.url}/batch`, prepare(), 5000)
  expect((voted?.body as Replies).replies[0]?.body.vote).toBe('yes')
  expect(p.server.pendingWebSockets).toBe(1)
  const other = '0190f0e0-aaaa-7bbb-8ccc-0123456789ac'
  const wrong = client({ secret: 'another-secret-entirely' })
  const refused = await wrong.request('POST', `${p.url}/batch`, prepare(other), 5000)
  expect(refused?.status).toBe(401)
  expect(p.node.state(other).state).toBe('unknown')
  expect(p.server.pendingWebSockets).toBe(1)
})

test.each([
  ['no header', 'garbage'],
  ['an id that is not a number', 'one\n\n{}'],
  ['a header longer than any proof', `1\n${'x'.repeat(2000)}\n{}`],
])('a frame with %s closes the channel and changes nothing', async (_, frame) => {
  const p = await participant()
  const s = await socket(p.url)
  s.ws.send(frame)
  await waitFor(() => s.closed() !== null)
  expect(s.closed()).toBe(1007)
  expect(s.answers).toEqual([])
  expect((await fetch(`${p.url}/healthz`)).status).toBe(200)
  expect(p.node.txns.size).toBe(0)
})

test('a frame body that is no batch gets the 400; a frame too large closes', async () => {
  const p = await participant()
  const s = await socket(p.url)
  s.ws.send('7\n\n{"messages":')
  s.ws.send('8\n\n{"messages":[{"type":"prepare","txn":"not an id"}]}')
  await waitFor(() => s.answers.length === 2)
  const [notJson, badTxn] = s.answers.sort()
  expect(notJson).toStartWith('7\n400\n{"error":')
  expect(badTxn).toStartWith('8\n200\n{"replies":[{"status":400,"body":{"error":"invalid')
  s.ws.send(`9\n\n${'x'.repeat(MAX_BODY_BYTES + 2048)}`)
  await waitFor(() => s.closed() !== null)
  expect(s.closed()).toBe(1009)
  expect(p.node.txns.size).toBe(0)
})

test('a participant without channels gets plain requests, not asked again at once', async () => {
  const seen: string[] = []
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: (request) => {
      seen.push(`${request.method} ${new URL(request.url).pathname}`)
      if (request.method !== 'POST')
        return Response.json({ error: 'no such route' }, { status: 404 })
      return Response.json({ replies: [{ status: 200, body: { vote: 'yes' } }] })
    },
  })
  stops.push(() => server.stop(true))
  const ports = client()
  const url = `http://127.0.0.1:${server.port}/batch`
  expect((await ports.request('POST', url, prepare(), 5000))?.status).toBe(200)
  expect((await ports.request('POST', url, prepare(), 5000))?.status).toBe(200)
  expect(seen).toEqual(['GET /channel', 'POST /batch', 'POST /batch'])
})

/** A server that takes channels and answers the first `answers` frames on each, then none,
 * or closes on the first frame; plain requests get a 200 with no body. */
function silent(answers: number, closeOnFrame = false) {
  const events: string[] = []
  const server = Bun.serve<{ answered: number }>({
    port: 0,
    hostname: '127.0.0.1',
    fetch(request, s) {
      if (s.upgrade(request, { data: { answered: 0 } })) return undefined
      events.push(`${request.method} ${new URL(request.url).pathname}`)
      return new Response(null)
    },
    websocket: {
      open: () => void events.push('open'),
      close: () => void events.push('close'),
      message(ws: ServerWebSocket<{ answered: number }>, data) {
        if (closeOnFrame) return ws.close(1001, 'going away')
        if (ws.data.answered++ < answers) ws.send(`${String(data).split('\n')[0]}\n200\n{}`)
      },
    },
  })
  stops.push(() => server.stop(true))
  return { url: `http://127.0.0.1:${server.port}/batch`, events }
}

test('a frame not answered in its time is no answer, and its channel is closed', async () => {
  const s = silent(1)
  const ports = client()
  expect((await ports.request('POST', s.url, prepare(), 200))?.status).toBe(200)
  expect(await ports.request('POST', s.url, prepare(), 200)).toBeNull()
  await waitFor(() => s.events.includes('close'))
  expect((await ports.request('POST', s.url, prepare(), 200))?.status).toBe(200)
  expect(s.events).toEqual(['open', 'close', 'open']) // a new channel for the next
})

test('a channel that never answers sends its participant plain requests after it', async () => {
  const s = silent(0)
  const ports = client()
  expect(await ports.request('POST', s.url, prepare(), 200)).toBeNull()
  expect((await ports.request('POST', s.url, prepare(), 200))?.status).toBe(200)
  expect(s.events).toEqual(['open', 'close', 'POST /batch'])
})

test('a channel that closes leaves its frame unanswered at once, not at its timeout', async () => {
  const s = silent(0, true)
  // Within the test's own timeout only if the close, not the 10-minute timer, ends it.
  expect(await client().request('POST', s.url, prepare(), 600_000)).toBeNull()
})

test('over TLS the channel is a wss:// one with the same certificates as requests', async () => {
  const certs = makeCerts(tempDir())
  const pem = (path: string) => readFileSync(path, 'utf8')
  const tls = { cert: pem(certs.cert), key: pem(certs.key), ca: pem(certs.ca) }
  const p = await participant(null, tls)
  const voted = await client({ tls }).request('POST', `${p.url}/batch`, prepare(), 5000)
  expect((voted?.body as Replies).replies[0]?.body.vote).toBe('yes')
  expect(p.server.pendingWebSockets).toBe(1)
})

test('one that takes the connection, never answering the upgrade: no answer', async () => {
  const held: { end(): void }[] = []
  const listener = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: { open: (s) => void held.push(s), data: () => {} },
  })
  stops.push(() => {
    for (const s of held) s.end()
    listener.stop(true)
  })
  const url = `http://127.0.0.1:${listener.port}/batch`
  // Bun gives up on a handshake after about two minutes: only the request's time ends it here.
  const reply = await Promise.race([
    client().request('POST', url, prepare(), 300),
    Bun.sleep(30_000).then(() => 'still waiting' as const),
  ])
  expect(reply).toBeNull()
})

test('a batch past the body limit is a 413 alone, the batches beside it answered', async () => {
  const p = await participant()
  const ports = client()
  const url = `${p.url}/batch`
  expect((await ports.request('POST', url, prepare(), 5000))?.status).toBe(200)
  const other = '0190f0e0-aaaa-7bbb-8ccc-0123456789ad'
  const big = {
    messages: [{ ...prepare(other).messages[0], pad: 'x'.repeat(MAX_BODY_BYTES + 4096) }],
  }
  const [large, small] = await Promise.all([
    ports.request('POST', url, big, 5000),
    ports.request('POST', url, commit(), 5000),
  ])
  expect(large?.status).toBe(413)
  expect((small?.body as Replies).replies[0]?.body.state).toBe('committed')
  expect(p.node.state(other).state).toBe('unknown')
  expect(p.server.pendingWebSockets).toBe(1) // the channel carried on
})

test('a participant that stops answers the frames it is answering first, then closes', async () => {
  const log: string[] = []
  const { promise: started, resolve: start } = Promise.withResolvers<void>()
  let closed = false
  const resource = {
    async prepare() {
      start()
      await Bun.sleep(200) // a slow resource
      log.push(`prepare ended, resource closed: ${closed}`)
      return { vote: 'yes' as const }
    },
    commit() {},
    abort() {},
    close() {
      closed = true
    },
  }
  const p = await serveResource(resource, { dir: tempDir(), say: { out: () => {}, err: () => {} } })
  const s = await socket(p.url)
  s.ws.send(`1\n\n${JSON.stringify(prepare())}`)
  await started
  await p.stop()
  expect(log).toEqual(['prepare ended, resource closed: false'])
  expect(s.answers[0]).toStartWith('1\n200\n{"replies":[{"status":200,"body":{"txn":')
  await waitFor(() => s.closed() !== null)
  expect(s.closed()).toBe(1001)
})

test('a frame gets, byte for byte, the answer its body gets as a POST /batch', async () => {
  const p = await participant(SECRET)
  const url = `${p.url}/batch`
  const s = await socket(p.url, requestHeaders('GET', `${p.url}/channel`, '', SECRET))
  const deep = `{"messages":[],"x":${'['.repeat(200)}${']'.repeat(200)}}`
  const bodies = [
    JSON.stringify(prepare()), // answered 200 twice: a repeated prepare is idempotent
    '{"messages":',
    '[1,2]',
    '{"messages":"none"}',
    deep,
    JSON.stringify({ messages: [{ type: 'vote', txn: TXN }, 7] }),
    JSON.stringify({ messages: [], pad: 'x'.repeat(MAX_BODY_BYTES) }),
  ]
  const proofs = ['proven', 'unproven', 'replayed'] as const
  let id = 0
  for (const body of bodies) {
    for (const how of proofs) {
      const proof =
        how === 'unproven' ? '' : requestHeaders('POST', url, body, SECRET).authorization!
      const headers: Record<string, string> = how === 'unproven' ? {} : { authorization: proof }
      const plain = await fetch(url, { method: 'POST', headers, body })
      const viaRequest = `${plain.status}\n${await plain.text()}`
      if (how === 'replayed') {
        // The same proof, once used by the request, is refused on the channel too (a body past
        // the limit is refused before its proof is looked at, as a request's is).
        s.ws.send(`${++id}\n${proof}\n${body}`)
        await waitFor(() => s.answers.length === id)
        const refused =
          plain.status === 413 ? '413\n' : '401\n{"error":"unauthorized: the proof was'
        expect(s.answers[id - 1]!).toStartWith(`${id}\n${refused}`)
        continue
      }
      const fresh =
        how === 'unproven' ? '' : requestHeaders('POST', url, body, SECRET).authorization!
      s.ws.send(`${++id}\n${fresh}\n${body}`)
      await waitFor(() => s.answers.length === id)
      expect(s.answers[id - 1]!).toBe(`${id}\n${viaRequest}`)
    }
  }
  expect(s.answers.map((a) => a.split('\n')[1])).toEqual([
    ...['200', '401', '401', '400', '401', '401', '400', '401', '401'],
    ...['400', '401', '401', '400', '401', '401', '200', '401', '401'],
    ...['413', '413', '413'],
  ])
  expect(s.closed()).toBeNull()
})
