// Batch mode in three-phase commit (`bun coordinator.ts --protocol 3pc`) against real
// participants: the same outcomes and files as two-phase commit, a precommit round on the wire,
// and a run that cannot reach a quorum of precommits stops, for a re-run to finish it.
import { afterEach, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  cleanup,
  getJson,
  runCoordinator,
  startParticipant,
  tempDir,
  type Node,
} from '../testing/processes.ts'

afterEach(cleanup)

const read = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8')
const flagsOf = (nodes: readonly Node[]) => nodes.flatMap((n) => ['--participant', n.url])

/** One participant per entry: its votes.txt text, or undefined for none (every vote yes). */
function participants(votes: readonly (string | undefined)[], env?: Record<string, string>) {
  return Promise.all(votes.map((v) => startParticipant(tempDir(), { votes: v, env })))
}

test.each([
  ['all yes', [undefined, undefined, undefined], 'commit'],
  ['a no for t2', ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n'], 'abort'],
])('--protocol 3pc with %s decides as two-phase commit would', async (_, votes, t2) => {
  const nodes = await participants(votes)
  const dir = tempDir()
  const run = await runCoordinator(dir, ['t1', 't2', '--protocol', '3pc', ...flagsOf(nodes)])
  expect(run).toEqual({ code: 0, stdout: `t1=commit\nt2=${t2}\n`, stderr: '' })
  expect(read(dir, 'decision.txt')).toBe(`t1=commit\nt2=${t2}\n`)
  const t2State = t2 === 'commit' ? 'committed' : 'aborted'
  for (const node of nodes)
    expect(read(node.dir, 'state.txt')).toBe(`t1=committed\nt2=${t2State}\n`)
  // Three requests per committed transaction (prepare, precommit, commit), where two-phase
  // commit sends two.
  if (t2 === 'commit') {
    for (const node of nodes) expect((await getJson(`${node.url}/metrics.json`)).requests).toBe(6)
  }
})

test('a bad --protocol is one line and status 2, before anything is created', async () => {
  const nodes = await participants([undefined])
  const dir = tempDir()
  const run = await runCoordinator(dir, ['--protocol', '4pc', ...flagsOf(nodes)])
  expect(run).toEqual({
    code: 2,
    stdout: '',
    stderr: 'error: invalid --protocol "4pc": expected 2pc or 3pc\n',
  })
  expect(existsSync(join(dir, 'coordinator.db'))).toBe(false)
  expect((await getJson(`${nodes[0]!.url}/metrics.json`)).requests).toBe(0)
})

test('without a quorum of precommits it stops after its timeouts; a re-run commits', async () => {
  // Two of three die once their precommit is durable, before they answer it.
  const crash = { TWOPHASE_FAILPOINTS: 'participant-after-precommit-logged@t1' }
  const victims = await participants([undefined, undefined], crash)
  const [alive] = await participants([undefined])
  const nodes = [...victims, alive!]
  const dir = tempDir()
  const args = ['t1', '--protocol', '3pc', '--timeout', '1000', '--deliver-timeout', '500']
  const first = await runCoordinator(dir, [...args, ...flagsOf(nodes)])
  expect(await Promise.all(victims.map((v) => v.proc.exited))).toEqual([137, 137])
  expect(first.code).toBe(1)
  expect(first.stdout).toBe('')
  expect(first.stderr).toBe(
    'error: t1 is undecided after 1500 ms: 1 of 3 participants precommitted, a quorum is 2, ' +
      `waiting for ${victims[0]!.url}, ${victims[1]!.url}; run the coordinator again to go on ` +
      'with it\n',
  )
  expect(read(dir, 'decision.txt')).toBe('')
  // Back on their ports and directories, precommitted; the re-run needs no --protocol: the log
  // says how t1 runs.
  for (const v of victims) await startParticipant(v.dir, { port: v.port })
  const again = await runCoordinator(dir, ['t1', ...flagsOf(nodes)])
  expect(again).toEqual({ code: 0, stdout: 't1=commit\n', stderr: '' })
  expect(read(dir, 'decision.txt')).toBe('t1=commit\n')
  for (const node of nodes) expect(read(node.dir, 'state.txt')).toBe('t1=committed\n')
})
