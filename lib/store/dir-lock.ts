// One node per directory: a node takes `twophase.lock` in its directory (its pid, written with
// O_EXCL) and lets go of it when it stops. Two nodes on one directory would share a log they
// both believe is theirs alone: both would grant the same key, and a decision could be lost.
// A lock whose process is gone (a crash) is taken over. In one process (tests that restart a
// node in place) the lock is counted, not refused.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { UsageError } from '../core/errors.ts'

export const LOCK_FILE = 'twophase.lock'

/** Locks held by this process, by path: how many nodes hold each. */
const held = new Map<string, number>()

export type DirLock = { release(): void }

/** Locks `dir` for a `role` node; throws a UsageError naming the other node's pid if another
 * live process holds it. */
export function lockDir(dir: string, role: string): DirLock {
  const path = join(dir, LOCK_FILE)
  if (!held.has(path)) acquire(path, dir, role)
  held.set(path, (held.get(path) ?? 0) + 1)
  let released = false
  return {
    release() {
      if (released) return
      released = true
      const count = held.get(path)! - 1
      if (count > 0) return void held.set(path, count)
      held.delete(path)
      unlinkQuietly(path)
    },
  }
}

function acquire(path: string, dir: string, role: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644)
      writeSync(fd, `${JSON.stringify({ pid: process.pid, role })}\n`)
      closeSync(fd)
      return
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error
    }
    const other = holderOf(path)
    if (other !== null && alive(other.pid)) {
      throw new UsageError(
        `${dir} is in use by another ${other.role} (pid ${other.pid}); one node per directory`,
      )
    }
    unlinkQuietly(path) // its process is gone: a crash left it behind
  }
  throw new UsageError(`cannot lock ${dir}: ${path} keeps coming back`)
}

function holderOf(path: string): { pid: number; role: string } | null {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown; role?: unknown }
    if (typeof parsed.pid !== 'number') return null
    return { pid: parsed.pid, role: typeof parsed.role === 'string' ? parsed.role : 'node' }
  } catch {
    return null // empty or torn: its writer died before it finished
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM' // alive, but someone else's
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {}
}
