// The simulated disk: group commit over virtual time. A forced append starts a flush that takes
// a moment (longer while the disk stalls); a lazy one rides the next flush or a timer. A flush
// is atomic: at its end every record of the group is durable, or (while the disk is full or
// failing) none is and every waiter gets the error. A crash loses whatever was not flushed.
import type { Random } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export type DiskFaults = {
  /** Per step: chance that a node's disk fails every write for a while (ENOSPC, EIO). */
  fail: number
  /** Per step: chance that a node's disk stalls for a while (its flushes wait). */
  stall: number
  /** Per flush: chance the node crashes right after it, before anyone hears of it. */
  crashAfter: number
}

export type DiskCounts = { failedWrites: number; stalls: number; diskFaults: number }

/** One node's disk, shared by its lives: the faults in force and what they did. */
export class Disk {
  failingUntil = 0
  stallUntil = 0

  constructor(
    readonly sched: Scheduler,
    readonly rng: Random,
    readonly counts: DiskCounts,
  ) {}

  /** When a flush started now ends. */
  flushEnd(): number {
    return Math.max(this.sched.now + this.rng.int(1, 3), this.stallUntil)
  }

  failing(): boolean {
    return this.sched.now < this.failingUntil
  }
}

type Pending<T> = { item: T; resolve: () => void; reject: (e: unknown) => void }

/** Appends that share flushes. `write` makes a group durable (and checks it); `alive` tells
 * whether the node that queued it still runs in the same life; `crash` kills it. */
export class GroupWriter<T> {
  #pending: Pending<T>[] = []
  #flushAt: number | null = null
  flushes = 0

  constructor(
    readonly disk: Disk,
    readonly alive: () => boolean,
    readonly write: (group: T[]) => void,
    readonly crashAfter: () => boolean,
    /** How long a lazy record waits for company (as in DurableLog: 20 ms at the coordinator;
     * 0 at a participant, whose lazy records go in the next flush like forced ones). */
    readonly lazyMs: number,
  ) {}

  /** Queues `item` to ride the next flush without starting one (a checkpoint's fold): nobody
   * waits for it, a crash may lose it, and a failed flush queues it again. */
  ride(item: T): void {
    const requeue = () => {
      if (this.alive()) this.ride(item)
    }
    this.#pending.push({ item, resolve: () => {}, reject: requeue })
  }

  append(item: T, lazy: boolean): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    this.#pending.push({ item, resolve, reject })
    const at = lazy && this.lazyMs > 0 ? this.disk.sched.now + this.lazyMs : this.disk.flushEnd()
    if (this.#flushAt === null || at < this.#flushAt) {
      this.#flushAt = at
      this.disk.sched.at(at, () => this.#flush(at))
    }
    return promise
  }

  #flush(at: number): void {
    if (!this.alive() || this.#flushAt !== at) return // lost in a crash, or superseded
    this.#flushAt = null
    const group = this.#pending.splice(0)
    if (group.length === 0) return
    if (this.disk.failing()) {
      this.disk.counts.failedWrites += group.length
      const error = new Error('ENOSPC: no space left on device (simulated)')
      for (const p of group) p.reject(error)
      return
    }
    this.write(group.map((p) => p.item))
    this.flushes += 1
    if (this.crashAfter()) return // durable, but nobody heard of it
    for (const p of group) p.resolve()
  }
}
