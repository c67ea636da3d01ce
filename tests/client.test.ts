// The client commands of coordinator.ts (start, submit, show, status, get, help) against real
// participants and a real coordinator service on loopback, read through their output and exit
// status.
import { afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, cleanEnv } from '../testing/nodes.ts'
import {
  cleanup,
  freePort,
  kill,
  outputOf,
  startCoordinatorService,
  startParticipant,
  tempDir,
  type Node,
} from '../testing/processes.ts'

afterEach(cleanup)

type Cluster = { coordinator: Node; participants: Node[] }

async function cluster(n = 3): Promise<Cluster> {
  const participants = await Promise.all(
    Array.from({ length: n }, () => startParticipant(tempDir())),
  )
  const coordinator = await startCoordinatorService(tempDir(), {
    participants: participants.map((p) => p.url),
  })
  return { coordinator, participants }
}

type Result = { code: number; stdout: string; stderr: string }

/** Runs `bun coordinator.ts ARGS` from the project directory until it exits. */
async function cli(
  args: string[],
  options: { coordinator?: Node; stdin?: string; env?: Record<string, string> } = {},
): Promise<Result> {
  const flags = options.coordinator ? ['--coordinator', options.coordinator.url] : []
  const env = cleanEnv()
  delete env.TWOPHASE_COORDINATOR
  const proc = Bun.spawn([process.execPath, 'coordinator.ts', ...args, ...flags], {
    cwd: ROOT,
    env: { ...env, ...options.env },
    stdin: options.stdin === undefined ? 'ignore' : new Blob([options.stdin]),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return outputOf(proc)
}

/** The lines of `text` without the final newline. */
function lines(text: string): string[] {
  return text.replace(/\n$/, '').split('\n')
}

/** `  URL  vote[: reason]`, as the human output aligns it. */
function voteLine(url: string, width: number, vote: string): string {
  return `  ${url.padEnd(width)}  ${vote}`
}

describe('start', () => {
  test('SET on every participant commits, and get reads it back from each', async () => {
    const { coordinator, participants } = await cluster()
    const run = await cli(['start', 'TX1', '2PC', 'SET', 'balance', '1000'], { coordinator })
    expect(run).toMatchObject({ code: 0, stderr: '' })
    const width = Math.max(...participants.map((p) => p.url.length))
    expect(lines(run.stdout)).toEqual([
      'TX1 commit (acknowledged)',
      ...participants.map((p) => voteLine(p.url, width, 'yes')),
    ])
    for (const on of ['0', '1', '2']) {
      const get = await cli(['get', 'balance', '--on', on], { coordinator })
      expect(get).toEqual({ code: 0, stdout: 'balance: 1000\n', stderr: '' })
    }
    // By URL (host:port), and participant 0 by default.
    const byUrl = await cli(['get', 'balance', '--on', `127.0.0.1:${participants[2]!.port}`], {
      coordinator,
    })
    expect(byUrl.stdout).toBe('balance: 1000\n')
    expect((await cli(['get', 'balance'], { coordinator })).stdout).toBe('balance: 1000\n')
  })

  test('ADD with --on moves an amount between two participants; a MIN aborts it', async () => {
    const { coordinator, participants } = await cluster()
    const [p0, p1] = participants as [Node, Node]
    await cli(['start', 'seed', 'set', 'balance', '100'], { coordinator })
    const transfer = ['ADD', 'balance', '-30', 'MIN', '0', '--on', '0', 'ADD', 'balance', '30']
    const ok = await cli(['start', 'TX2', ...transfer, '--on', '1'], { coordinator })
    const width = Math.max(p0.url.length, p1.url.length)
    expect(ok.code).toBe(0)
    expect(lines(ok.stdout)).toEqual([
      'TX2 commit (acknowledged)',
      voteLine(p0.url, width, 'yes'),
      voteLine(p1.url, width, 'yes'),
    ]) // participant 2 is not involved
    const balances = async () =>
      Promise.all(
        ['0', '1', '2'].map(async (on) => {
          const run = await cli(['get', 'balance', '--on', on, '--json'], { coordinator })
          return JSON.parse(run.stdout).value
        }),
      )
    expect(await balances()).toEqual([70, 130, 100])

    const tooMuch = ['ADD', 'balance', '-100', 'MIN', '0', '--on', '0', 'ADD', 'balance', '100']
    const no = await cli(['start', 'TX3', ...tooMuch, '--on', p1.url], { coordinator })
    expect(no.code).toBe(1)
    expect(no.stderr).toBe('')
    // The coordinator aborts at the first `no`, so participant 1's vote may not have arrived.
    const [head, first, second] = lines(no.stdout)
    expect([head, first]).toEqual([
      'TX3 abort (sent once; aborts are not acknowledged)',
      voteLine(p0.url, width, 'no: add would take balance below 0'),
    ])
    expect([voteLine(p1.url, width, 'yes'), voteLine(p1.url, width, '(no vote)')]).toContain(
      second!,
    )
    expect(await balances()).toEqual([70, 130, 100])

    const json = await cli(['start', 'TX4', ...tooMuch, '--on', '1', '--json'], { coordinator })
    expect(json.code).toBe(1)
    const tx4 = JSON.parse(json.stdout)
    expect(tx4).toMatchObject({
      id: 'TX4',
      decision: 'abort',
      reasons: { [p0.url]: 'add would take balance below 0' },
      acknowledged: false, // presumed abort: participant 1 is sent the abort, never asked to ack
    })
    expect(tx4.votes[p0.url]).toBe('no')
    expect(['yes', null]).toContain(tx4.votes[p1.url])
  })

  test('ops without --on go to every participant, in command-line order', async () => {
    const { coordinator } = await cluster()
    // SET then ADD on participant 1 only: 5 + 1; the others get just the SET.
    const args = ['start', 'mixed', 'SET', 'n', '5', 'ADD', 'n', '1', '--on', '1']
    const run = await cli(args, { coordinator })
    expect(run.code).toBe(0)
    const values = await Promise.all(
      ['0', '1', '2'].map(
        async (on) => (await cli(['get', 'n', '--on', on], { coordinator })).stdout,
      ),
    )
    expect(values).toEqual(['n: 5\n', 'n: 6\n', 'n: 5\n'])
  })

  test('values are JSON when they parse as JSON, else strings; no id gets a UUID', async () => {
    const { coordinator } = await cluster(1)
    const args = ['start', 'SET', 'obj', '{"a":[1,2]}', 'SET', 'name', 'Ada Lovelace']
    const run = await cli([...args, 'INSERT', 'zip', '007', 'CHECK', 'missing', '--json'], {
      coordinator,
    })
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout).id).toMatch(/^[0-9a-f-]{36}$/)
    expect((await cli(['get', 'obj'], { coordinator })).stdout).toBe('obj: {"a":[1,2]}\n')
    expect((await cli(['get', 'name'], { coordinator })).stdout).toBe('name: "Ada Lovelace"\n')
    expect((await cli(['get', 'zip'], { coordinator })).stdout).toBe('zip: "007"\n')
    // CHECK with a value: fails, and the reason is shown.
    const check = await cli(['start', 'c1', 'CHECK', 'name', 'Bob'], { coordinator })
    expect(check.code).toBe(1)
    expect(lines(check.stdout)[1]).toEndWith('no: check failed: key name is "Ada Lovelace"')
  })

  test('a repeated id answers the recorded outcome and says so on stderr', async () => {
    const { coordinator } = await cluster(1)
    await cli(['start', 'once', 'SET', 'x', '1'], { coordinator })
    const again = await cli(['start', 'once', 'SET', 'x', '2'], { coordinator })
    expect(again.code).toBe(0)
    expect(lines(again.stdout)[0]).toBe('once commit (acknowledged)')
    expect(again.stderr).toBe(
      'note: once was decided before: this is its recorded outcome; nothing ran again\n',
    )
    expect((await cli(['get', 'x'], { coordinator })).stdout).toBe('x: 1\n')
  })
})

