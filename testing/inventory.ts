// What examples/inventory.ts and its test share: the orders side on PostgreSQL (its table, the
// participant that runs SQL on it), and the checkout as one transaction through the coordinator.
import { SQL } from 'bun'
import { join } from 'node:path'
import { ROOT } from './nodes.ts'

/** The inventory service, as a command: `bun examples/inventory.ts serve`. */
export const INVENTORY = [process.execPath, join(ROOT, 'examples', 'inventory.ts'), 'serve']

const ORDERS_TABLE = `CREATE TABLE IF NOT EXISTS orders (
  id text PRIMARY KEY, customer text NOT NULL, sku text NOT NULL,
  quantity int NOT NULL CHECK (quantity > 0))`

/** Creates database `name` with its `orders` table on the cluster at `clusterUrl`; its URL. */
export async function ordersDatabase(clusterUrl: string, name = 'orders'): Promise<string> {
  const admin = new SQL({ url: clusterUrl, max: 1 })
  await admin.unsafe(`CREATE DATABASE ${name}`)
  await admin.close()
  const url = clusterUrl.replace(/\/postgres$/, `/${name}`)
  const db = new SQL({ url, max: 1 })
  await db.unsafe(ORDERS_TABLE)
  await db.close()
  return url
}

export type Order = { id: string; customer: string; sku: string; quantity: number }

/** The checkout's operations: take the stock on `inventory`, insert the order on `orders`. */
export function checkoutOps(order: Order) {
  const insert = {
    op: 'sql',
    text: 'INSERT INTO orders (id, customer, sku, quantity) VALUES ($1, $2, $3, $4)',
    params: [order.id, order.customer, order.sku, order.quantity],
    expect: { rows: 1 },
  }
  return {
    inventory: [{ op: 'add', key: order.sku, amount: -order.quantity }],
    orders: [insert],
  }
}

export type Outcome = { decision: string | null; reasons: Record<string, string> }

/** Runs `ops` as transaction `id` through the coordinator service at `coordinator`. */
export async function transact(coordinator: string, id: string, ops: unknown): Promise<Outcome> {
  const response = await fetch(`${coordinator}/transactions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, ops }),
  })
  const body = (await response.json()) as Outcome & { error?: string }
  if (body.error) throw new Error(`${id}: ${body.error}`)
  return { decision: body.decision, reasons: body.reasons ?? {} }
}

export function checkout(coordinator: string, order: Order): Promise<Outcome> {
  return transact(coordinator, order.id, checkoutOps(order))
}

/** A restock of the inventory alone (one participant: one phase). */
export function restock(coordinator: string, id: string, sku: string, quantity: number) {
  return transact(coordinator, id, { inventory: [{ op: 'add', key: sku, amount: quantity }] })
}

/** Every order, by id. */
export async function readOrders(url: string): Promise<Order[]> {
  const db = new SQL({ url, max: 1 })
  try {
    return (await db`SELECT id, customer, sku, quantity FROM orders ORDER BY id`) as Order[]
  } finally {
    await db.close()
  }
}

/** How many transactions the server at `url` holds prepared (none, once all is decided). */
export async function preparedXacts(url: string): Promise<number> {
  const db = new SQL({ url, max: 1 })
  try {
    const [row] = await db`SELECT count(*)::int AS n FROM pg_prepared_xacts`
    return row.n as number
  } finally {
    await db.close()
  }
}

export type Stock = { sku: string; quantity: number; held: number; available: number }

/** The inventory's own read route. */
export async function stockOf(inventory: string, sku: string): Promise<Stock> {
  return (await (await fetch(`${inventory}/stock/${encodeURIComponent(sku)}`)).json()) as Stock
}
