// An inventory service that becomes a participant through the resource API, and a checkout
// that takes its stock and creates the order on PostgreSQL in one atomic transaction.
//   bun examples/inventory.ts          starts PostgreSQL (from npm), the orders participant
//                                      (--allow-sql), this service and a coordinator, runs
//                                      checkouts, prints what each side holds, and checks that
//                                      they agree (exit 0) or not (exit 1)
//   bun examples/inventory.ts serve [--port 9000] [--dir .] [--secret-file PATH] ...
//                                      the inventory service alone (--help: its flags)
// The service keeps its own SQLite schema (inventory.db: stock, reservations) and its own read
// routes (GET /stock, GET /stock/:sku) beside the participant's. An `add` of -N on a SKU takes N
// at commit (and is refused when fewer are available); of +N, restocks N.
import { Database } from 'bun:sqlite'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Hono } from 'hono'
import { fail } from '../lib/cli/args.ts'
import { resourceOptionsFromArgv, serveResource, type Resource } from '../lib/api.ts'
import { startPgCluster } from '../lib/store/pg-cluster.ts'
import { spawnCoordinatorService, spawnNode, spawnParticipant } from '../testing/nodes.ts'
import type { Node } from '../testing/nodes.ts'
import { INVENTORY, checkout, ordersDatabase, preparedXacts } from '../testing/inventory.ts'
import { readOrders, restock, stockOf, type Order } from '../testing/inventory.ts'

const SCHEMA = [
  'PRAGMA journal_mode = WAL',
  'PRAGMA synchronous = FULL', // a reservation is durable before its yes is answered
  `CREATE TABLE IF NOT EXISTS stock (
     sku TEXT PRIMARY KEY, quantity INTEGER NOT NULL CHECK (quantity >= 0))`,
  `CREATE TABLE IF NOT EXISTS reservations (
     txn TEXT NOT NULL, sku TEXT NOT NULL, delta INTEGER NOT NULL, PRIMARY KEY (txn, sku))`,
]

export function openInventory(dir: string): Database {
  const db = new Database(join(dir, 'inventory.db'), { create: true, strict: true })
  for (const statement of SCHEMA) db.run(statement)
  return db
}

type Level = { sku: string; quantity: number; held: number; available: number }

/** What `sku` holds: in stock, held by prepared checkouts, and free to take. */
function levelOf(db: Database, sku: string): Level {
  const row = db
    .query(
      `SELECT coalesce((SELECT quantity FROM stock WHERE sku = $sku), 0) AS quantity,
         coalesce((SELECT -sum(delta) FROM reservations WHERE sku = $sku AND delta < 0), 0)
           AS held`,
    )
    .get({ sku }) as { quantity: number; held: number }
  return { sku, ...row, available: row.quantity - row.held }
}

/** The inventory as a Resource: a yes writes its reservations (durably, in one SQLite
 * transaction), commit applies them to the stock and drops them, abort drops them. */
export function inventoryResource(db: Database): Resource {
  const reserved = (txn: string) => db.query('SELECT 1 FROM reservations WHERE txn = ?').get(txn)
  return {
    prepare(txn, ops) {
      if (reserved(txn)) return { vote: 'yes' } // a repeated prepare
      const deltas = new Map<string, number>()
      for (const op of ops) {
        if (op.op !== 'add') return { vote: 'no', reason: `the inventory takes add, not ${op.op}` }
        deltas.set(op.key, (deltas.get(op.key) ?? 0) + op.amount)
      }
      for (const [sku, delta] of deltas) {
        const { available } = levelOf(db, sku)
        if (available + delta < 0)
          return { vote: 'no', reason: `only ${available} of ${sku} in stock, ${-delta} asked` }
      }
      const insert = db.query('INSERT INTO reservations (txn, sku, delta) VALUES (?, ?, ?)')
      db.transaction(() => deltas.forEach((delta, sku) => insert.run(txn, sku, delta)))()
      return { vote: 'yes' }
    },
    commit(txn) {
      const rows = db.query('SELECT sku, delta FROM reservations WHERE txn = ?').all(txn) as {
        sku: string
        delta: number
      }[]
      const update = db.query('UPDATE stock SET quantity = quantity + ? WHERE sku = ?')
      const insert = db.query('INSERT INTO stock (sku, quantity) VALUES (?, ?)')
      db.transaction(() => {
        for (const { sku, delta } of rows) {
          if (update.run(delta, sku).changes === 0) insert.run(sku, delta)
        }
        db.run('DELETE FROM reservations WHERE txn = ?', [txn])
      })()
    },
    abort(txn) {
      db.run('DELETE FROM reservations WHERE txn = ?', [txn])
    },
    recover() {
      const rows = db.query('SELECT DISTINCT txn FROM reservations').all() as { txn: string }[]
      return rows.map((r) => r.txn)
    },
    close() {
      db.close()
    },
  }
}

