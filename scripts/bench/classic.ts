// The classic exercise timed (`bun run bench -- --classic 20`): three fresh participants voting
// yes,yes / yes,no / yes,yes, then `bun coordinator.ts` for t1 and t2, timed from its spawn to
// its exit, as a user of the exercise would time it (with `--protocol 3pc`, the same in
// three-phase commit). Each run gets fresh directories, and its decision.txt is checked, so a
// fast run that got the answer wrong does not count.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { COORDINATOR, cleanEnv, peerEnv, spawnParticipant, type Node } from '../../testing/nodes.ts'

const VOTES = ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n']
const EXPECTED = 't1=commit\nt2=abort\n'

/** Milliseconds from spawn to exit of each of `runs` classic coordinators, in run order, each
 * given `args`. */
export async function timeClassicRuns(
  runs: number,
  root: string,
  args: readonly string[] = [],
): Promise<number[]> {
  const times: number[] = []
  for (let run = 0; run < runs; run++) {
    const dir = join(root, `classic-${run}`)
    const participants: Node[] = []
    try {
      for (const [i, votes] of VOTES.entries()) {
        mkdirSync(join(dir, `p${i}`), { recursive: true })
        participants.push(await spawnParticipant(join(dir, `p${i}`), { votes }))
      }
      const coordinatorDir = join(dir, 'coordinator')
      mkdirSync(coordinatorDir)
      const started = performance.now()
      const proc = Bun.spawn([...COORDINATOR, ...args], {
        cwd: coordinatorDir,
        env: { ...cleanEnv(), ...peerEnv(participants) },
        stdin: 'ignore',
        stdout: 'ignore',
        stderr: 'pipe',
      })
      const code = await proc.exited
      times.push(performance.now() - started)
      if (code !== 0) {
        const stderr = await new Response(proc.stderr).text()
        throw new Error(`classic run ${run}: the coordinator exited with ${code}: ${stderr}`)
      }
      const decisions = readFileSync(join(coordinatorDir, 'decision.txt'), 'utf8')
      if (decisions !== EXPECTED) {
        throw new Error(`classic run ${run}: decision.txt is ${JSON.stringify(decisions)}`)
      }
    } finally {
      for (const p of participants) p.proc.kill('SIGKILL')
      await Promise.all(participants.map((p) => p.proc.exited))
    }
  }
  return times
}
