// Virtual time for the simulator: every timer, message and disk write of every node is an event
// here, run in time order (ties in the order they were scheduled). Nothing waits on a real clock.

type Scheduled = { at: number; seq: number; fn: () => void }

export class Scheduler {
  now = 0
  #events: Scheduled[] = []
  #seq = 0

  at(time: number, fn: () => void): void {
    this.#events.push({ at: Math.max(time, this.now), seq: this.#seq++, fn })
  }

  /** When the next event is due, or Infinity when none is scheduled. */
  nextAt(): number {
    let at = Infinity
    for (const e of this.#events) if (e.at < at) at = e.at
    return at
  }

  /** Takes the events due at `now`, earliest first. */
  takeDue(): Scheduled[] {
    const due = this.#events.filter((e) => e.at <= this.now)
    if (due.length === 0) return due
    this.#events = this.#events.filter((e) => e.at > this.now)
    return due.sort((a, b) => a.at - b.at || a.seq - b.seq)
  }
}

/** Lets every promise chain the last event started run to its end (they are all microtasks:
 * the nodes' only waits are on the simulator's own events). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
