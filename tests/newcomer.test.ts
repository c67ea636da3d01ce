// Every command a newcomer types works or says exactly what to do: real processes on loopback in
// temp directories, read through their exit status, stdout, stderr and files. One test per row
// of the issue.
import { afterEach, expect, test } from 'bun:test'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { COORDINATOR, PARTICIPANT, ROOT, type Command } from '../testing/nodes.ts'
import {
  cleanup,
  kill,
  runCommand,
  startCoordinatorService,
  startParticipant,
  tempDir,
  type Node,
  type Run,
} from '../testing/processes.ts'

afterEach(cleanup)

const LOOPBACK = { PORT: '0', HOST: '127.0.0.1' }
const script = (path: string): Command => [process.execPath, join(ROOT, path)]
const read = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8')

/** A run that failed the way a usage error should: one line (or that and the usage line). */
function expectUsageError(run: Run, first: string): void {
  expect({ code: run.code, stdout: run.stdout, first: run.stderr.split('\n')[0] }).toEqual({
    code: 2,
    stdout: '',
    first,
  })
  expect(run.stderr).not.toContain('    at ') // no stack trace
}

async function cluster(n: number): Promise<{ coordinator: Node; participants: Node[] }> {
  const participants = await Promise.all(
    Array.from({ length: n }, () => startParticipant(tempDir())),
  )
  const coordinator = await startCoordinatorService(tempDir(), {
    participants: participants.map((p) => p.url),
  })
  return { coordinator, participants }
}

test('1. a --dir that does not exist is created; an error about it names the path', async () => {
  const root = tempDir()
  const pdir = join(root, 'new', 'p0')
  const participant = await startParticipant(root, { args: ['--dir', pdir] })
  expect(existsSync(join(pdir, 'participant.db'))).toBe(true)
  const cdir = join(root, 'new', 'coordinator')
  const batch = await runCommand(COORDINATOR, [
    't1',
    '--dir',
    cdir,
    '--participant',
    participant.url,
  ])
  expect(batch).toEqual({ code: 0, stdout: 't1=commit\n', stderr: '' })
  expect(read(cdir, 'decision.txt')).toBe('t1=commit\n')
  expect(read(pdir, 'state.txt')).toBe('t1=committed\n')
  const sdir = join(root, 'new', 'service')
  const service = await startCoordinatorService(root, {
    participants: [participant.url],
    args: ['--dir', sdir],
  })
  expect((await fetch(`${service.url}/healthz`)).status).toBe(200)
  expect(existsSync(join(sdir, 'coordinator.db'))).toBe(true)
  // A --dir that is a file: each says so, naming it.
  const file = join(root, 'a-file')
  writeFileSync(file, '')
  const notDir = `error: --dir ${file} is not a directory`
  const runs = [
    await runCommand(PARTICIPANT, ['--dir', file], { env: LOOPBACK }),
    await runCommand(COORDINATOR, ['--dir', file, '--participant', participant.url]),
    await runCommand(COORDINATOR, ['serve', '--port', '0', '--dir', file]),
  ]
  for (const run of runs) expect(run).toEqual({ code: 2, stdout: '', stderr: `${notDir}\n` })
})

test('2. a bad votes.txt: one line naming the file and line, exit 2, nothing created', async () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'votes.txt'), 'yes\nmaybe\n')
  const run = await runCommand(PARTICIPANT, [], { cwd: dir, env: LOOPBACK })
  expect(run).toEqual({
    code: 2,
    stdout: '',
    stderr: `error: ${join(dir, 'votes.txt')} line 2: expected "yes" or "no", got "maybe"\n`,
  })
  expect(readdirSync(dir)).toEqual(['votes.txt'])
})

test('3. no participants: one line before coordinator.db exists; a re-run needs none', async () => {
  const dir = tempDir()
  const none = await runCoordinator(dir, [])
  expect(none).toEqual({
    code: 2,
    stdout: '',
    stderr:
      'error: no participants configured: set PEER_PARTICIPANT0_HOST and ' +
      'PEER_PARTICIPANT0_PORT, or pass --participant host:port\n',
  })
  expect(readdirSync(dir)).toEqual([])
  const missing = join(dir, 'not-yet')
  expect((await runCoordinator(dir, ['--dir', missing])).code).toBe(2)
  expect(existsSync(missing)).toBe(false)
  // With a log of its own, a run that only re-delivers what it decided needs no participants.
  const participant = await startParticipant(tempDir())
  const first = await runCoordinator(dir, ['t1', '--participant', participant.url])
  expect(first).toEqual({ code: 0, stdout: 't1=commit\n', stderr: '' })
  const again = await runCoordinator(dir, ['t1'])
  expect(again).toEqual({ code: 0, stdout: 't1=commit\n', stderr: '' })
  expect(read(dir, 'decision.txt')).toBe('t1=commit\n')
})

