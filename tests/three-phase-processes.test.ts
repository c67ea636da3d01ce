// Three-phase commit with E3PC's termination on real processes: `participant.ts` and
// `coordinator.ts serve` on loopback, the coordinator killed for good (SIGKILL, or a failpoint)
// at each point after the votes, and the participants ending the transaction among themselves.
// Peers reach one another by the URLs the coordinator was given, so a participant behind a
// FaultProxy is reached through it by its peers too (a SIGSTOP and refusing proxies cut one off).
import { afterEach, expect, test } from 'bun:test'
import { FaultProxy, stopProxies } from '../testing/proxy.ts'
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

afterEach(async () => {
  stopProxies()
  await cleanup()
})

const DEADLINE = 20_000 // generous: the machine may be busy with other work
const ops = [{ op: 'set', key: 'data', value: 777 }]

/** Three participants that start terminating 300 ms after they are left in doubt. */
function participants(): Promise<Node[]> {
  const args = ['--in-doubt-after', '300']
  return Promise.all([0, 1, 2].map(() => startParticipant(tempDir(), { args })))
}

function coordinator(urls: string[], failpoint?: string): Promise<Node> {
  const env = failpoint ? { TWOPHASE_FAILPOINTS: failpoint } : undefined
  return startCoordinatorService(tempDir(), { participants: urls, env })
}

/** Starts a three-phase transaction; the request fails when the coordinator dies under it. */
function begin(c: Node, id: string): Promise<unknown> {
  return postJson(`${c.url}/transactions`, { id, protocol: '3pc', ops }).catch(() => null)
}

async function states(nodes: readonly Node[], txn: string): Promise<string[]> {
  return Promise.all(nodes.map(async (n) => (await getJson(`${n.url}/transactions/${txn}`)).state))
}

const decided = (s: string) => s === 'committed' || s === 'aborted'
const UNDECIDED = ['prepared', 'precommitted', 'preaborted']

/** Waits until every node in `nodes` has an outcome for `txn`: their states. */
async function settled(nodes: readonly Node[], txn: string): Promise<string[]> {
  await waitFor(async () => (await states(nodes, txn)).every(decided), DEADLINE)
  return states(nodes, txn)
}

/** The value of `key` at each node (null where it is absent). */
async function values(nodes: readonly Node[], key: string): Promise<unknown[]> {
  return Promise.all(
    nodes.map(async (n) => {
      const response = await fetch(`${n.url}/kv/${key}`)
      return response.status === 404 ? null : ((await response.json()) as { value: unknown }).value
    }),
  )
}

/** The requests for `path` that reached `proxy` so far. */
const seen = (proxy: FaultProxy, path: string) => proxy.seen.get(path) ?? 0

test('coordinator dead, its commit to one participant lost: all commit', async () => {
  const p = await participants()
  // p2 is named by its proxy URL, to the coordinator and (through the prepare) to its peers.
  const proxy = new FaultProxy(p[2]!.url)
  proxy.set('drop', '/commit')
  const c = await coordinator([p[0]!.url, p[1]!.url, proxy.url])
  const posted = begin(c, 'T1')
  await waitFor(async () => {
    const [s0, s1] = await states(p, 'T1')
    return s0 === 'committed' && s1 === 'committed' && seen(proxy, '/commit') > 0
  }, DEADLINE)
  await kill(c)
  await posted
  // The coordinator's commit never reached p2, and the coordinator is gone for good: p2, in
  // doubt, runs a termination attempt, hears `committed` from its peers and commits.
  expect(await settled(p, 'T1')).toEqual(['committed', 'committed', 'committed'])
  expect(await values(p, 'data')).toEqual([777, 777, 777])
}, 40_000)

/** Three participants, each behind a proxy that refuses state requests (so none terminates
 * until the test lets it), and a coordinator that dies at `point` for `txn`: their states. */
