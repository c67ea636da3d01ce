// Two-phase commit blocks, three-phase commit does not: the same transaction run in each, with
// the coordinator killed right after it recorded its decision, before anyone heard it.
//   bun examples/blocking.ts [--wait MS]
// It starts three participants and a coordinator service (real processes on free loopback ports
// in a temp directory), runs TX1 in 2PC with the coordinator set to die at that point
// (TWOPHASE_FAILPOINTS=coordinator-after-decision-logged), then a fresh coordinator, set the
// same way, runs TX2 in 3PC; after --wait it prints each participant's state of both. The 2PC
// participants are still prepared, holding their locks, waiting for a coordinator that is gone;
// the 3PC ones finished among themselves. Exit status 0 when that is what it saw.
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fail } from '../lib/cli/args.ts'
import { flagLines, parseCommand, type Command } from '../lib/cli/flags.ts'
import { spawnCoordinatorService, spawnParticipant, type Node } from '../testing/nodes.ts'
import { tempDir } from '../testing/processes.ts'
import { integerFlag } from '../testing/util.ts'

const FLAGS = {
  wait: { value: 'MS', default: '3000', help: 'how long to watch after the coordinator died' },
} as const
const USAGE = 'examples/blocking.ts [--wait MS]'
const BLOCKING: Command<typeof FLAGS> = {
  name: 'examples/blocking.ts',
  usage: USAGE,
  flags: FLAGS,
  help: () => [`usage: ${USAGE}`, '', 'flags:', ...flagLines(FLAGS)].join('\n'),
}

/** Runs `txn` in `protocol` through a coordinator that dies once its decision is durable. */
async function runAndKill(root: string, participants: Node[], txn: string, protocol: string) {
  const dir = join(root, `coordinator-${protocol}`)
  mkdirSync(dir)
  const env = { TWOPHASE_FAILPOINTS: `coordinator-after-decision-logged@${txn}` }
  const urls = participants.map((p) => p.url)
  const coordinator = await spawnCoordinatorService(dir, { participants: urls, env })
  const body = JSON.stringify({ id: txn, protocol, ops: [{ op: 'set', key: txn, value: 1 }] })
  await fetch(`${coordinator.url}/transactions`, { method: 'POST', body }).catch(() => null)
  return coordinator.proc.exited // 137: it killed itself at the failpoint
}

async function stateOf(p: Node, txn: string): Promise<string> {
  const answer = await fetch(`${p.url}/transactions/${txn}`)
  return ((await answer.json()) as { state: string }).state
}

async function main(): Promise<number> {
  const { values } = parseCommand(Bun.argv.slice(2), BLOCKING)
  const waitMs = integerFlag(values.wait, 3000, 'wait')
  const root = tempDir('twophase-blocking-')
  const participants: Node[] = []
  for (let i = 0; i < 3; i++) {
    const dir = join(root, `p${i}`)
    mkdirSync(dir)
    participants.push(await spawnParticipant(dir, { args: ['--in-doubt-after', '500'] }))
  }
  try {
    console.log(`2PC TX1: coordinator exited ${await runAndKill(root, participants, 'TX1', '2pc')}`)
    console.log(`3PC TX2: coordinator exited ${await runAndKill(root, participants, 'TX2', '3pc')}`)
    await Bun.sleep(waitMs) // watching on purpose: what each protocol does with no coordinator
    console.log(`after ${waitMs} ms without a coordinator:`)
    let blocked = 0
    let finished = 0
    for (const [i, p] of participants.entries()) {
      const [two, three] = [await stateOf(p, 'TX1'), await stateOf(p, 'TX2')]
      console.log(`  participant ${i}: TX1 (2PC) ${two}, TX2 (3PC) ${three}`)
      if (two === 'prepared') blocked += 1
      if (three === 'committed') finished += 1
    }
    const ok = blocked === 3 && finished === 3
    console.log(ok ? 'as expected: 2PC waits, 3PC finished' : 'unexpected states')
    return ok ? 0 : 1
  } finally {
    for (const p of participants) p.proc.kill()
    await Promise.all(participants.map((p) => p.proc.exited))
    rmSync(root, { recursive: true, force: true })
  }
}

try {
  process.exit(await main())
} catch (error) {
  fail(error)
}
