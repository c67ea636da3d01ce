// The classic exercise with real processes: three `bun participant.ts`, one `bun coordinator.ts`.
import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  cleanup,
  freePort,
  getJson,
  kill,
  peerEnv,
  runCoordinator,
  spawnCoordinator,
  startParticipant,
  tempDir,
  type Command,
  type Node,
} from '../testing/processes.ts'

afterEach(cleanup)

const read = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8')

/** One participant per entry: its votes.txt text, or undefined for none (every vote yes). */
async function participants(
  votes: readonly (string | undefined)[],
  command?: Command,
): Promise<Node[]> {
  return Promise.all(votes.map((v) => startParticipant(tempDir(), { votes: v, command })))
}

describe('the classic exercise', () => {
  test.each([
    ['yes,yes / yes,no / yes,yes', ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n'], 'commit', 'abort'],
    ['all yes', ['yes\nyes\n', 'yes\nyes\n', 'yes\nyes\n'], 'commit', 'commit'],
    ['one participant no,no', ['yes\nyes\n', 'yes\nyes\n', 'no\nno\n'], 'abort', 'abort'],
    ['all no', ['no\nno\n', 'no\nno\n', 'no\nno\n'], 'abort', 'abort'],
  ])('votes %s decide t1 and t2 the same everywhere', async (_, votes, t1, t2) => {
    const nodes = await participants(votes)
    const dir = tempDir()
    const run = await runCoordinator(dir, [], { env: peerEnv(nodes) })
    expect(run.code).toBe(0)
    expect(read(dir, 'decision.txt')).toBe(`t1=${t1}\nt2=${t2}\n`)
    const outcome = (d: string) => (d === 'commit' ? 'committed' : 'aborted')
    for (const node of nodes) {
      expect(read(node.dir, 'state.txt')).toBe(`t1=${outcome(t1)}\nt2=${outcome(t2)}\n`)
    }
  })

  test('a coordinator started before its participants waits and retries', async () => {
    const ports = [freePort(), freePort(), freePort()]
    const dir = tempDir()
    const coordinator = spawnCoordinator(dir, [], { env: peerEnv(ports.map((port) => ({ port }))) })
    const votes = ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n']
    const nodes = await Promise.all(
      votes.map((v, i) => startParticipant(tempDir(), { votes: v, port: ports[i] })),
    )
    expect(await coordinator.exited).toBe(0)
    expect(read(dir, 'decision.txt')).toBe('t1=commit\nt2=abort\n')
    for (const node of nodes) expect(read(node.dir, 'state.txt')).toBe('t1=committed\nt2=aborted\n')
  })

  test('transactions given as arguments run in order; --participant is like the env', async () => {
    const nodes = await participants([undefined, undefined, undefined])
    const dir = tempDir()
    const flags = nodes.flatMap((n, i) => [
      '--participant',
      i === 0 ? n.url : `127.0.0.1:${n.port}`,
    ])
    const run = await runCoordinator(dir, ['order-9', 'order-10', ...flags])
    expect(run.code).toBe(0)
    expect(run.stdout).toBe('order-9=commit\norder-10=commit\n')
    expect(read(dir, 'decision.txt')).toBe('order-9=commit\norder-10=commit\n')
    // state.txt sorts by plain string order: "order-10" < "order-9".
    expect(read(nodes[0]!.dir, 'state.txt')).toBe('order-10=committed\norder-9=committed\n')
  })
})

describe('crashes', () => {
  test('killed once its yes is logged, it comes back prepared, ends like the others', async () => {
    const nodes = await participants([undefined, undefined, undefined])
    const victim = nodes[1]!
    await kill(victim)
    const crashing = await startParticipant(victim.dir, {
      port: victim.port,
      env: { TWOPHASE_FAILPOINTS: 'participant-after-vote-logged@t1' },
    })
    const dir = tempDir()
    const env = peerEnv(nodes)
    // The victim dies before answering, so t1 aborts; delivering that abort to it must wait.
    const first = await runCoordinator(
      dir,
      ['t1', '--timeout', '1000', '--deliver-timeout', '500'],
      { env },
    )
    expect(await crashing.proc.exited).toBe(137)
    expect(first.code).toBe(1)
    expect(first.stderr.trim().split('\n')).toHaveLength(1)
    expect(first.stderr).toContain('did not acknowledge')
    const back = await startParticipant(victim.dir, { port: victim.port })
    expect((await getJson(`${back.url}/transactions/t1`)).state).toBe('prepared')
    const second = await runCoordinator(dir, ['t1'], { env })
    expect(second.code).toBe(0)
    expect(read(dir, 'decision.txt')).toBe('t1=abort\n')
    for (const node of nodes) expect(read(node.dir, 'state.txt')).toBe('t1=aborted\n')
  })

  test('a participant killed after voting yes commits when the coordinator reruns', async () => {
    const nodes = await participants([undefined, undefined, undefined])
    const victim = nodes[2]!
    const vote = await fetch(`${victim.url}/prepare`, { method: 'POST', body: '{"txn":"t1"}' })
    expect(await vote.text()).toBe('yes')
    await kill(victim)
    const back = await startParticipant(victim.dir, { port: victim.port })
    expect((await getJson(`${back.url}/transactions/t1`)).state).toBe('prepared')
    const dir = tempDir()
    const run = await runCoordinator(dir, ['t1'], { env: peerEnv(nodes) })
    expect(run.code).toBe(0)
    for (const node of nodes) expect(read(node.dir, 'state.txt')).toBe('t1=committed\n')
  })

  test.each(['coordinator-after-decision-logged', 'coordinator-after-first-ack'])(
    'a coordinator killed at %s re-delivers t1=commit when run again',
    async (point) => {
      const nodes = await participants(['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n'])
      const dir = tempDir()
      const env = peerEnv(nodes)
      const crashed = await runCoordinator(dir, [], {
        env: { ...env, TWOPHASE_FAILPOINTS: `${point}@t1` },
      })
      expect(crashed.code).toBe(137)
      const states = await Promise.all(nodes.map((n) => getJson(`${n.url}/transactions/t1`)))
      const committed = states.filter((s) => s.state === 'committed').length
      // Logged but unsent: nobody knows. After the first ack: at least that participant knows.
      if (point === 'coordinator-after-decision-logged') expect(committed).toBe(0)
      else expect(committed).toBeGreaterThanOrEqual(1)
      expect(read(dir, 'decision.txt')).not.toContain('t2')
      const rerun = await runCoordinator(dir, [], { env })
      expect(rerun.code).toBe(0)
      expect(read(dir, 'decision.txt')).toBe('t1=commit\nt2=abort\n')
      for (const node of nodes)
        expect(read(node.dir, 'state.txt')).toBe('t1=committed\nt2=aborted\n')
    },
  )
})

describe('coordinator errors are one line and a non-zero exit', () => {
  test('no participants configured', async () => {
    const dir = tempDir()
    const run = await runCoordinator(dir, [])
    expect(run.code).toBe(2)
    expect(run.stderr).toBe(
      'error: no participants configured: set PEER_PARTICIPANT0_HOST and PEER_PARTICIPANT0_PORT, ' +
        'or pass --participant host:port\n',
    )
    // Refused before anything is created: no log, no decision.txt.
    expect(existsSync(join(dir, 'decision.txt'))).toBe(false)
    expect(existsSync(join(dir, 'coordinator.db'))).toBe(false)
  })

  test.each(['nonsense', 'ftp://host:1', 'host', 'http://h:1/?q'])(
    'a bad --participant %s',
    async (value) => {
      const run = await runCoordinator(tempDir(), ['--participant', value])
      expect(run.code).toBe(2)
      expect(run.stderr).toStartWith(`error: invalid participant ${JSON.stringify(value)}`)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
    },
  )

  test('an unknown flag and a bad transaction id', async () => {
    const flag = await runCoordinator(tempDir(), ['--bogus'])
    expect(flag.code).toBe(2)
    // The error, then the usage line.
    const [error, usage, ...rest] = flag.stderr.trim().split('\n')
    expect(error).toBe("error: unknown option '--bogus' (see: coordinator.ts --help)")
    expect(usage).toStartWith('usage: coordinator.ts [TXN ...]')
    expect(rest).toEqual([])
    const id = await runCoordinator(tempDir(), ['bad/id', '--participant', '127.0.0.1:1'])
    expect(id.code).toBe(2)
    expect(id.stderr).toBe('error: invalid transaction id "bad/id"\n')
  })

  test('a participant that never answers aborts the transaction and fails the run', async () => {
    const silent = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () => new Promise<Response>(() => {}),
    })
    try {
      const nodes = await participants([undefined, undefined])
      const dir = tempDir()
      const flags = [...nodes, silent].flatMap((n) => ['--participant', `127.0.0.1:${n.port}`])
      const args = ['t1', ...flags, '--timeout', '300', '--deliver-timeout', '300']
      const run = await runCoordinator(dir, args)
      expect(run.code).toBe(1)
      expect(run.stdout).toBe('t1=abort\n')
      expect(run.stderr).toStartWith(
        `error: t1=abort is recorded but http://127.0.0.1:${silent.port}`,
      )
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      for (const node of nodes) expect(read(node.dir, 'state.txt')).toBe('t1=aborted\n')
    } finally {
      silent.stop(true)
    }
  })
})
