// The checks of several coordinators on one shared log, beside the atomic-commit ones
// (./invariants.ts): read off the database as it is written, and at the end.
import type { Invariants } from './invariants.ts'
import type { DatabaseObserver, Member, Row } from './shared-log.ts'

type Outcome = 'commit' | 'abort'

export class SharedInvariants implements DatabaseObserver {
  /** The one decision the log holds for each transaction. */
  readonly #decisions = new Map<string, { decision: Outcome; by: string }>()
  /** `name epoch` of every coordinator's life that was taken over. */
  readonly #taken = new Set<string>()
  /** Each coordinator's lease as the checks saw it held: its epoch, until when, since when. */
  readonly #leases = new Map<string, { epoch: number; until: number; since: number }>()

  constructor(
    readonly invariants: Invariants,
    readonly now: () => number,
    readonly leaseMs: number,
  ) {}

  leased(name: string, epoch: number, until: number): void {
    const now = this.now()
    const last = this.#leases.get(name)
    // Held without a break: the same life, and renewed before it ran out.
    const kept = last !== undefined && last.epoch === epoch && last.until >= now
    this.#leases.set(name, { epoch, until, since: kept ? last.since : now })
  }

  /** No lease overlap: a coordinator's transactions change owner only once its lease ran out,
   * and the taker held its own since then, or for a whole lease (after the database was out
   * of reach, every lease ran out, and each gets a lease's time to renew its own). */
  takenOver(victim: Member, taker: Member): void {
    const now = this.now()
    const v = this.#leases.get(victim.name)
    const t = this.#leases.get(taker.name)
    if (v && v.epoch === victim.epoch && v.until >= now) {
      const detail = `${taker.name} took over ${victim.name}, whose lease runs until ${v.until}`
      this.invariants.fail('no lease overlap', `${detail}, at ${now}`)
    }
    const since = Math.max(v?.until ?? 0, now - this.leaseMs)
    if (!t || t.epoch !== taker.epoch || t.until < now || t.since > since) {
      const held = t ? `held its own since ${t.since}` : 'holds no lease'
      this.invariants.fail(
        'no lease overlap',
        `${taker.name} took over ${victim.name} at ${now} but ${held} (grace: since ${since})`,
      )
    }
    this.#taken.add(`${victim.name} ${victim.epoch}`)
  }

  /** Fencing, and one decision per transaction in the log; then the atomic-commit checks. */
  written(row: Row): void {
    const { record, writer, epoch } = row
    if (this.#taken.has(`${writer} ${epoch}`)) {
      const what = `${record.type} of ${record.txn}`
      this.invariants.fail('fencing', `${writer} (epoch ${epoch}) wrote ${what} after its takeover`)
    }
    if (record.type !== 'decision') return
    const first = this.#decisions.get(record.txn)
    if (first && first.decision !== record.decision) {
      const detail = `${first.by} logged ${record.txn} ${first.decision}, ${writer} then`
      this.invariants.fail('one decision per transaction', `${detail} ${record.decision}`)
    }
    this.#decisions.set(record.txn, { decision: record.decision, by: first?.by ?? writer })
    this.invariants.onCoordinatorPersist(record, writer)
  }

  /** The decision the log holds for `txn`, if any. */
  decision(txn: string): Outcome | undefined {
    return this.#decisions.get(txn)?.decision
  }

  /** At the end: every client was told the log's decision. */
  clientsAgree(outcomes: Iterable<[string, Outcome | null]>): void {
    for (const [txn, told] of outcomes) {
      const logged = this.decision(txn)
      if (told !== logged) {
        const detail = `the client of ${txn} was told ${told}, the log holds ${logged ?? 'none'}`
        this.invariants.fail("clients' outcomes are the log's", detail)
      }
    }
  }
}
