// A batch coordinator run again after a crash finishes what it was asked: the classic exercise,
// its coordinator killed while t1's prepares were out (t1 begun in its log, never decided),
// ends t1=commit and t2=abort on the re-run, with every participant agreeing.
import { afterEach, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cleanup, runCoordinator, startParticipant, tempDir } from '../testing/processes.ts'
import { FaultProxy, stopProxies } from '../testing/proxy.ts'

afterEach(async () => {
  stopProxies()
  await cleanup()
})

const read = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8')

test('a coordinator killed mid-prepare prepares t1 again when run again: t1=commit', async () => {
  const votes = ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n']
  const nodes = await Promise.all(votes.map((v) => startParticipant(tempDir(), { votes: v })))
  // Participant 2's prepare is held, so t1 stays undecided until the lazy begin record is on
  // disk, where the failpoint kills the coordinator.
  const proxy = new FaultProxy(nodes[2]!.url)
  proxy.set('drop', '/prepare')
  const urls = [nodes[0]!.url, nodes[1]!.url, proxy.url]
  const flags = urls.flatMap((url) => ['--participant', url])
  const dir = tempDir()
  const env = { TWOPHASE_FAILPOINTS: 'coordinator-after-begin-logged@t1' }
  const crashed = await runCoordinator(dir, flags, { env })
  expect(crashed.code).toBe(137)
  expect(crashed.stderr).toContain('failpoint coordinator-after-begin-logged hit for t1')
  expect(read(dir, 'decision.txt')).toBe('')
  proxy.heal()

  const rerun = await runCoordinator(dir, flags)
  expect(rerun.stderr).toBe('')
  expect(rerun.code).toBe(0)
  expect(rerun.stdout).toBe('t1=commit\nt2=abort\n')
  expect(read(dir, 'decision.txt')).toBe('t1=commit\nt2=abort\n')
  for (const node of nodes) expect(read(node.dir, 'state.txt')).toBe('t1=committed\nt2=aborted\n')
})
