// The classic exercise, end to end, in one command: three participants and a coordinator as real
// processes on free loopback ports in a temp directory; prints every node's files and a verdict.
//   bun scripts/demo.ts [--keep]
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fail } from '../lib/cli/args.ts'
import { flagLines, parseCommand, type Command } from '../lib/cli/flags.ts'
import { COORDINATOR, cleanEnv, peerEnv, spawnParticipant, type Node } from '../testing/nodes.ts'

const VOTES = ['yes\nyes\n', 'yes\nno\n', 'yes\nyes\n']
const EXPECTED = { decision: 't1=commit\nt2=abort\n', state: 't1=committed\nt2=aborted\n' }

const FLAGS = { keep: { help: "keep the temp directory with every node's files" } } as const
const DEMO: Command<typeof FLAGS> = {
  name: 'scripts/demo.ts',
  usage: 'scripts/demo.ts [--keep]',
  flags: FLAGS,
  help: () =>
    [
      'usage: scripts/demo.ts [--keep]   (or: npm run demo [-- --keep])',
      '',
      'The classic exercise with real processes: three participants (votes yes,yes / yes,no /',
      'yes,yes) and a coordinator in a temp directory; prints every file, then PASS or FAIL.',
      '',
      'flags:',
      ...flagLines(FLAGS),
      '',
      'exit status: 0 PASS (t1 committed and t2 aborted everywhere), 1 FAIL, 2 usage error',
    ].join('\n'),
}

let values: ReturnType<typeof parseCommand<typeof FLAGS>>['values']
try {
  values = parseCommand(Bun.argv.slice(2), DEMO).values
} catch (error) {
  fail(error)
}
const root = mkdtempSync(join(tmpdir(), 'twophase-demo-'))
const nodes: Node[] = []
let ok = false
try {
  for (const [i, votes] of VOTES.entries()) {
    const dir = join(root, `participant${i}`)
    mkdirSync(dir)
    nodes.push(await spawnParticipant(dir, { votes }))
    console.log(`participant${i}  ${nodes[i]!.url}  votes ${votes.trim().split('\n').join(',')}`)
  }
  const dir = join(root, 'coordinator')
  mkdirSync(dir)
  const started = performance.now()
  const coordinator = Bun.spawn([...COORDINATOR], {
    cwd: dir,
    env: { ...cleanEnv(), ...peerEnv(nodes) },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const code = await coordinator.exited
  console.log(
    `coordinator exited with ${code} after ${(performance.now() - started).toFixed(0)} ms\n`,
  )
  const files = [{ name: 'coordinator/decision.txt', text: read(join(dir, 'decision.txt')) }]
  for (const [i, n] of nodes.entries())
    files.push({ name: `participant${i}/state.txt`, text: read(join(n.dir, 'state.txt')) })
  for (const f of files) console.log(`${f.name}:\n${f.text.trimEnd().replace(/^/gm, '  ')}\n`)
  ok =
    code === 0 &&
    files[0]!.text === EXPECTED.decision &&
    files.slice(1).every((f) => f.text === EXPECTED.state)
  console.log(
    ok
      ? "PASS: every participant reached the coordinator's decision (t1 committed, t2 aborted)"
      : 'FAIL: the files above differ from t1=commit/committed, t2=abort/aborted',
  )
} finally {
  for (const n of nodes) n.proc.kill('SIGTERM')
  await Promise.all(nodes.map((n) => n.proc.exited))
  if (values.keep) console.log(`kept ${root}`)
  else rmSync(root, { recursive: true, force: true })
}
process.exit(ok ? 0 : 1)

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return '(missing)\n'
  }
}
