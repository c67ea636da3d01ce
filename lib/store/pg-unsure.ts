// PREPARE TRANSACTIONs that got no answer: the connection died after the statement left, so the
// server may hold the prepared transaction or not. Its write failed as far as the participant
// knows (it went back to unknown and never voted yes on it), and a failed write must leave
// nothing behind: whatever the server holds of it is rolled back once the server answers again,
// in the background (else its row locks would stay until the participant restarted), and first
// of all before a new prepare of the same transaction begins (which must never be the one rolled
// back).
import { backoffMs } from '../core/index.ts'

const BACKOFF = { baseMs: 100, capMs: 5000 }

export class UnsurePrepares {
  readonly #txns = new Set<string>()
  /** The rollback under way for a transaction: one at a time, shared by whoever waits for it. */
  readonly #running = new Map<string, Promise<void>>()
  #sweeping: Promise<void> | null = null
  #wake: (() => void) | null = null
  #closed = false

  /** `rollback(txn)` rolls back `txn`'s prepared transaction if the server holds it; `sleep`
   * waits between attempts while the server cannot be reached (a test may hold it). */
  constructor(
    readonly rollback: (txn: string) => Promise<void>,
    readonly sleep?: (ms: number) => Promise<void>,
  ) {}

  /** `txn`'s PREPARE TRANSACTION failed, perhaps only its answer: settle it in the background. */
  add(txn: string): void {
    this.#txns.add(txn)
    this.#sweeping ??= this.#sweep().finally(() => (this.#sweeping = null))
  }

  /** Rolls back what an unanswered prepare of `txn` may have left; resolves at once when there is
   * none, and rejects while the server cannot be reached. */
  settle(txn: string): Promise<void> {
    if (!this.#txns.has(txn)) return Promise.resolve()
    let running = this.#running.get(txn)
    if (running === undefined) {
      running = this.rollback(txn)
        .then(() => void this.#txns.delete(txn))
        .finally(() => this.#running.delete(txn))
      this.#running.set(txn, running)
    }
    return running
  }

  /** Resolves once nothing is left to settle, or once closed. */
  settled(): Promise<void> {
    return this.#sweeping ?? Promise.resolve()
  }

  close(): void {
    this.#closed = true
    this.#wake?.()
  }

  async #sweep(): Promise<void> {
    let attempt = 0
    while (this.#txns.size > 0 && !this.#closed) {
      try {
        for (const txn of [...this.#txns]) await this.settle(txn)
        attempt = 0
      } catch {
        const ms = backoffMs(attempt++, Math.random, BACKOFF)
        await (this.sleep ? this.sleep(ms) : this.#sleep(ms))
      }
    }
  }

  /** A pause that neither keeps the process alive nor outlasts `close`. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      timer.unref()
      this.#wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }
}
