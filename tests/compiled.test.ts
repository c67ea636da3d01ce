// The single-file deployment: `bun build --compile` binaries pass the classic exercise.
import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { build } from '../scripts/build.ts'
import { cleanup, peerEnv, runCoordinator, startParticipant, tempDir } from './helpers/processes.ts'

let dist = ''
beforeAll(async () => {
  dist = tempDir('twophase-dist-')
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