describe('--on NAME', () => {
  test('goes to the coordinator when every op has --on; an unknown name is refused', async () => {
    const participants = await Promise.all([0, 1].map(() => startParticipant(tempDir())))
    const [alice, bob] = participants as [Node, Node]
    const coordinator = await startCoordinatorService(tempDir(), {
      participants: [`alice=${alice.url}`, `bob=${bob.url}`],
    })
    const run = await cli(['start', 'n1', 'SET', 'owner', 'alice', '--on', 'alice'], {
      coordinator,
    })
    expect(run.code).toBe(0)
    expect(lines(run.stdout)).toEqual(['n1 commit (acknowledged)', `  ${alice.url}  yes`])
    expect((await cli(['get', 'owner', '--on', '0'], { coordinator })).stdout).toBe(
      'owner: "alice"\n',
    )
    // /status lists URLs only, so the client cannot resolve a name itself.
    const get = await cli(['get', 'owner', '--on', 'alice'], { coordinator })
    expect(get.code).toBe(2)
    expect(get.stderr).toBe(
      "error: --on alice: a name cannot be resolved here (the coordinator's /status lists URLs " +
        'only); use an index or URL\n',
    )
    const mixed = await cli(['start', 'n2', 'SET', 'a', '1', 'SET', 'b', '2', '--on', 'bob'], {
      coordinator,
    })
    expect(mixed.code).toBe(2)
    expect(mixed.stderr).toEndWith('use an index or URL when some operations have no --on\n')
  })
})