/** The service's own read routes, beside the participant's endpoints. */
function inventoryRoutes(db: Database) {
  return (app: Hono) => {
    app.get('/stock', (c) => {
      const skus = db.query('SELECT sku FROM stock ORDER BY sku').all() as { sku: string }[]
      return c.json(skus.map((s) => levelOf(db, s.sku)))
    })
    app.get('/stock/:sku', (c) => c.json(levelOf(db, c.req.param('sku'))))
  }
}

async function serve(argv: string[]): Promise<void> {
  const options = resourceOptionsFromArgv(argv, 'examples/inventory.ts serve')
  const db = openInventory(options.dir)
  const participant = await serveResource(inventoryResource(db), {
    ...options,
    routes: inventoryRoutes(db),
  })
  const stop = () => void participant.stop().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

/** The demo: a whole cluster in a temp directory, checkouts, and the check that the stock
 * taken equals the orders made. */
async function demo(): Promise<number> {
  const root = mkdtempSync(join(tmpdir(), 'twophase-inventory-'))
  // A folder of its own: the server may run as another user, who must reach it.
  const pgDir = mkdtempSync(join(tmpdir(), 'twophase-inventory-pg-'))
  const pg = await startPgCluster(pgDir)
  const nodes: Node[] = []
  try {
    const ordersUrl = await ordersDatabase(pg.url)
    for (const d of ['orders', 'inventory', 'coordinator']) mkdirSync(join(root, d))
    const orderArgs = ['--store', ordersUrl, '--allow-sql']
    nodes.push(await spawnParticipant(join(root, 'orders'), { args: orderArgs }))
    const args = ['--host', '127.0.0.1', '--port', '0', '--dir', '.']
    nodes.push(await spawnNode([...INVENTORY, ...args], join(root, 'inventory'), {}))
    const [orders, inventory] = nodes as [Node, Node]
    const participants = [`orders=${orders.url}`, `inventory=${inventory.url}`]
    const coordinator = await spawnCoordinatorService(join(root, 'coordinator'), { participants })
    nodes.push(coordinator)
    return await shop(coordinator.url, inventory.url, ordersUrl)
  } finally {
    for (const n of nodes) n.proc.kill('SIGTERM')
    await Promise.all(nodes.map((n) => n.proc.exited))
    await pg.stop()
    for (const d of [root, pgDir]) rmSync(d, { recursive: true, force: true })
  }
}

const CHECKOUTS: Order[] = [
  { id: 'order-1', customer: 'ada', sku: 'apple', quantity: 2 },
  { id: 'order-2', customer: 'grace', sku: 'apple', quantity: 4 }, // only 3 left: refused
  { id: 'order-3', customer: 'grace', sku: 'apple', quantity: 3 },
  { id: 'order-4', customer: 'alan', sku: 'pear', quantity: 1 },
]

async function shop(coordinator: string, inventory: string, ordersUrl: string): Promise<number> {
  await restock(coordinator, 'restock-apple', 'apple', 5)
  await restock(coordinator, 'restock-pear', 'pear', 1)
  for (const order of CHECKOUTS) {
    const { decision, reasons } = await checkout(coordinator, order)
    const why = Object.values(reasons).join('; ')
    console.log(`${order.id} ${order.customer} ${order.quantity} ${order.sku}: ${decision}`)
    if (why) console.log(`  ${why}`)
  }
  const orders = await readOrders(ordersUrl)
  const stock = { apple: await stockOf(inventory, 'apple'), pear: await stockOf(inventory, 'pear') }
  console.log(`orders: ${orders.map((o) => `${o.id} ${o.quantity} ${o.sku}`).join(', ')}`)
  console.log(`stock: apple ${stock.apple.quantity}, pear ${stock.pear.quantity}`)
  const taken = (sku: string) =>
    orders.filter((o) => o.sku === sku).reduce((sum, o) => sum + o.quantity, 0)
  const agree =
    stock.apple.quantity + taken('apple') === 5 &&
    stock.pear.quantity + taken('pear') === 1 &&
    stock.apple.held + stock.pear.held === 0 &&
    (await preparedXacts(ordersUrl)) === 0
  console.log(agree ? 'verdict: stock and orders agree' : 'verdict: stock and orders DISAGREE')
  return agree ? 0 : 1
}

if (import.meta.main) {
  try {
    const argv = Bun.argv.slice(2)
    if (argv[0] === 'serve') await serve(argv.slice(1))
    else process.exitCode = await demo()
  } catch (error) {
    fail(error)
  }
}
