// The resource API: what a service implements to become a participant. The participant node
// around it (lib/resource/serve.ts) does the protocol: the endpoints, the durable log of votes
// and outcomes, recovery, the in-doubt procedure and authentication. See docs/resources.md.
import type { Json, Op } from '../core/index.ts'

/** The version of this API (docs/resources.md): a change that breaks a Resource bumps it. */
export const RESOURCE_API_VERSION = 1

/** A resource's answer to a prepare. `read-only`: the work only reads and holds nothing, so
 * the resource hears no more of the transaction (two-phase commit only). */
export type ResourceVote = { vote: 'yes' | 'no' | 'read-only'; reason?: string }

/** Either a value or a promise of it: every method may be synchronous or asynchronous. */
export type MaybePromise<T> = T | Promise<T>

/**
 * A resource a participant guards. The participant calls these one at a time for any one
 * transaction; calls for different transactions may overlap when the methods are asynchronous.
 * Each may be called again for the same transaction after a crash or a retry: all of them are
 * idempotent.
 */
export interface Resource {
  /** Checks `ops` (the transaction's operations for this participant) and, if they can be done,
   * sets the work aside so that `commit` cannot fail (reserve, write a pending row, hold its
   * locks) and answers `yes`; else `no` with a reason, holding nothing. A `yes` is a promise:
   * from then on only `commit` or `abort` ends the work. A prepare of a transaction already
   * set aside answers `yes` again. Throwing counts as `no` (the error's message the reason). */
  prepare(txn: string, ops: readonly Op[]): MaybePromise<ResourceVote>
  /** Makes the work of `txn` permanent. Called only after a `yes`, once the commit is in the
   * participant's log; again after a crash if it may not have finished: a second call, or a
   * call for a transaction already committed, changes nothing. Throwing is retried. */
  commit(txn: string): MaybePromise<void>
  /** Lets go of whatever `txn` set aside. Also called for a transaction it never prepared or
   * voted `no` on, and again after a crash: for those it changes nothing. */
  abort(txn: string): MaybePromise<void>
  /** The transactions whose work it holds set aside now (prepared, neither committed nor
   * aborted), read from its own durable storage after a restart. The participant commits or
   * aborts each as its log says, and keeps the rest prepared. Without `recover`, the resource
   * keeps nothing across a restart: the participant prepares again, from its log, every
   * transaction it holds prepared (which must answer `yes` again). */
  recover?(): MaybePromise<readonly string[]>
  /** A value `GET /kv/:key` shows (optional; a resource usually has routes of its own). */
  read?(key: string): MaybePromise<Json | undefined>
  /** Called once when the participant stops. */
  close?(): MaybePromise<void>
}
