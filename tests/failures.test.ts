// Crashes, timeouts, lost messages and in-doubt resolution with real processes and SIGKILL,
// through the coordinator service (`coordinator.ts serve`).
import { afterEach, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FaultProxy, stopProxies } from '../testing/proxy.ts'
import {
  cleanup,
  freePort,
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

type Cluster = { participants: Node[]; urls: string[]; coordinator: Node; dir: string }

async function cluster(
  options: { args?: string[]; env?: Record<string, string>; inDoubtAfter?: number } = {},
): Promise<Cluster> {
  const args = ['--in-doubt-after', String(options.inDoubtAfter ?? 60_000)]
  const participants = await Promise.all([0, 1, 2].map(() => startParticipant(tempDir(), { args })))
  const urls = participants.map((p) => p.url)
  const dir = tempDir()
  const port = freePort()
  const coordinator = await startCoordinatorService(dir, {
    participants: urls,
    port,
    args: options.args,
    env: options.env,
  })
  return { participants, urls, coordinator, dir }
}

function restartCoordinator(c: Cluster, args: string[] = []): Promise<Node> {
  return startCoordinatorService(c.dir, { participants: c.urls, port: c.coordinator.port, args })
}

async function states(nodes: readonly Node[], id: string): Promise<string[]> {
  return Promise.all(nodes.map(async (n) => (await getJson(`${n.url}/transactions/${id}`)).state))
}

/** Every participant shows the coordinator's decision for `id`, and the coordinator is done. */
async function converged(c: Cluster, coordinator: Node, id: string): Promise<boolean> {
  const t = await getJson(`${coordinator.url}/transactions/${id}`)
  if (t.phase !== 'done') return false
  const want = t.decision === 'commit' ? 'committed' : 'aborted'
  return (await states(c.participants, id)).every((s) => s === want)
}

/** POSTs a transaction to a coordinator that is about to crash: the request itself fails. */
async function postExpectingCrash(coordinator: Node, id: string): Promise<void> {
  await expect(postJson(`${coordinator.url}/transactions`, { id })).rejects.toThrow()
  expect(await coordinator.proc.exited).toBe(137)
}

describe('the coordinator killed at each failpoint recovers on restart', () => {
  test.each([
    ['coordinator-after-decision-logged', 'commit', ['prepared', 'prepared', 'prepared']],
    ['coordinator-after-first-ack', 'commit', null],
  ] as const)('%s → %s everywhere', async (point, decision, before) => {
    const c = await cluster({ env: { TWOPHASE_FAILPOINTS: `${point}@x1` } })
    await postExpectingCrash(c.coordinator, 'x1')
    const seen = await states(c.participants, 'x1')
    if (before) expect(seen).toEqual([...before])
    else expect(seen).toContain('committed')
    const restarted = await restartCoordinator(c)
    await waitFor(() => converged(c, restarted, 'x1'))
    await waitFor(
      async () => (await getJson(`${restarted.url}/transactions/x1`)).decision === decision,
    )
    await waitFor(() => readFileSync(join(c.dir, 'decision.txt'), 'utf8') === `x1=${decision}\n`)
  })

  // The begin record is lazy (presumed abort needs no forced write before prepare), so the
  // crash comes once it has shared a flush. A participant that never votes keeps the
  // transaction undecided until then; after the restart the log shows it begun, not decided.
  test('coordinator-after-begin-logged → abort everywhere', async () => {
    const c = await cluster({ env: { TWOPHASE_FAILPOINTS: 'coordinator-after-begin-logged@x1' } })
    const silent = c.participants[2]!
    await kill(silent)
    await postExpectingCrash(c.coordinator, 'x1')
    c.participants[2] = await startParticipant(silent.dir, { port: silent.port })
    const restarted = await restartCoordinator(c)
    await waitFor(() => converged(c, restarted, 'x1'))
    await waitFor(() => readFileSync(join(c.dir, 'decision.txt'), 'utf8') === 'x1=abort\n')
  })
})

describe('a participant killed at each failpoint recovers on restart', () => {
  test('participant-after-vote-logged: the timeout aborts; back, it asks and aborts', async () => {
    const c = await cluster({ args: ['--timeout', '1000'] })
    const victim = c.participants[1]!
    await kill(victim)
    const crashing = await startParticipant(victim.dir, {
      port: victim.port,
      env: { TWOPHASE_FAILPOINTS: 'participant-after-vote-logged@x2' },
    })
    const reply = await postJson(`${c.coordinator.url}/transactions`, { id: 'x2' })
    expect(reply.body.decision).toBe('abort')
    expect(reply.body.votes[victim.url]).toBeNull()
    expect(reply.body.acknowledged).toBe(false)
    expect(await crashing.proc.exited).toBe(137)
    // Presumed abort: the abort was sent once, while it was down; prepared again after the
    // restart, it asks the coordinator once in doubt.
    const args = ['--in-doubt-after', '200']
    c.participants[1] = await startParticipant(victim.dir, { port: victim.port, args })
    await waitFor(() => converged(c, c.coordinator, 'x2'))
    expect(await states(c.participants, 'x2')).toEqual(['aborted', 'aborted', 'aborted'])
  })

  test('participant-after-outcome-logged: the commit is resent until acknowledged', async () => {
    const c = await cluster()
    const victim = c.participants[2]!
    await kill(victim)
    const crashing = await startParticipant(victim.dir, {
      port: victim.port,
      env: { TWOPHASE_FAILPOINTS: 'participant-after-outcome-logged@x3' },
    })
    const reply = await postJson(`${c.coordinator.url}/transactions`, { id: 'x3' })
    expect(reply.body.decision).toBe('commit')
    expect(await crashing.proc.exited).toBe(137)
    c.participants[2] = await startParticipant(victim.dir, { port: victim.port })
    await waitFor(() => converged(c, c.coordinator, 'x3'))
    expect(await states(c.participants, 'x3')).toEqual(['committed', 'committed', 'committed'])
  })
})

/** A cluster whose coordinator reaches participant i only through proxied[i]. */
async function proxiedCluster(inDoubtAfter: number, args: string[] = []) {
  const pargs = ['--in-doubt-after', String(inDoubtAfter)]
  const participants = await Promise.all(
    [0, 1, 2].map(() => startParticipant(tempDir(), { args: pargs })),
  )
  const proxied = participants.map((p) => new FaultProxy(p.url))
  const urls = proxied.map((p) => p.url)
  const dir = tempDir()
  const coordinator = await startCoordinatorService(dir, { participants: urls, args })
  return { participants, urls, coordinator, dir, proxied }
}

describe('the coordinator gone for good after everyone voted yes', () => {
  test('a prepared participant learns the outcome from a peer that committed', async () => {
    const c = await proxiedCluster(200)
    c.proxied[1]!.set('drop', '/commit')
    c.proxied[2]!.set('drop', '/commit')
    const posted = postJson(`${c.coordinator.url}/transactions`, { id: 'y1' }).catch(() => null)
    await waitFor(async () => (await states(c.participants, 'y1'))[0] === 'committed')
    await kill(c.coordinator)
    await posted
    // Participants 1 and 2 are prepared, their commit lost; they ask the coordinator (gone),
    // then their peers, and participant 0 tells them.
    await waitFor(async () => (await states(c.participants, 'y1')).every((s) => s === 'committed'))
  })

  test('with no peer knowing, every participant stays prepared and keeps asking', async () => {
    const c = await proxiedCluster(100)
    for (const p of c.proxied) p.set('drop', '/commit')
    const posted = postJson(`${c.coordinator.url}/transactions`, { id: 'y2' }).catch(() => null)
    await waitFor(
      async () => (await getJson(`${c.coordinator.url}/transactions/y2`)).decision === 'commit',
    )
    await kill(c.coordinator)
    await posted
    const asked = async (n: Node) => {
      const status = await getJson(`${n.url}/status`)
      return status.inDoubt.some(
        (d: { txn: string; asks: number }) => d.txn === 'y2' && d.asks >= 3,
      )
    }
    await waitFor(async () => (await Promise.all(c.participants.map(asked))).every(Boolean))
    // Blocking is correct: nobody decided alone.
    expect(await states(c.participants, 'y2')).toEqual(['prepared', 'prepared', 'prepared'])
    const status = await getJson(`${c.participants[0]!.url}/status`)
    expect(status.inDoubt[0].waitedMs).toBeGreaterThanOrEqual(100)
  })
})

describe('timeouts and lost messages', () => {
  test('a participant down during prepare makes the transaction abort at the timeout', async () => {
    const c = await cluster({ args: ['--timeout', '500'] })
    const down = c.participants[0]!
    await kill(down)
    const reply = await postJson(`${c.coordinator.url}/transactions`, { id: 'z1' })
    expect(reply.status).toBe(200)
    expect(reply.body.decision).toBe('abort')
    expect(reply.body.reasons[down.url]).toBe('no vote before the prepare timeout')
    expect(await states(c.participants.slice(1), 'z1')).toEqual(['aborted', 'aborted'])
    // Presumed abort: the abort is sent once, and back up it knows nothing of z1, which is
    // the same thing: it never voted, so it has nothing to undo.
    c.participants[0] = await startParticipant(down.dir, { port: down.port })
    expect(await states(c.participants, 'z1')).toEqual(['unknown', 'aborted', 'aborted'])
    expect((await getJson(`${c.coordinator.url}/transactions/z1`)).phase).toBe('done')
  })

  test('a participant down during commit is committed when it comes back', async () => {
    const c = await proxiedCluster(60_000)
    c.proxied[2]!.set('refuse', '/commit')
    const reply = await postJson(`${c.coordinator.url}/transactions`, { id: 'z2' })
    expect(reply.body.decision).toBe('commit')
    expect(reply.body.acknowledged).toBe(false)
    const down = c.participants[2]!
    await kill(down)
    c.proxied[2]!.heal()
    c.participants[2] = await startParticipant(down.dir, { port: down.port })
    await waitFor(
      async () => (await getJson(`${c.coordinator.url}/transactions/z2`)).phase === 'done',
    )
    expect(await states(c.participants, 'z2')).toEqual(['committed', 'committed', 'committed'])
  })

  test('a cut between the coordinator and one participant heals and it converges', async () => {
    const c = await proxiedCluster(60_000, ['--timeout', '500'])
    c.proxied[1]!.set('drop')
    const cut = await postJson(`${c.coordinator.url}/transactions`, { id: 'z3' })
    expect(cut.body.decision).toBe('abort')
    c.proxied[1]!.heal()
    c.proxied[1]!.set('drop', '/commit')
    const late = await postJson(`${c.coordinator.url}/transactions`, { id: 'z4' })
    expect(late.body.decision).toBe('commit')
    expect((await states(c.participants, 'z4'))[1]).toBe('prepared')
    c.proxied[1]!.heal()
    await waitFor(async () => {
      const t = await getJson(`${c.coordinator.url}/status`)
      return t.counts.delivering === 0
    })
    // Presumed abort: the abort was sent once, into the cut; the participant never saw the
    // prepare either, so it has nothing to undo, and knowing nothing of z3 means abort.
    expect(await states(c.participants, 'z3')).toEqual(['aborted', 'unknown', 'aborted'])
    expect(await states(c.participants, 'z4')).toEqual(['committed', 'committed', 'committed'])
  })
})

test('200 concurrent transactions, a participant killed and restarted: all agree', async () => {
  // A participant that missed an abort (presumed abort sends it once) asks when in doubt.
  const c = await cluster({ args: ['--timeout', '1000'], inDoubtAfter: 300 })
  const ids = Array.from({ length: 200 }, (_, i) => `load-${i}`)
  const victim = c.participants[1]!
  const replies = new Map<string, { status: number; body: any }>()
  let restarted: Promise<number> | null = null
  const chaos = async () => {
    await kill(victim)
    const args = ['--in-doubt-after', '300']
    c.participants[1] = await startParticipant(victim.dir, { port: victim.port, args })
    return replies.size // how many had finished when the victim was back
  }
  const queue = [...ids]
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      replies.set(id, await postJson(`${c.coordinator.url}/transactions`, { id }))
      if (replies.size === 50) restarted = chaos()
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker)) // 16 clients at a time
  expect(await restarted!).toBeLessThan(200) // the crash happened while transactions ran
  const all = ids.map((id) => replies.get(id)!)
  expect(all.every((r) => r.status === 200)).toBe(true)
  const decisionsOf = () => readFileSync(join(c.dir, 'decision.txt'), 'utf8').trim().split('\n')
  await waitFor(async () => {
    const status = await getJson(`${c.coordinator.url}/status`)
    const prepared = await Promise.all(
      c.participants.map(async (p) => (await getJson(`${p.url}/status`)).prepared.length),
    )
    const settled = status.counts.delivering === 0 && status.counts.preparing === 0
    return settled && prepared.every((n) => n === 0) && decisionsOf().length === 200
  }, 30_000)
  const logged = new Map(decisionsOf().map((line) => line.split('=') as [string, string]))
  for (const [i, id] of ids.entries()) {
    expect(all[i]!.body.decision).toBe(logged.get(id))
    const seen = await states(c.participants, id)
    // `unknown` is an abort too: a participant that never voted has nothing to undo.
    if (logged.get(id) === 'commit') expect(seen).toEqual(['committed', 'committed', 'committed'])
    else for (const s of seen) expect(['aborted', 'unknown']).toContain(s)
  }
}, 120_000)
