// One node per directory: a second participant or coordinator started on a directory that a
// running node holds refuses to start, naming the other's pid; a lock a crash left behind is
// taken over.
import { afterEach, expect, test } from 'bun:test'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { COORDINATOR, PARTICIPANT, cleanEnv } from '../testing/nodes.ts'
import {
  cleanup,
  kill,
  outputOf,
  startCoordinatorService,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'

afterEach(cleanup)

function second(command: readonly string[], dir: string, args: string[] = []) {
  const proc = Bun.spawn([...command, ...args], {
    cwd: dir,
    env: { ...cleanEnv(), PORT: '0', HOST: '127.0.0.1' },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return outputOf(proc)
}

test('a second participant on the same directory refuses to start, naming the first', async () => {
  const dir = tempDir()
  const first = await startParticipant(dir)
  const run = await second(PARTICIPANT, dir)
  expect(run.code).toBe(2)
  expect(run.stderr).toBe(
    `error: ${dir} is in use by another participant (pid ${first.proc.pid}); ` +
      'one node per directory\n',
  )
  expect((await fetch(`${first.url}/healthz`)).status).toBe(200) // the first runs on
})

test('a second coordinator on the same directory refuses to start (batch or service)', async () => {
  const dir = tempDir()
  const service = await startCoordinatorService(dir, { participants: ['127.0.0.1:1'] })
  const pid = service.proc.pid
  const batch = await second(COORDINATOR, dir, ['--participant', '127.0.0.1:1'])
  expect(batch.code).toBe(2)
  expect(batch.stderr).toContain(`in use by another coordinator (pid ${pid})`)
  const serve = await second(COORDINATOR, dir, ['serve', '--port', '0', '--host', '127.0.0.1'])
  expect(serve.code).toBe(2)
  expect(serve.stderr).toContain(`in use by another coordinator (pid ${pid})`)
})

test('a lock left by a node that crashed is taken over', async () => {
  const dir = tempDir()
  const first = await startParticipant(dir)
  await kill(first)
  expect(existsSync(join(dir, 'twophase.lock'))).toBe(true)
  const again = await startParticipant(dir)
  expect((await fetch(`${again.url}/healthz`)).status).toBe(200)
})

test('an owner file naming a process that is gone does not hold the directory', async () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'twophase.owner'), '{"pid":2147483646,"role":"participant"}\n')
  const node = await startParticipant(dir)
  expect((await fetch(`${node.url}/healthz`)).status).toBe(200)
})

test("the lock is the kernel's: of three nodes started at once, one runs", async () => {
  const dir = tempDir()
  const runs = await Promise.allSettled([0, 1, 2].map(() => startParticipant(dir)))
  expect(runs.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
})
