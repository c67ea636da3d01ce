// Three-phase commit with E3PC's termination, on real nodes over loopback HTTP in one process:
// a transaction commits in three phases; with the coordinator gone at each point after its
// votes, the participants end it by themselves with one outcome; a participant cut off leaves
// the two others a quorum, which terminates.
import { afterEach, expect, test } from 'bun:test'
import { CoordinatorNode, ParticipantNode, bunPorts, type Ports } from '../lib.ts'
import { createCoordinatorApp } from '../lib/http/coordinator-app.ts'
import { createApp } from '../lib/http/participant-app.ts'
import { cleanup, tempDir } from '../testing/processes.ts'

afterEach(cleanup)
const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
})

type Rule = (from: string, url: string, body: unknown) => boolean

/** A network the test can cut: each rule drops the requests it matches (by sender, URL or
 * the message types in the body). */
function network() {
  const rules: Rule[] = []
  const ports = (from: string): Ports => ({
    ...bunPorts,
    warn: () => {},
    request: (method, url, body, timeoutMs) =>
      rules.some((drop) => drop(from, url, body))
        ? Promise.resolve(null)
        : bunPorts.request(method, url, body, timeoutMs),
  })
  return { ports, drop: (rule: Rule) => rules.push(rule) }
}

type Net = ReturnType<typeof network>

async function cluster(net: Net, n = 3) {
  const participants: ParticipantNode[] = []
  const urls: string[] = []
  for (let i = 0; i < n; i++) {
    const node = new ParticipantNode(tempDir(), null, {
      inDoubtAfterMs: 300,
      tickMs: 20,
      requestMs: 300,
      backoff: { baseMs: 20, capMs: 200 },
      ports: net.ports(`p${i}`),
    })
    await node.start()
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: createApp(node).fetch })
    stops.push(
      () => node.close(),
      () => server.stop(true),
    )
    participants.push(node)
    urls.push(`http://127.0.0.1:${server.port}`)
  }
  const coordinator = new CoordinatorNode({
    dir: tempDir(),
    timeoutMs: 1000,
    requestMs: 300,
    alwaysBatch: true,
    lazyAborts: true,
    ports: net.ports('c'),
  })
  await coordinator.start()
  stops.push(() => coordinator.close())
  const app = createCoordinatorApp(coordinator, { participants: urls, ackWaitMs: 500 })
  return { participants, urls, coordinator, app }
}

const data = [{ op: 'set', key: 'data', value: 777 }] as const

/** Resolves once every participant has an outcome for `txn`, durable (its locks are let go
 * only then): their states. */
async function settled(participants: ParticipantNode[], txn: string): Promise<string[]> {
  for (;;) {
    const states = participants.map((p) => p.state(txn).state)
    const durable = participants.every((p) => p.store.locks().size === 0)
    if (durable && states.every((s) => s === 'committed' || s === 'aborted')) return states
    await Bun.sleep(20)
  }
}

/** The items of a /batch body sent, of `type`. */
function carries(body: unknown, type: string): boolean {
  const messages = (body as { messages?: { type?: string }[] } | null)?.messages
  return Array.isArray(messages) && messages.some((m) => m.type === type)
}

test('a three-phase transaction commits on every participant, in three phases', async () => {
  const c = await cluster(network())
  const body = JSON.stringify({ id: 'TX2', protocol: '3pc', ops: data })
  const answer = await c.app.request('/transactions', { method: 'POST', body })
  const outcome = (await answer.json()) as Record<string, unknown>
  expect(outcome.decision).toBe('commit')
  expect(outcome.protocol).toBe('3pc')
  expect((outcome.precommitted as string[]).length).toBeGreaterThanOrEqual(2)
  expect(await settled(c.participants, 'TX2')).toEqual(['committed', 'committed', 'committed'])
  for (const p of c.participants) expect(await p.store.get('data')).toBe(777)
})

test('the coordinator gone after precommit, its commits lost: all commit without it', async () => {
  const net = network()
  const c = await cluster(net)
  net.drop((from, _, body) => from === 'c' && carries(body, 'commit'))
  void c.coordinator.run('T1', c.urls, { [c.urls[0]!]: data }, '3pc')
  expect(await settled(c.participants, 'T1')).toEqual(['committed', 'committed', 'committed'])
  expect(await c.participants[0]!.store.get('data')).toBe(777)
})

test('the coordinator gone when one participant precommitted: one outcome for all', async () => {
  const net = network()
  const c = await cluster(net)
  // Its precommit reaches the first participant only, then nothing more leaves it.
  let reached = false
  net.drop((from, url, body) => {
    if (from !== 'c' || (!carries(body, 'precommit') && !carries(body, 'commit'))) return false
    if (!reached && url.startsWith(c.urls[0]!) && carries(body, 'precommit')) {
      reached = true
      return false
    }
    return true
  })
  void c.coordinator.run('T2', c.urls, {}, '3pc')
  const states = await settled(c.participants, 'T2')
  expect(new Set(states).size).toBe(1)
})

test('one participant cut off after its vote: the other two, a quorum, terminate', async () => {
  const net = network()
  const c = await cluster(net)
  const cut = c.urls[2]!
  // The coordinator dies after the votes; then p2 is partitioned away, both ways.
  net.drop((from, _, body) => from === 'c' && !carries(body, 'prepare'))
  const voted = () => c.participants[2]!.state('T3').state !== 'unknown'
  net.drop((from, url) => voted() && (from === 'p2' || url.startsWith(cut)))
  void c.coordinator.run('T3', c.urls, {}, '3pc')
  const states = await settled(c.participants.slice(0, 2), 'T3')
  expect(new Set(states).size).toBe(1)
  // The one cut off decided nothing alone: it waits.
  expect(['prepared', 'preaborted', 'precommitted']).toContain(c.participants[2]!.state('T3').state)
})

test('a three-phase participant whose operations only read is prepared, like any', async () => {
  const c = await cluster(network())
  const ops = [{ op: 'check', key: 'nothing' }]
  const body = JSON.stringify({ id: 'R1', protocol: '3pc', ops })
  const outcome = (await (
    await c.app.request('/transactions', { method: 'POST', body })
  ).json()) as {
    decision: string
    votes: Record<string, string>
  }
  expect(outcome.decision).toBe('commit')
  expect(Object.values(outcome.votes)).toEqual(['yes', 'yes', 'yes'])
  expect(await settled(c.participants, 'R1')).toEqual(['committed', 'committed', 'committed'])
})
