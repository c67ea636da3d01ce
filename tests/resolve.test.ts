// The operator's escape hatch: `participant.ts resolve TXN commit|abort --dir DIR`.
import { afterEach, expect, test } from 'bun:test'
import { join } from 'node:path'
import { ROOT } from '../testing/nodes.ts'
import {
  cleanup,
  getJson,
  kill,
  outputOf,
  postJson,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'

afterEach(cleanup)

async function resolveCli(dir: string, ...args: string[]) {
  const proc = Bun.spawn(
    [process.execPath, join(ROOT, 'participant.ts'), 'resolve', ...args, '--dir', dir],
    {
      stdout: 'pipe',
      stderr: 'pipe',
    },
  )
  return outputOf(proc)
}

test('resolve via a live participant: heuristic outcome kept, contradiction refused', async () => {
  const node = await startParticipant(tempDir())
  expect((await postJson(`${node.url}/prepare`, { txn: 'h1' })).body.vote).toBe('yes')
  const done = await resolveCli(node.dir, 'h1', 'commit')
  expect(done).toEqual({ stdout: 'h1=committed (heuristic)\n', stderr: '', code: 0 })
  const status = await getJson(`${node.url}/status`)
  expect(status.heuristic).toEqual([{ txn: 'h1', state: 'committed' }])
  expect(status.prepared).toEqual([])
  const again = await resolveCli(node.dir, 'h1', 'abort')
  expect(again.code).toBe(1)
  expect(again.stderr).toBe('error: Cannot abort transaction "h1" as it is already committed\n')
  const viaHttp = await postJson(`${node.url}/resolve`, { txn: 'h1', decision: 'abort' })
  expect(viaHttp.status).toBe(409)
  expect((await getJson(`${node.url}/transactions/h1`)).state).toBe('committed')
})

test('resolve with the participant stopped writes to its log, and it sees that', async () => {
  const dir = tempDir()
  const node = await startParticipant(dir)
  await postJson(`${node.url}/prepare`, { txn: 'h2' })
  await kill(node)
  const done = await resolveCli(dir, 'h2', 'abort')
  expect(done.code).toBe(0)
  expect(done.stdout).toBe('h2=aborted (heuristic)\n')
  const back = await startParticipant(dir)
  expect(await getJson(`${back.url}/transactions/h2`)).toMatchObject({
    state: 'aborted',
    heuristic: true,
  })
  expect(await Bun.file(join(dir, 'state.txt')).text()).toBe('h2=aborted\n')
})

test.each([
  [['h3'], 2],
  [['h3', 'maybe'], 2],
  [['bad/id', 'commit'], 2],
])('resolve %p is a usage error', async (args, code) => {
  const run = await resolveCli(tempDir(), ...args)
  expect(run.code).toBe(code)
  expect(run.stderr.trim().split('\n')).toHaveLength(1)
})

test('resolve commit of a transaction never prepared is refused', async () => {
  // In a participant's directory: where there is no participant, resolve refuses anyway.
  const dir = tempDir()
  await kill(await startParticipant(dir))
  const run = await resolveCli(dir, 'h4', 'commit')
  expect(run.code).toBe(1)
  expect(run.stderr).toBe('error: Cannot commit transaction "h4" as it was never prepared here\n')
})
