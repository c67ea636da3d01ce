// A private PostgreSQL cluster shared by the tests of one file: started before them, stopped and
// removed after them (its directory outlives each test's cleanup of temp directories).
import { afterAll, beforeAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPgCluster, type PgCluster } from '../lib/store/pg-cluster.ts'

/** Registers the file's cluster; `cluster()` is the running one (within a test), and
 * `freshDatabase()` creates an empty database on it and returns its URL. */
export function usePgCluster(prefix: string): {
  cluster: () => PgCluster
  freshDatabase: () => Promise<string>
} {
  let pg: PgCluster | null = null
  let dir = ''
  let databases = 0
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix))
    pg = await startPgCluster(dir)
  }, 120_000)
  afterAll(async () => {
    await pg?.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  const cluster = () => {
    if (pg === null) throw new Error('the PostgreSQL cluster is not running')
    return pg
  }
  const freshDatabase = async () => {
    const name = `db_${process.pid}_${++databases}`
    await pgQuery(cluster().url, `CREATE DATABASE ${name}`)
    return cluster().url.replace(/\/postgres$/, `/${name}`)
  }
  return { cluster, freshDatabase }
}

/** Runs `text` on its own connection to `url` and returns the rows. */
export async function pgQuery(url: string, text: string): Promise<any[]> {
  const { SQL } = await import('bun')
  const db = new SQL({ url, max: 1 })
  try {
    return [...(await db.unsafe(text))]
  } finally {
    await db.close()
  }
}
