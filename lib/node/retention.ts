// How many finished transactions a node keeps in memory. Past that many, the oldest is folded
// (its log records replaced by the one record that rebuilds its final state, see
// lib/core/checkpoint.ts) and dropped from memory; a later message about it finds the folded
// record. So a node that has run a million transactions holds its live ones and the last few
// thousand, and starts up as fast as one that ran a few.
import { Fifo } from './fifo.ts'

/** The default of `--retain`: a few seconds of transactions at full load. */
export const DEFAULT_RETAIN = 10_000

export class Retention {
  /** Finished transactions in memory, and the same oldest first. */
  readonly #finished = new Set<string>()
  readonly #order = new Fifo<string>()

  constructor(
    readonly retain: number,
    /** Folds `txn` out of the log and out of memory. */
    readonly forget: (txn: string) => void,
  ) {}

  /** `txn` has finished: it stays in memory among the `retain` most recent. */
  finished(txn: string): void {
    if (this.#finished.has(txn)) return
    this.#finished.add(txn)
    this.#order.push(txn)
    while (this.#finished.size > this.retain) {
      const oldest = this.#order.shift()!
      this.#finished.delete(oldest)
      this.forget(oldest)
    }
  }
}