describe('submit', () => {
  test('from a file and from stdin, human and --json', async () => {
    const { coordinator, participants } = await cluster(2)
    const [p0, p1] = participants as [Node, Node]
    const file = join(tempDir(), 'tx.json')
    writeFileSync(file, JSON.stringify({ id: 'S1', ops: [{ op: 'set', key: 'k', value: 'v' }] }))
    const fromFile = await cli(['submit', file], { coordinator })
    const width = Math.max(p0.url.length, p1.url.length)
    expect(fromFile.code).toBe(0)
    expect(fromFile.stderr).toBe('')
    expect(lines(fromFile.stdout)).toEqual([
      'S1 commit (acknowledged)',
      voteLine(p0.url, width, 'yes'),
      voteLine(p1.url, width, 'yes'),
    ])
    expect((await cli(['get', 'k', '--on', '1'], { coordinator })).stdout).toBe('k: "v"\n')
    const body = { id: 'S2', ops: { '1': [{ op: 'insert', key: 'k', value: 1 }] } }
    const fromStdin = await cli(['submit', '-', '--json'], {
      coordinator,
      stdin: JSON.stringify(body),
    })
    expect(fromStdin.code).toBe(1) // k exists on participant 1
    expect(JSON.parse(fromStdin.stdout)).toEqual({
      id: 'S2',
      decision: 'abort',
      votes: { [p1.url]: 'no' },
      reasons: { [p1.url]: 'key k already exists' },
      acknowledged: true,
      protocol: '2pc',
    })
  })

  test('a non-object JSON file, or one the coordinator rejects, is a usage error', async () => {
    const { coordinator } = await cluster(1)
    const notJson = await cli(['submit', '-'], { coordinator, stdin: 'SET k v' })
    expect(notJson).toEqual({
      code: 2,
      stdout: '',
      stderr: 'error: submit: stdin is not valid JSON\n',
    })
    const missing = await cli(['submit', join(tempDir(), 'none.json')], { coordinator })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/^error: submit: cannot read .*none\.json \(ENOENT\)\n$/)
    const rejected = await cli(['submit', '-'], { coordinator, stdin: '{"protocol":"4pc"}' })
    expect(rejected.code).toBe(2)
    expect(rejected.stderr).toBe(
      'error: the coordinator refused /transactions (HTTP 400): ' +
        'invalid "protocol" "4pc": expected "2pc" or "3pc"\n',
    )
  })
})

