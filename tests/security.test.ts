// The trust boundary with real processes: a cluster secret on every node, client tokens, and
// mutual TLS. Without them a node says at start-up that it accepts anyone.
import { afterEach, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  cleanup,
  outputOf,
  peerEnv,
  runCoordinator,
  spawnCoordinator,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
} from '../testing/processes.ts'
import { FaultProxy, stopProxies } from '../testing/proxy.ts'
import { makeCerts, tlsFlags } from '../testing/tls.ts'

afterEach(async () => {
  stopProxies()
  await cleanup()
})

const read = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8')

/** A secret file and a client tokens file in a fresh directory. */
function keys() {
  const dir = tempDir()
  const secret = join(dir, 'secret')
  const tokens = join(dir, 'tokens')
  writeFileSync(secret, 'the-cluster-secret-for-this-test\n', { mode: 0o600 })
  writeFileSync(tokens, '# clients\nclient-token-number-one\n', { mode: 0o600 })
  return { dir, secret, tokens, token: 'client-token-number-one' }
}

test('the classic exercise runs with a secret and mutual TLS on every node', async () => {
  const k = keys()
  const flags = ['--secret-file', k.secret, ...tlsFlags(makeCerts(k.dir))]
  const votes = ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n']
  const nodes = await Promise.all(
    votes.map((v) => startParticipant(tempDir(), { votes: v, args: flags })),
  )
  for (const node of nodes) expect(node.url).toStartWith('https://127.0.0.1:')
  const dir = tempDir()
  const run = await runCoordinator(dir, flags, { env: peerEnv(nodes) })
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  expect(read(dir, 'decision.txt')).toBe('t1=commit\nt2=abort\n')
  for (const node of nodes) expect(read(node.dir, 'state.txt')).toBe('t1=committed\nt2=aborted\n')
  // Without a certificate from the CA, nobody gets through the handshake.
  const outsider = await fetch(`${nodes[0]!.url}/healthz`, { tls: { rejectUnauthorized: false } })
    .then(() => 'answered')
    .catch(() => 'refused')
  expect(outsider).toBe('refused')
})

test("with a secret, an outsider's /abort mid-transfer is a 401: it stays atomic", async () => {
  const k = keys()
  const secret = ['--secret-file', k.secret]
  const [p0, p1] = await Promise.all(
    [0, 1].map(() => startParticipant(tempDir(), { args: secret })),
  )
  const proxy = new FaultProxy(p1!.url)
  proxy.set('drop', '/commit') // p1's commit is held while the outsider tries
  const args = [...secret, '--client-tokens-file', k.tokens]
  const service = await startCoordinatorService(tempDir(), {
    participants: [p0!.url, proxy.url],
    args,
  })
  const body = JSON.stringify({
    id: 'x1',
    ops: { 0: [{ op: 'add', key: 'a', amount: -10 }], 1: [{ op: 'add', key: 'b', amount: 10 }] },
  })
  const headers = { authorization: `Bearer ${k.token}`, 'content-type': 'application/json' }
  const posted = fetch(`${service.url}/transactions`, { method: 'POST', body, headers })
  await waitFor(() => (proxy.seen.get('/commit') ?? 0) > 0)
  for (const path of ['/abort', '/resolve', '/commit']) {
    const outsider = await fetch(`${p1!.url}${path}`, {
      method: 'POST',
      body: JSON.stringify({ txn: 'x1', decision: 'abort' }),
    })
    expect(outsider.status).toBe(401)
  }
  proxy.heal()
  expect(((await (await posted).json()) as { decision: string }).decision).toBe('commit')
  const proof = ['--secret-file', k.secret, '--coordinator', service.url]
  const client = spawnCoordinator(tempDir(), ['get', 'b', '--on', '1', ...proof])
  const got = await outputOf(client)
  expect(got.code).toBe(0)
  expect(got.stdout).toContain('10')
})

test('without a secret a node says it hears anyone; no proof means refused', async () => {
  const open = spawnCoordinator(tempDir(), ['serve', '--port', '0', '--host', '127.0.0.1'])
  const k = keys()
  const service = await startCoordinatorService(tempDir(), {
    participants: ['127.0.0.1:1'],
    args: ['--secret-file', k.secret, '--client-tokens-file', k.tokens],
  })
  const anonymous = await outputOf(
    spawnCoordinator(tempDir(), ['status', '--coordinator', service.url, '--timeout', '3000']),
  )
  expect(anonymous.code).toBe(1)
  expect(anonymous.stderr).toContain('(HTTP 401)')
  const tokenFile = join(k.dir, 'token')
  writeFileSync(tokenFile, `${k.token}\n`)
  const withToken = await outputOf(
    spawnCoordinator(tempDir(), [
      'show',
      'nothing',
      '--coordinator',
      service.url,
      '--token-file',
      tokenFile,
    ]),
  )
  expect(withToken.stderr).not.toContain('401')
  const warned = await firstLine(open.stderr)
  open.kill()
  await open.exited
  expect(warned).toBe(
    'coordinator: no --secret-file: accepting requests from anyone who can reach it (plain HTTP)',
  )
})

/** The first line a stream prints. */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader()
  let text = ''
  while (!text.includes('\n')) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  return text.split('\n')[0]!
}

test.each([
  [['--tls-ca', 'CA'], 'a node given --tls-ca needs --tls-cert and --tls-key too'],
  [['--tls-cert', 'CERT'], '--tls-cert and --tls-key go together: give both or neither'],
  [['--secret-file', 'SHORT'], 'is shorter than 16 characters'],
  [['--secret-file', 'MISSING'], 'cannot read it (ENOENT)'],
])('a participant given %p refuses to start with one line', async (flags, words) => {
  const k = keys()
  const certs = makeCerts(k.dir)
  writeFileSync(join(k.dir, 'short'), 'too-short\n')
  const files: Record<string, string> = {
    CA: certs.ca,
    CERT: certs.cert,
    SHORT: join(k.dir, 'short'),
    MISSING: join(k.dir, 'nothing-here'),
  }
  const args = flags.map((f) => files[f] ?? f)
  const run = await outputOf(
    Bun.spawn([process.execPath, join(import.meta.dir, '../participant.ts'), ...args], {
      cwd: tempDir(),
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
      stdout: 'pipe',
      stderr: 'pipe',
    }),
  )
  expect(run.code).toBe(2)
  expect(run.stderr).toContain(words)
  expect(run.stderr.trim().split('\n')).toHaveLength(1)
})
