// The client side of a coordinators' shared log, whatever holds it (PostgreSQL: ./pg-log.ts;
// the simulator's database: testing/sim/shared-log.ts): group commit and fencing. A record's
// promise resolves only once the database has committed it; whatever is appended while a write
// is out goes together in the next one, which starts as soon as that one ends (never on a
// timer, except that a lazy record alone waits up to `lazyMs` for company). Once a write or a
// renewal finds the lease taken over, the log is fenced for good: nothing more is sent.
import type { CoordinatorRecord } from '../core/index.ts'
import { Fenced } from './pg-lease.ts'
import type { Checkpoints, LogMember, SharedLog } from './store.ts'

/** What one write carries: records, claims, and transactions finished (folded). */
export type Item =
  | { kind: 'record'; record: CoordinatorRecord }
  | { kind: 'claim'; txn: string; participants: readonly string[]; protocol?: '3pc' }
  | { kind: 'done'; txn: string }

/** A claim's answer: made, refused (another's, or finished), or this coordinator's own
 * unfinished claim that it does not run (`orphan`: its answer was lost, or a takeover moved it
 * here and its records were never read). */
export type Claimed = boolean | 'orphan'

/** What a write answers: the transactions it claimed, and the orphans among the rest. */
export type Written = { claimed: Set<string>; orphans: Set<string> }

type Pending = { item: Item; resolve: (claimed: Claimed) => void; reject: (e: unknown) => void }

/** Runs `fn` after `ms` (0: in a later turn, once what is waiting has had its go). */
export type Later = (ms: number, fn: () => void) => void

export abstract class GroupLog
  implements SharedLog<CoordinatorRecord>, Checkpoints<CoordinatorRecord>
{
  flushes = 0
  protected loaded: CoordinatorRecord[] = []
  #pending: Pending[] = []
  #writing: Promise<void> | null = null
  #scheduled = false
  #lazy = false
  #fenced: Fenced | null = null
  /** Called once, when a write or a renewal finds the lease taken over. */
  onFenced: (error: Error) => void = () => {}

  constructor(
    readonly lazyMs: number,
    readonly later: Later,
  ) {}

  /** The group, written in one atomic step that checks the lease and writes nothing without
   * it: throws Fenced when it was taken over. */
  protected abstract write(items: Item[]): Promise<Written>
  protected abstract renewLease(): Promise<void>
  abstract readonly leaseMs: number
  abstract lookup(txn: string): Promise<CoordinatorRecord[]>
  abstract takeOver(): Promise<CoordinatorRecord[]>
  abstract members(): Promise<LogMember[]>
  abstract unfinished(): Promise<string[]>
  abstract close(): void | Promise<void>

  get fenced(): boolean {
    return this.#fenced !== null
  }

  records(): CoordinatorRecord[] {
    return this.loaded
  }

  history(): Iterable<CoordinatorRecord> {
    return this.loaded
  }

  /** Folded transactions are found by `lookup` on the shared log, not here. */
  folded(): undefined {
    return undefined
  }

  get checkpoints(): this {
    return this
  }

  /** A finished transaction is marked done with a later write: start-up no longer reads it. */
  fold(txn: string): void {
    this.#enqueue({ kind: 'done', txn }, true).catch(() => {})
  }

  append(record: CoordinatorRecord, _effect: undefined, lazy: boolean): Promise<void> {
    return this.#enqueue({ kind: 'record', record }, lazy).then(() => {})
  }

  /** Makes `txn` this coordinator's before anything of it is sent (see `Claimed`). */
  claim(txn: string, participants: readonly string[], protocol: '2pc' | '3pc'): Promise<Claimed> {
    const three = protocol === '3pc' ? { protocol: '3pc' as const } : {}
    return this.#enqueue({ kind: 'claim', txn, participants, ...three }, false)
  }

  /** Renews the lease; once it was taken over, fences this log for good. */
  async renew(): Promise<void> {
    if (this.#fenced) throw this.#fenced
    try {
      await this.renewLease()
    } catch (error) {
      if (error instanceof Fenced) this.#fence(error)
      throw error
    }
  }

  #enqueue(item: Item, lazy: boolean): Promise<Claimed> {
    if (this.#fenced) return Promise.reject(this.#fenced)
    const { promise, resolve, reject } = Promise.withResolvers<Claimed>()
    this.#pending.push({ item, resolve, reject })
    if (!lazy || this.lazyMs === 0) this.#writeSoon()
    else if (!this.#lazy) {
      this.#lazy = true
      this.later(this.lazyMs, () => this.#writeSoon())
    }
    return promise
  }

  #writeSoon(): void {
    if (this.#scheduled || this.#writing) return
    this.#scheduled = true
    this.later(0, () => void this.#write())
  }

  async #write(): Promise<void> {
    this.#scheduled = false
    this.#lazy = false
    const group = this.#pending
    if (group.length === 0) return
    this.#pending = []
    const { promise, resolve } = Promise.withResolvers<void>()
    this.#writing = promise
    try {
      const { claimed, orphans } = await this.write(group.map((p) => p.item))
      this.flushes += 1
      for (const { item, resolve } of group) {
        if (item.kind !== 'claim' || claimed.has(item.txn)) resolve(true)
        else resolve(orphans.has(item.txn) ? 'orphan' : false)
      }
    } catch (error) {
      if (error instanceof Fenced) this.#fence(error)
      for (const p of group) p.reject(error)
    } finally {
      this.#writing = null
      resolve()
      // Whatever came meanwhile goes at once: a forced record never waits on a timer.
      if (this.#pending.length > 0) this.#writeSoon()
    }
  }

  #fence(error: Fenced): void {
    if (this.#fenced) return
    this.#fenced = error
    this.onFenced(error)
  }

  /** Writes whatever is pending. */
  protected async drain(): Promise<void> {
    while (this.#writing || this.#pending.length > 0) {
      if (this.#writing) await this.#writing
      else await this.#write()
    }
  }
}