function runCoordinator(dir: string, args: string[]): Promise<Run> {
  return runCommand(COORDINATOR, args, { cwd: dir })
}

/** Each flag of a help text and the default it shows: `--port=$PORT, else 9000`. */
function defaultsIn(help: string): string[] {
  const entries: string[] = []
  for (const line of help.split('\n')) {
    const flag = /^ {2}--([a-z-]+)/.exec(line)
    if (flag) entries.push(`${flag[1]}=${line}`)
    else if (/^ {6,}\S/.test(line) && entries.length > 0) entries.push(`${entries.pop()} ${line}`)
    else if (!line.startsWith('  -h')) entries.push('')
  }
  return entries.flatMap((entry) => {
    const match = /^([a-z-]+)=.*\(default: (.*)\)$/.exec(entry.replace(/\s+/g, ' ').trim())
    return match ? [`${match[1]}=${match[2]}`] : []
  })
}

const PARTICIPANT_DEFAULTS = [
  'port=$PORT, else 9000',
  'host=$HOST, else 0.0.0.0',
  'dir=.',
  'in-doubt-after=5000',
  'store=sqlite',
]
const PEERS = 'none; PEER_PARTICIPANT<N>_HOST and _PORT count too'
const COORDINATOR_DEFAULTS = [
  ...[`participant=${PEERS}`, 'timeout=10000', 'deliver-timeout=30000', 'dir=.'],
  ...['port=8000', 'host=0.0.0.0', 'ack-wait=1000', 'advertise=http://HOST:PORT'],
  'coordinator=$TWOPHASE_COORDINATOR, else http://127.0.0.1:8000',
  ...['json=off', 'timeout=15000 for start and submit, 5000 for the others'],
  'on=start: every participant; get: 0',
]
const HELP: [string, Command, string[], string[]][] = [
  ['participant.ts', PARTICIPANT, [], PARTICIPANT_DEFAULTS],
  ['participant.ts resolve', PARTICIPANT, ['resolve'], ['dir=.']],
  ['coordinator.ts', COORDINATOR, [], COORDINATOR_DEFAULTS],
  ['coordinator.ts serve', COORDINATOR, ['serve'], COORDINATOR_DEFAULTS],
  ['coordinator.ts start', COORDINATOR, ['start'], COORDINATOR_DEFAULTS],
  ['scripts/simulate.ts', script('scripts/simulate.ts'), [], ['seeds=10000', 'start=1']],
  ['scripts/bench.ts', script('scripts/bench.ts'), [], ['concurrency=1,64,256', 'mix=data']],
  ['scripts/chaos.ts', script('scripts/chaos.ts'), [], ['seconds=30', 'seed=random']],
  ['scripts/demo.ts', script('scripts/demo.ts'), [], ['keep=off']],
  ['examples/bank.ts', script('examples/bank.ts'), [], ['accounts=30', 'max-amount=50']],
]

test('4. --help and -h list every flag with its default; an unknown flag is exit 2', async () => {
  const dir = tempDir() // nothing may be created by any of these
  const help = await runCommand(COORDINATOR, ['help'], { cwd: dir })
  expect(help.code).toBe(0)
  expect(defaultsIn(help.stdout)).toEqual(expect.arrayContaining(COORDINATOR_DEFAULTS))
  for (const [name, command, words, defaults] of HELP) {
    for (const flag of ['--help', '-h']) {
      const run = await runCommand(command, [...words, flag], { cwd: dir })
      expect({ name, flag, code: run.code, stderr: run.stderr }).toEqual({
        name,
        flag,
        code: 0,
        stderr: '',
      })
      expect(run.stdout).toStartWith('usage: ')
      expect(defaultsIn(run.stdout)).toEqual(expect.arrayContaining(defaults))
    }
    const bogus = await runCommand(command, [...words, '--bogus'], { cwd: dir, env: LOOPBACK })
    const hint = name === 'coordinator.ts start' ? 'start: ' : ''
    const see = hint ? 'coordinator.ts help' : `${name} --help`
    expectUsageError(bogus, `error: ${hint}unknown option '--bogus' (see: ${see})`)
    expect(bogus.stderr.split('\n')[1]).toStartWith(`usage: ${name}`)
  }
  // Every flag of the batch coordinator and of serve, with its default.
  const serve = await runCommand(COORDINATOR, ['serve', '--help'], { cwd: dir })
  expect(defaultsIn(serve.stdout)).toEqual(expect.arrayContaining(COORDINATOR_DEFAULTS))
  expect(readdirSync(dir)).toEqual([])
})

