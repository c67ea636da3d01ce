// The package as another project uses it: a separate Bun project in a temp directory that
// depends on "twophase" by name builds a participant from the resource API, and a real
// coordinator runs transactions across it and a built-in participant.
import { afterEach, expect, test } from 'bun:test'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, cleanEnv, listeningUrl } from '../testing/nodes.ts'
import {
  cleanup,
  getJson,
  outputOf,
  postJson,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
} from '../testing/processes.ts'

afterEach(cleanup)

/** A service of its own: seats in its own SQLite file, a seat held by a pending row while a
 * transaction is prepared. `insert seat:N NAME` books seat N. */
const SERVICE = `
import { Database } from 'bun:sqlite'
import { resourceOptionsFromArgv, serveResource, type Resource } from 'twophase'

const db = new Database('seats.db')
db.run('PRAGMA journal_mode = WAL')
db.run('PRAGMA synchronous = FULL')
db.run('CREATE TABLE IF NOT EXISTS seats (seat TEXT PRIMARY KEY, holder TEXT NOT NULL)')
db.run('CREATE TABLE IF NOT EXISTS pending (txn TEXT, seat TEXT PRIMARY KEY, holder TEXT)')

const seats: Resource = {
  prepare(txn, ops) {
    if (db.query('SELECT 1 FROM pending WHERE txn = ?').get(txn)) return { vote: 'yes' }
    for (const op of ops) {
      if (op.op !== 'insert') return { vote: 'no', reason: 'seats only take insert' }
      const seat = op.key.replace(/^seat:/, '')
      const taken = db.query('SELECT 1 FROM seats WHERE seat = ? UNION ALL ' +
        'SELECT 1 FROM pending WHERE seat = ?').get(seat, seat)
      if (taken) return { vote: 'no', reason: 'seat ' + seat + ' is taken' }
    }
    db.transaction(() => {
      for (const op of ops) {
        const insert = db.query('INSERT INTO pending VALUES (?, ?, ?)')
        if (op.op === 'insert') insert.run(txn, op.key.slice(5), String(op.value))
      }
    })()
    return { vote: 'yes' }
  },
  commit(txn) {
    db.transaction(() => {
      db.query('INSERT OR IGNORE INTO seats SELECT seat, holder FROM pending WHERE txn = ?')
        .run(txn)
      db.query('DELETE FROM pending WHERE txn = ?').run(txn)
    })()
  },
  abort(txn) {
    db.query('DELETE FROM pending WHERE txn = ?').run(txn)
  },
  recover() {
    const rows = db.query('SELECT DISTINCT txn FROM pending').all() as { txn: string }[]
    return rows.map((r) => r.txn)
  },
}

await serveResource(seats, {
  ...resourceOptionsFromArgv(Bun.argv.slice(2), 'seats.ts'),
  routes: (app) => app.get('/seats', (c) => c.json(db.query('SELECT * FROM seats').all())),
})
`

/** The temp project: its package.json names "twophase" as a dependency, installed as npm and
 * Bun install a file: dependency (a link to the package's directory). */
function project(service = SERVICE): string {
  const dir = tempDir('twophase-user-')
  const deps = { twophase: `file:${ROOT}` }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'seats', dependencies: deps }))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(ROOT, join(dir, 'node_modules', 'twophase'), 'dir')
  writeFileSync(join(dir, 'seats.ts'), service)
  return dir
}

async function startService(dir: string) {
  const proc = Bun.spawn(
    [process.execPath, 'seats.ts', '--host', '127.0.0.1', '--port', '0', '--dir', 'node'],
    { cwd: dir, env: cleanEnv(), stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' },
  )
  try {
    return { proc, url: await listeningUrl(proc) }
  } catch (error) {
    proc.kill('SIGKILL')
    throw error
  }
}

test('a resource participant in another project commits, and refuses with a reason', async () => {
  const dir = project()
  const seats = await startService(dir)
  try {
    const counter = await startParticipant(tempDir())
    const coordinator = await startCoordinatorService(tempDir(), {
      participants: [seats.url, counter.url],
    })
    const book = (id: string, seat: string, who: string) =>
      postJson(`${coordinator.url}/transactions`, {
        id,
        ops: { '0': [{ op: 'insert', key: `seat:${seat}`, value: who }], '1': [add] },
      })
    const add = { op: 'add', key: 'booked', amount: 1 }
    const first = await book('b1', '12', 'ada')
    expect(first.body.decision).toBe('commit')
    expect(first.body.acknowledged).toBe(true)
    const second = await book('b2', '12', 'grace')
    expect(second.body.decision).toBe('abort')
    expect(second.body.reasons[seats.url]).toBe('seat 12 is taken')
    expect(await getJson(`${seats.url}/seats`)).toEqual([{ seat: '12', holder: 'ada' }])
    expect((await getJson(`${counter.url}/kv/booked`)).value).toBe(1)
    // The node is the real participant: its endpoints and views answer as participant.ts's.
    expect(await getJson(`${seats.url}/transactions/b1`)).toMatchObject({ state: 'committed' })
    const view = () => Bun.file(join(dir, 'node', 'state.txt')).text()
    await waitFor(async () => (await view()) === 'b1=committed\nb2=aborted\n')
  } finally {
    seats.proc.kill('SIGKILL')
    await seats.proc.exited
  }
})

test('the package type-checks from the other project', async () => {
  const dir = project()
  const tsconfig = {
    compilerOptions: {
      strict: true,
      noEmit: true,
      module: 'preserve',
      moduleResolution: 'bundler',
      target: 'esnext',
      allowImportingTsExtensions: true,
      skipLibCheck: true,
      types: ['bun'],
      typeRoots: [join(ROOT, 'node_modules', '@types')],
    },
    files: ['seats.ts'],
  }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig))
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc')
  const run = await outputOf(
    Bun.spawn([tsc, '-p', '.'], { cwd: dir, env: cleanEnv(), stdout: 'pipe', stderr: 'pipe' }),
  )
  expect(run.stdout + run.stderr).toBe('')
  expect(run.code).toBe(0)
})

test('the example of docs/resources.md runs as written', async () => {
  const doc = readFileSync(join(ROOT, 'docs', 'resources.md'), 'utf8')
  const code = /```ts\n([\s\S]*?)```/.exec(doc)![1]!
  const seats = await startService(project(code))
  try {
    const counter = await startParticipant(tempDir())
    const coordinator = await startCoordinatorService(tempDir(), {
      participants: [`seats=${seats.url}`, `counter=${counter.url}`],
    })
    const book = (id: string, who: string) =>
      postJson(`${coordinator.url}/transactions`, {
        id,
        ops: {
          seats: [{ op: 'insert', key: '12', value: who }],
          counter: [{ op: 'add', key: 'n', amount: 1 }],
        },
      })
    expect((await book('b1', 'ada')).body.decision).toBe('commit')
    const second = await book('b2', 'grace')
    expect(second.body).toMatchObject({
      decision: 'abort',
      reasons: { [seats.url]: 'seat 12 is taken' },
    })
    expect(await getJson(`${seats.url}/seats`)).toEqual([{ seat: '12', holder: 'ada', txn: null }])
  } finally {
    seats.proc.kill('SIGKILL')
    await seats.proc.exited
  }
})