describe('show', () => {
  test('a decided transaction, human and --json; an unknown one exits 1', async () => {
    const { coordinator, participants } = await cluster(2)
    const [p0, p1] = participants as [Node, Node]
    await cli(['start', 'T1', 'SET', 'a', '1', '--on', '0', 'CHECK', 'a', '--on', '1'], {
      coordinator,
    })
    const human = await cli(['show', 'T1'], { coordinator })
    const width = Math.max(p0.url.length, p1.url.length)
    expect(human.code).toBe(0)
    expect(lines(human.stdout)).toEqual([
      'T1 commit (acknowledged)',
      voteLine(p0.url, width, 'yes'),
      voteLine(p1.url, width, 'read-only'), // only a CHECK: nothing to commit there
    ])
    const json = await cli(['show', 'T1', '--json'], { coordinator })
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({
      id: 'T1',
      state: 'commit',
      phase: 'done',
      decision: 'commit',
      acknowledged: true,
    })
    const unknown = await cli(['show', 'nope'], { coordinator })
    expect(unknown).toEqual({
      code: 1,
      stdout: 'nope: unknown (never started here; presumed abort)\n',
      stderr: '',
    })
    const unknownJson = await cli(['show', 'nope', '--json'], { coordinator })
    expect(unknownJson.code).toBe(1)
    expect(JSON.parse(unknownJson.stdout)).toEqual({ id: 'nope', state: 'unknown' })
  })
})

describe('status', () => {
  test("the coordinator's counts and each participant's, human and --json", async () => {
    const { coordinator, participants } = await cluster(2)
    const [p0, p1] = participants as [Node, Node]
    await cli(['start', 'a1', 'SET', 'k', '1'], { coordinator })
    await cli(['start', 'a2', 'INSERT', 'k', '2', '--on', '1'], { coordinator })
    const human = await cli(['status'], { coordinator })
    expect(human.code).toBe(0)
    expect(lines(human.stdout)).toEqual([
      `coordinator ${coordinator.url}: 1 commit, 1 abort, 0 preparing, 0 delivering`,
      `participant 0 ${p0.url}: 1 committed, 0 aborted, 0 prepared`,
      '  prepared: none',
      '  in doubt: none',
      '  locks: none',
      `participant 1 ${p1.url}: 1 committed, 1 aborted, 0 prepared`,
      '  prepared: none',
      '  in doubt: none',
      '  locks: none',
    ])
    const json = await cli(['status', '--json'], { coordinator })
    expect(json.code).toBe(0)
    const status = JSON.parse(json.stdout)
    expect(status.coordinator).toMatchObject({
      url: coordinator.url,
      role: 'coordinator',
      counts: { preparing: 0, commit: 1, abort: 1, delivering: 0 },
    })
    expect(status.participants).toHaveLength(2)
    expect(status.participants[1]).toMatchObject({
      url: p1.url,
      reachable: true,
      status: { role: 'participant', counts: { committed: 1, aborted: 1, prepared: 0 } },
    })
  })

  test('a participant that is down shows as unreachable, and status exits 1', async () => {
    const { coordinator, participants } = await cluster(2)
    await kill(participants[1]!)
    const human = await cli(['status'], { coordinator })
    expect(human.code).toBe(1)
    expect(human.stderr).toBe(`error: cannot reach participant 1 at ${participants[1]!.url}\n`)
    expect(lines(human.stdout).at(-1)).toBe(`participant 1 ${participants[1]!.url}: unreachable`)
  })
})

describe('get', () => {
  test('an absent key exits 1, human and --json', async () => {
    const { coordinator, participants } = await cluster(2)
    expect(await cli(['get', 'nothing', '--on', '1'], { coordinator })).toEqual({
      code: 1,
      stdout: 'nothing: absent\n',
      stderr: '',
    })
    const json = await cli(['get', 'nothing', '--json'], { coordinator })
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout)).toEqual({
      key: 'nothing',
      absent: true,
      participant: participants[0]!.url,
    })
  })

  test('the coordinator comes from TWOPHASE_COORDINATOR when --coordinator is absent', async () => {
    const { coordinator, participants } = await cluster(1)
    await cli(['start', 'e1', 'SET', 'k', 'true'], { coordinator })
    const run = await cli(['get', 'k', '--json'], {
      env: { TWOPHASE_COORDINATOR: coordinator.url },
    })
    expect(JSON.parse(run.stdout)).toEqual({
      key: 'k',
      value: true,
      participant: participants[0]!.url,
    })
  })
})