async function orphaned(txn: string, point: string, dropPrecommit: string[] = []) {
  const p = await participants()
  const proxies = p.map((n) => new FaultProxy(n.url))
  for (const proxy of proxies) proxy.set('refuse', '/state-request')
  for (const [i, proxy] of proxies.entries()) {
    if (dropPrecommit.includes(`p${i}`)) proxy.set('drop', '/precommit')
  }
  const urls = proxies.map((x) => x.url)
  const c = await coordinator(urls, `${point}@${txn}`)
  const posted = begin(c, txn)
  expect(await c.proc.exited).toBe(137)
  await posted
  return { p, proxies, before: await states(p, txn) }
}

/** Stops participant `i` and refuses every request to it; the others may now terminate. */
function cut(p: Node[], proxies: FaultProxy[], i: number): void {
  p[i]!.proc.kill('SIGSTOP')
  proxies[i]!.set('refuse')
  proxies.forEach((proxy, j) => j !== i && proxy.heal())
}

/** Resumes participant `i` and heals every proxy. */
function rejoin(p: Node[], proxies: FaultProxy[], i: number): void {
  for (const proxy of proxies) proxy.heal()
  p[i]!.proc.kill('SIGCONT')
}

// The coordinator's precommit reaches p0 alone, and it dies on p0's acknowledgement, before a
// quorum. Either all three terminate together, or p0 (the only one precommitted) is cut off
// while p1 and p2 decide without it, then must end as they did, not commit on its own.
test.each([['all three together'], ['p0 cut off until p1 and p2 decided']])(
  'coordinator dead with only p0 precommitted: one outcome, %s',
  async (how) => {
    const point = 'coordinator-after-first-precommit-ack'
    const { p, proxies, before } = await orphaned('T2', point, ['p1', 'p2'])
    expect(before).toEqual(['precommitted', 'prepared', 'prepared'])
    for (const proxy of proxies.slice(1)) expect(seen(proxy, '/precommit')).toBeGreaterThan(0)
    if (how.startsWith('p0')) {
      cut(p, proxies, 0)
      const pair = await settled(p.slice(1), 'T2')
      expect(pair[0]).toBe(pair[1])
    }
    rejoin(p, proxies, 0)
    const outcome = await settled(p, 'T2')
    expect(new Set(outcome).size).toBe(1)
    const value = outcome[0] === 'committed' ? 777 : null
    expect(await values(p, 'data')).toEqual([value, value, value])
  },
  40_000,
)

test('one participant cut off, coordinator dead: the two others decide', async () => {
  // Everyone voted yes, and the coordinator died before its first precommit.
  const point = 'coordinator-after-precommit-logged'
  const { p, proxies, before } = await orphaned('T3', point)
  expect(before).toEqual(['prepared', 'prepared', 'prepared'])
  const [x0, x1] = proxies as [FaultProxy, FaultProxy]
  cut(p, proxies, 2)
  const pair = await settled(p.slice(0, 2), 'T3')
  expect(pair[0]).toBe(pair[1])
  // p2 runs again, still cut off from both peers (they need nothing more): its termination
  // attempts find no quorum, and it decides nothing alone.
  x0.set('refuse')
  x1.set('refuse')
  const asked = () => seen(x0, '/state-request') + seen(x1, '/state-request')
  const from = asked()
  p[2]!.proc.kill('SIGCONT')
  const stateOfCut = async () => (await states([p[2]!], 'T3'))[0]!
  // Three attempts seen, or a decision taken alone (which fails below).
  await waitFor(async () => asked() >= from + 6 || decided(await stateOfCut()), DEADLINE)
  expect(UNDECIDED).toContain(await stateOfCut())
  // Healed, its next attempt hears the outcome from its peers.
  rejoin(p, proxies, 2)
  expect(await settled(p, 'T3')).toEqual([pair[0]!, pair[0]!, pair[0]!])
}, 40_000)
