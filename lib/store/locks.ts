import type { Op } from '../core/index.ts'
import { keysOf } from '../core/index.ts'

/** The prepared work of each transaction and the no-wait locks it holds, in memory; both are
 * rebuilt from the log at start-up, so locks survive a restart with the prepared state. */
export class PreparedWork {
  readonly #locks = new Map<string, string>()
  readonly #work = new Map<string, readonly Op[]>()

  /** The first key of `ops` that another transaction holds, with its holder. */
  conflict(txn: string, ops: readonly Op[]): { key: string; holder: string } | null {
    for (const key of keysOf(ops)) {
      const holder = this.#locks.get(key)
      if (holder !== undefined && holder !== txn) return { key, holder }
    }
    return null
  }

  hold(txn: string, ops: readonly Op[]): void {
    for (const key of keysOf(ops)) this.#locks.set(key, txn)
    this.#work.set(txn, ops)
  }

  opsOf(txn: string): readonly Op[] {
    return this.#work.get(txn) ?? []
  }

  release(txn: string): void {
    for (const key of keysOf(this.opsOf(txn))) {
      if (this.#locks.get(key) === txn) this.#locks.delete(key)
    }
    this.#work.delete(txn)
  }

  locks(): Map<string, string> {
    return new Map(this.#locks)
  }
}

export function lockReason(conflict: { key: string; holder: string }): string {
  return `key ${conflict.key} is locked by transaction ${conflict.holder}`
}
