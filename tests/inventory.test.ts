// examples/inventory.ts: the demo runs to its verdict, and its checkout stays atomic when the
// inventory service or the orders participant is killed at a failpoint (real processes, the
// PostgreSQL that npm installs).
import { afterEach, describe, expect, test } from 'bun:test'
import { INVENTORY, checkout, ordersDatabase, preparedXacts } from '../testing/inventory.ts'
import { readOrders, restock, stockOf } from '../testing/inventory.ts'
import {
  cleanup,
  freePort,
  getJson,
  runCommand,
  startCoordinatorService,
  startParticipant,
  tempDir,
  waitFor,
  type Node,
} from '../testing/processes.ts'
import { usePgCluster } from '../testing/pg.ts'

const pg = usePgCluster('twophase-inventory-')
let databases = 0
afterEach(cleanup)

test('the demo checks out, refuses a checkout short of stock, and both sides agree', async () => {
  const run = await runCommand([process.execPath, 'examples/inventory.ts'], [])
  expect(run.stdout).toContain('order-2 grace 4 apple: abort\n  only 3 of apple in stock, 4 asked')
  expect(run.stdout).toContain('orders: order-1 2 apple, order-3 3 apple, order-4 1 pear')
  expect(run.stdout).toContain('verdict: stock and orders agree')
  expect(run.code).toBe(0)
}, 60_000)

type Shop = {
  coordinator: Node
  inventory: () => Node
  orders: () => Node
  ordersUrl: string
  restart: (which: 'inventory' | 'orders') => Promise<void>
}

const IN_DOUBT = ['--in-doubt-after', '200']

/** Orders (PostgreSQL, --allow-sql) and inventory participants on fixed ports, so that either
 * can be restarted where the coordinator knows it; 5 apples in stock. */
async function shop(failpoints: { inventory?: string; orders?: string }): Promise<Shop> {
  const ordersUrl = await ordersDatabase(pg.cluster().url, `orders${++databases}`)
  const dirs = { inventory: tempDir(), orders: tempDir() }
  const ports = { inventory: freePort(), orders: freePort() }
  const start = (which: 'inventory' | 'orders', failpoint?: string) => {
    const env = failpoint ? { TWOPHASE_FAILPOINTS: failpoint } : {}
    const args = which === 'orders' ? ['--store', ordersUrl, '--allow-sql'] : []
    const command = which === 'inventory' ? INVENTORY : undefined
    return startParticipant(dirs[which], {
      port: ports[which],
      env,
      args: [...args, ...IN_DOUBT],
      ...(command ? { command } : {}),
    })
  }
  const nodes = {
    inventory: await start('inventory', failpoints.inventory),
    orders: await start('orders', failpoints.orders),
  }
  const coordinator = await startCoordinatorService(tempDir(), {
    participants: [`orders=${nodes.orders.url}`, `inventory=${nodes.inventory.url}`],
    args: ['--timeout', '1000'],
  })
  await restock(coordinator.url, 'restock', 'apple', 5)
  const restart = async (which: 'inventory' | 'orders') => {
    await nodes[which].proc.exited // the failpoint killed it
    nodes[which] = await start(which)
  }
  const inventory = () => nodes.inventory
  const orders = () => nodes.orders
  return { coordinator, inventory, orders, ordersUrl, restart }
}

async function stateOf(node: Node, txn: string): Promise<string> {
  return (await getJson(`${node.url}/transactions/${txn}`)).state
}

/** Both sides agree: the apples gone from stock are the apples ordered, nothing is held, and
 * PostgreSQL holds no prepared transaction. */
async function expectAgreement(s: Shop, taken: number): Promise<void> {
  const stock = await stockOf(s.inventory().url, 'apple')
  const orders = await readOrders(s.ordersUrl)
  expect(stock).toMatchObject({ quantity: 5 - taken, held: 0 })
  expect(orders.reduce((sum, o) => sum + o.quantity, 0)).toBe(taken)
  expect(await preparedXacts(s.ordersUrl)).toBe(0)
}

const order = (id: string) => ({ id, customer: 'ada', sku: 'apple', quantity: 2 })

describe('the checkout stays atomic through kills', () => {
  test('inventory killed after logging its yes: aborted, its reservation released', async () => {
    const s = await shop({ inventory: 'participant-after-vote-logged@c1' })
    expect((await checkout(s.coordinator.url, order('c1'))).decision).toBe('abort')
    await s.restart('inventory')
    // Prepared again after the restart (the reservation held), then told in doubt: abort.
    await waitFor(async () => (await stateOf(s.inventory(), 'c1')) === 'aborted')
    await waitFor(async () => (await preparedXacts(s.ordersUrl)) === 0)
    await expectAgreement(s, 0)
  }, 30_000)

  test('inventory killed with the commit logged, before the stock was taken', async () => {
    const s = await shop({ inventory: 'resource-after-outcome-logged@c2' })
    expect((await checkout(s.coordinator.url, order('c2'))).decision).toBe('commit')
    await s.restart('inventory')
    // The restart finishes the commit from the log; the coordinator's redelivery is answered.
    expect(await stateOf(s.inventory(), 'c2')).toBe('committed')
    await waitFor(async () => (await getJson(`${s.coordinator.url}/transactions/c2`)).acknowledged)
    await expectAgreement(s, 2)
    expect((await readOrders(s.ordersUrl)).map((o) => o.id)).toEqual(['c2'])
  }, 30_000)

  test('orders killed after PREPARE TRANSACTION: aborted on both sides', async () => {
    const s = await shop({ orders: 'pg-after-prepare@c3' })
    expect((await checkout(s.coordinator.url, order('c3'))).decision).toBe('abort')
    await s.restart('orders')
    await waitFor(async () => (await stateOf(s.orders(), 'c3')) === 'aborted')
    await waitFor(async () => (await preparedXacts(s.ordersUrl)) === 0)
    await expectAgreement(s, 0)
    // And the shop goes on: the next checkout commits.
    expect((await checkout(s.coordinator.url, order('c4'))).decision).toBe('commit')
    await expectAgreement(s, 2)
  }, 30_000)
})