describe('errors', () => {
  test('usage errors are one line on stderr and exit 2, before any request', async () => {
    // No coordinator runs at this address: each error is found before a request is made.
    const env = { TWOPHASE_COORDINATOR: `http://127.0.0.1:${freePort()}` }
    const cases: [string[], string][] = [
      [['start', 'TX1', 'SET', 'k'], 'start: SET needs a value'],
      [
        ['start', 'TX1', 'FROB', 'k'],
        'start: expected an operation (SET, INSERT, DELETE, ADD, CHECK or SQL), got "FROB"',
      ],
      [['start', 'TX1', 'ADD', 'k', 'ten'], 'start: invalid amount "ten": expected a number'],
      [['start', '--on', '1', 'SET', 'k', '1'], 'start: --on must follow an operation'],
      [['start', 'bad/id', 'SET', 'k', '1'], 'start: invalid transaction id "bad/id"'],
      [['start', 'TX1', '4PC', 'SET', 'k', '1'], 'start: unsupported protocol "4PC": 2PC or 3PC'],
      [
        ['start', 'TX1', 'SET', 'k', '1', '--bogus'],
        "start: unknown option '--bogus' (see: coordinator.ts help)\nusage: coordinator.ts start " +
          '[ID] [2PC|3PC] [OP [--on P]...]... [--coordinator URL] [--json] [--timeout MS]',
      ],
      [['show'], 'show: missing ID'],
      [['show', 'a', 'b'], 'show: unexpected argument "b"'],
      [['get'], 'get: missing KEY'],
      [['status', 'now'], 'status: unexpected argument "now"'],
      [['submit'], 'submit: missing FILE (or - for stdin)'],
      [
        ['status', '--coordinator', 'ftp://x'],
        'invalid --coordinator "ftp://x": expected an http(s) URL',
      ],
    ]
    for (const [args, message] of cases) {
      const run = await cli(args, { env })
      expect({ args, ...run }).toEqual({ args, code: 2, stdout: '', stderr: `error: ${message}\n` })
    }
  })

  test('an --on the coordinator does not know is a usage error', async () => {
    const { coordinator } = await cluster(2)
    const mixed = await cli(['start', 'x', 'SET', 'a', '1', 'SET', 'b', '2', '--on', '5'], {
      coordinator,
    })
    expect(mixed).toEqual({
      code: 2,
      stdout: '',
      stderr: 'error: --on 5: the coordinator has no such participant (0-1)\n',
    })
    const routed = await cli(['start', 'x', 'SET', 'a', '1', '--on', '5'], { coordinator })
    expect(routed.code).toBe(2)
    expect(routed.stderr).toBe(
      'error: the coordinator refused /transactions (HTTP 400): ' +
        'invalid "ops": no participant "5" (index, name or URL)\n',
    )
    expect((await cli(['show', 'x'], { coordinator })).code).toBe(1) // nothing ran
  })

  test('an unreachable coordinator is one line and exit 1', async () => {
    const url = `http://127.0.0.1:${freePort()}`
    for (const args of [['start', 'SET', 'k', '1'], ['status'], ['show', 'T1'], ['get', 'k']]) {
      const run = await cli([...args, '--coordinator', url])
      expect(run).toEqual({
        code: 1,
        stdout: '',
        stderr: `error: cannot reach the coordinator at ${url}\n`,
      })
    }
  })

  test('help prints the usage with the exit statuses; batch mode is untouched', async () => {
    const help = await cli(['help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('coordinator.ts start [ID] [2PC|3PC] [OP [--on P]...]...')
    expect(help.stdout).toContain('1 aborted')
    // Not a client command: batch mode, which wants participants.
    const dir = tempDir()
    const batch = Bun.spawn([process.execPath, join(ROOT, 'coordinator.ts'), 'order-9'], {
      cwd: dir,
      env: cleanEnv(),
      stdout: 'pipe',
      stderr: 'pipe',
    })
    expect(await new Response(batch.stderr).text()).toStartWith('error: no participants configured')
    expect(await batch.exited).toBe(2)
  })
})
