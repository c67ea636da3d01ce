// The participant's shell around the core: it owns the durable log, the state.txt view and the
// resource checks, and carries out the core's actions in order.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FileView, sweepTempFiles } from './atomic-file.ts'
import {
  parseVotes,
  participantStep,
  recoverParticipant,
  unknownTxn,
  voteFromFile,
  type ParticipantEvent,
  type ParticipantRecord,
  type ParticipantTxn,
  type Reply,
  type Vote,
  type VotesFile,
} from './core.ts'
import { failpoint } from './failpoint.ts'
import { KeyedQueue } from './keyed-queue.ts'
import { DurableLog } from './log.ts'

export const PARTICIPANT_DB = 'participant.db'

/** Reads `votes.txt` in `dir`: null when absent; throws naming the line when malformed. */
export function readVotesFile(dir: string): VotesFile | null {
  const path = join(dir, 'votes.txt')
  return existsSync(path) ? parseVotes(readFileSync(path, 'utf8')) : null
}

/** `state.txt`: `txn=committed|aborted` per decided transaction, in plain string order. */
export function renderStateFile(txns: Iterable<ParticipantTxn>): string {
  const decided = [...txns].filter((t) => t.state === 'committed' || t.state === 'aborted')
  const ids = decided.map((t) => t.txn).sort()
  const byId = new Map(decided.map((t) => [t.txn, t.state]))
  return ids.map((id) => `${id}=${byId.get(id)}\n`).join('')
}

export class ParticipantNode {
  readonly txns: Map<string, ParticipantTxn>
  readonly log: DurableLog<ParticipantRecord>
  readonly #view: FileView
  readonly #votes: VotesFile | null
  /** Each transaction's events are handled one at a time. */
  readonly #queue = new KeyedQueue()

  constructor(
    readonly dir: string,
    votes: VotesFile | null,
  ) {
    sweepTempFiles(dir)
    this.log = new DurableLog<ParticipantRecord>(join(dir, PARTICIPANT_DB))
    this.txns = recoverParticipant(this.log.records())
    this.#votes = votes
    this.#view = new FileView(join(dir, 'state.txt'), () => renderStateFile(this.txns.values()))
  }

  /** Rewrites state.txt from the log: a crash between log and view loses nothing. */
  start(): Promise<void> {
    return this.#view.refresh()
  }

  state(txn: string): ParticipantTxn {
    return this.txns.get(txn) ?? unknownTxn(txn)
  }

  /** Handles one event after every earlier event of the same transaction; resolves to the reply,
   * which is sent only after everything it depends on is durable. */
  handle(event: ParticipantEvent): Promise<Reply> {
    return this.#queue.run(event.txn, () => this.#run(event))
  }

  async #run(event: ParticipantEvent): Promise<Reply> {
    const [next, actions] = participantStep(this.state(event.txn), event)
    this.txns.set(event.txn, next)
    let reply: Reply | null = null
    for (const action of actions) {
      if (action.type === 'check')
        return this.#run({ type: 'checked', txn: event.txn, ...this.#check(event.txn) })
      if (action.type === 'persist') await this.#persist(action.record)
      if (action.type === 'reply') reply = action.reply
    }
    if (reply === null) throw new Error(`assertion: no reply to ${event.type} ${event.txn}`)
    return reply
  }

  async #persist(record: ParticipantRecord): Promise<void> {
    await this.log.append(record)
    if (record.state === 'prepared') {
      failpoint('participant-after-vote-logged', record.txn)
      return
    }
    await this.#view.refresh()
    failpoint('participant-after-outcome-logged', record.txn)
  }

  /** The resource's own verdict on `txn`. */
  #check(txn: string): { vote: Vote; reason?: string } {
    return this.#votes === null ? { vote: 'yes' } : voteFromFile(this.#votes, txn)
  }

  counts(): Record<string, number> {
    const counts: Record<string, number> = { prepared: 0, committed: 0, aborted: 0 }
    for (const t of this.txns.values()) counts[t.state] = (counts[t.state] ?? 0) + 1
    return counts
  }

  close(): void {
    this.log.close()
  }
}
