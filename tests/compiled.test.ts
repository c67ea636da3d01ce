// The single-file deployment: `bun build --compile` binaries pass the classic exercise, and the
// parts the coordinator loads only when asked (the service's HTTP API, the client) are in them.
import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from '../testing/build.ts'
import {
  cleanup,
  outputOf,
  peerEnv,
  postJson,
  runCoordinator,
  startCoordinatorService,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'

let dist = ''
beforeAll(async () => {
  // Not a tempDir(): those go after each test, and the binaries serve every test here.
  dist = mkdtempSync(join(tmpdir(), 'twophase-dist-'))
  await build(dist)
})
afterEach(cleanup)
afterAll(() => rmSync(dist, { recursive: true, force: true }))

test('the compiled participant and coordinator pass the classic exercise', async () => {
  const participant = [join(dist, 'participant')]
  const votes = ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n']
  const nodes = await Promise.all(
    votes.map((v) => startParticipant(tempDir(), { votes: v, command: participant })),
  )
  const dir = tempDir()
  const run = await runCoordinator(dir, [], {
    env: peerEnv(nodes),
    command: [join(dist, 'coordinator')],
  })
  expect(run.code).toBe(0)
  expect(readFileSync(join(dir, 'decision.txt'), 'utf8')).toBe('t1=commit\nt2=abort\n')
  for (const n of nodes)
    expect(readFileSync(join(n.dir, 'state.txt'), 'utf8')).toBe('t1=committed\nt2=aborted\n')
})

test('the compiled coordinator serves its API and runs the client commands', async () => {
  const participant = await startParticipant(tempDir(), { command: [join(dist, 'participant')] })
  const service = await startCoordinatorService(tempDir(), {
    participants: [participant.url],
    command: [join(dist, 'coordinator')],
  })
  const started = await postJson(`${service.url}/transactions`, { id: 'c1' })
  expect(started.status).toBe(200)
  expect(started.body.decision).toBe('commit')
  const show = Bun.spawn([join(dist, 'coordinator'), 'show', 'c1', '--coordinator', service.url], {
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const run = await outputOf(show)
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  expect(run.stdout).toStartWith('c1 commit')
})
