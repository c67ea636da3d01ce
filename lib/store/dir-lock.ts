// One node per directory: a node holds an exclusive SQLite lock on `twophase.lock` in its
// directory for as long as it runs. Two nodes on one directory would share a log each believes
// is its own alone: both would grant the same key, and a decision could be lost. The lock is
// the kernel's (SQLite's file lock), so it is exclusive without races, and a crash (even
// SIGKILL) lets go of it; `twophase.owner` beside it names the holder for the error message.
// In one process (tests that restart a node in place) the lock is counted, not taken twice.
import { Database } from 'bun:sqlite'
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { UsageError } from '../core/errors.ts'

export const LOCK_FILE = 'twophase.lock'
const OWNER_FILE = 'twophase.owner'

/** Locks held by this process, by path: the database that holds each, and how many nodes. */
const held = new Map<string, { db: Database; count: number }>()

export type DirLock = { release(): void }

/** Locks `dir` for a `role` node; throws a UsageError naming the other node (and its pid) if
 * another process holds it. */
export function lockDir(dir: string, role: string): DirLock {
  const path = join(dir, LOCK_FILE)
  const lock = held.get(path) ?? { db: acquire(path, dir, role), count: 0 }
  lock.count += 1
  held.set(path, lock)
  let released = false
  return {
    release() {
      if (released) return
      released = true
      lock.count -= 1
      if (lock.count > 0) return
      held.delete(path)
      unlinkQuietly(join(dir, OWNER_FILE))
      lock.db.close() // the kernel lets go of the lock
    },
  }
}

function acquire(path: string, dir: string, role: string): Database {
  const db = new Database(path, { create: true })
  try {
    db.run('PRAGMA locking_mode = EXCLUSIVE')
    db.run('BEGIN EXCLUSIVE')
  } catch (error) {
    db.close()
    if (!/locked|busy/i.test(String(error))) throw error
    const other = ownerOf(dir)
    const who = other ? `another ${other.role} (pid ${other.pid})` : 'another node'
    throw new UsageError(`${dir} is in use by ${who}; one node per directory`)
  }
  writeFileSync(join(dir, OWNER_FILE), `${JSON.stringify({ pid: process.pid, role })}\n`)
  return db
}

function ownerOf(dir: string): { pid: number; role: string } | null {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as {
      pid?: unknown
      role?: unknown
    }
    if (typeof parsed.pid !== 'number') return null
    return { pid: parsed.pid, role: typeof parsed.role === 'string' ? parsed.role : 'node' }
  } catch {
    return null // not written yet, or torn: the lock itself is what counts
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {}
}