test('5. the client waits --timeout, then names the participant it waits for', async () => {
  const { coordinator, participants } = await cluster(3)
  const down = participants[2]!
  await kill(down)
  const at = ['--coordinator', coordinator.url]
  // One participant: one-phase commit, which has no prepare timeout.
  const one = await runCommand(COORDINATOR, [
    'start',
    'D2',
    'SET',
    'z',
    '1',
    '--on',
    '2',
    ...at,
    '--timeout',
    '1500',
  ])
  expect(one).toEqual({
    code: 1,
    stdout: '',
    stderr:
      `error: the coordinator at ${coordinator.url} gave no outcome for D2 within 1500 ms ` +
      `(--timeout): D2 is still preparing, waiting for participant 2 ${down.url}, which it ` +
      'cannot reach (one participant: one phase, no prepare timeout); it is decided once ' +
      'they answer (see: coordinator.ts show D2)\n',
  })
  // Two participants: the prepare timeout aborts it, and the vote line names the silent one.
  const service = await startCoordinatorService(tempDir(), {
    participants: participants.map((p) => p.url),
    args: ['--timeout', '300'],
  })
  const two = await runCommand(COORDINATOR, [
    ...['start', 'D3', 'SET', 'z', '1', '--on', '1', '--on', '2'],
    ...['--coordinator', service.url],
  ])
  expect(two.code).toBe(1)
  const silentVote = `${down.url} +\\(no vote\\): no vote before the prepare timeout`
  expect(two.stdout).toMatch(new RegExp(silentVote))
  // A coordinator that takes requests but never answers: named, within --timeout.
  const silent = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Promise(() => {}) })
  try {
    const url = `http://127.0.0.1:${silent.port}`
    const run = await runCommand(COORDINATOR, [
      'show',
      'D2',
      '--coordinator',
      url,
      '--timeout',
      '200',
    ])
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: `error: the coordinator at ${url} did not answer /transactions/D2 within 200 ms\n`,
    })
  } finally {
    silent.stop(true)
  }
  expectUsageError(
    await runCommand(COORDINATOR, ['status', ...at, '--timeout', 'soon']),
    'error: invalid --timeout "soon": expected milliseconds > 0',
  )
})

test('6. status with a participant down prints it unreachable and exits 1', async () => {
  const { coordinator, participants } = await cluster(2)
  await kill(participants[1]!)
  const run = await runCommand(COORDINATOR, ['status', '--coordinator', coordinator.url])
  expect(run.code).toBe(1)
  expect(run.stdout.trimEnd().split('\n').at(-1)).toBe(
    `participant 1 ${participants[1]!.url}: unreachable`,
  )
  expect(run.stderr).toBe(`error: cannot reach participant 1 at ${participants[1]!.url}\n`)
  const json = await runCommand(COORDINATOR, ['status', '--json', '--coordinator', coordinator.url])
  expect(json.code).toBe(1)
  expect(JSON.parse(json.stdout).participants[1]).toMatchObject({ reachable: false })
})

test('7. examples/bank.ts --coordinator takes host:port', async () => {
  const { coordinator } = await cluster(2)
  const address = `127.0.0.1:${coordinator.port}`
  const args = ['--coordinator', address, '--accounts', '4', '--transfers', '10']
  const run = await runCommand(script('examples/bank.ts'), [...args, '--concurrency', '2'])
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  const lines = run.stdout.trimEnd().split('\n')
  expect(lines[0]).toBe(`coordinator http://${address} (given), 2 participants`)
  expect(lines.at(-1)).toBe('total 400 = 400 expected')
  const nobody = await runCommand(script('examples/bank.ts'), ['--coordinator', '127.0.0.1:1'])
  expect(nobody).toEqual({
    code: 1,
    stdout: '',
    stderr: 'error: cannot reach the coordinator at http://127.0.0.1:1\n',
  })
})

test('8. resolve in a folder without a participant log refuses, naming it', async () => {
  const dir = tempDir()
  const run = await runCommand(PARTICIPANT, ['resolve', 'H4', 'abort'], { cwd: dir })
  expect(run).toEqual({
    code: 2,
    stdout: '',
    stderr:
      `error: no participant log in ${dir} (no participant.db, and no participant runs ` +
      "there); pass the participant's directory with --dir\n",
  })
  expect(readdirSync(dir)).toEqual([])
  const missing = join(dir, 'nope')
  const elsewhere = await runCommand(PARTICIPANT, ['resolve', 'H4', 'abort', '--dir', missing])
  expect(elsewhere.code).toBe(2)
  expect(existsSync(missing)).toBe(false)
})
