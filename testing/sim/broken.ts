// Deliberately broken variants, built here in the test tree (never as switches in production
// code), to prove the simulator catches each kind of bug: in the protocol core, and in the
// shells that carry it out (the glue between a node and its disk).
import {
  begin,
  coordinatorStep,
  decide,
  onDecide,
  participantStep,
  prepareAgain,
  resume,
  type CoordinatorAction,
  type CoordinatorRecord,
  type Vote,
} from '../../lib/core/index.ts'
import type { CoordinatorCore } from '../../lib/node/coordinator-node.ts'
import type {
  Checkpoints,
  CoordinatorLog,
  ParticipantStore,
  SharedLog,
} from '../../lib/store/store.ts'
import type { Protocol } from './cluster.ts'

const realCore: CoordinatorCore = { begin, step: coordinatorStep, resume }

/** A coordinator core whose every step's actions pass through `change`. */
function reordering(
  change: (actions: CoordinatorAction[]) => CoordinatorAction[],
): CoordinatorCore {
  return {
    begin: (...args) => {
      const [state, actions] = begin(...args)
      return [state, change(actions)]
    },
    step: (state, event, env) => {
      const [next, actions] = coordinatorStep(state, event, env)
      return [next, change(actions)]
    },
    resume: (state, env, now) => {
      const [next, actions] = resume(state, env, now)
      return [next, change(actions)]
    },
  }
}

/** A store that loses the last record it persisted when the node crashes. */
const losesLastRecord: Protocol = { onCrash: (records) => void records.pop() }

/** A coordinator that commits once a majority voted yes, instead of all. */
const decidesOnMajority: Protocol = {
  coordinator: {
    ...realCore,
    step(state, event, env) {
      if (event.type !== 'vote' || state.phase !== 'preparing' || event.vote !== 'yes') {
        return coordinatorStep(state, event, env)
      }
      const yes = Object.values(state.votes).filter((v) => v === 'yes').length + 1
      if (yes * 2 <= state.participants.length) return coordinatorStep(state, event, env)
      // Pretend everyone else said yes too: the tally then "wins".
      const votes: Record<string, Vote> = {}
      for (const id of state.participants) if (id !== event.from) votes[id] = 'yes'
      return coordinatorStep({ ...state, votes }, event, env)
    },
  },
}

/** A coordinator that sends its decision before the decision is logged. */
const sendsBeforePersisting: Protocol = {
  coordinator: reordering((actions) => [
    ...actions.filter((a) => a.type === 'send'),
    ...actions.filter((a) => a.type === 'persist'),
  ]),
}

/** A coordinator that forces nothing: even a commit decision only rides a later flush. */
const forcesNothing: Protocol = {
  coordinator: reordering((actions) =>
    actions.map((a) => (a.type === 'persist' ? { ...a, lazy: true } : a)),
  ),
}

/** A coordinator that names read-only participants as peers to ask in doubt: they keep no
 * record, so asked later they abort as if they had never voted. */
const asksReadOnlyPeers: Protocol = {
  coordinator: {
    begin(txn, participants, now, env, ops) {
      const [state, actions] = begin(txn, participants, now, env, ops)
      const everyone = actions.map((a) =>
        a.type === 'send' && a.message.type === 'prepare'
          ? { ...a, message: { ...a.message, participants } }
          : a,
      )
      return [state, everyone]
    },
    step: coordinatorStep,
    resume,
  },
}

/** A coordinator that times out a one-phase prepare like a two-phase one and aborts, although
 * the participant may have committed on its own and only the answer was lost. */
const timesOutOnePhase: Protocol = {
  coordinator: {
    ...realCore,
    step(state, event, env) {
      if (state.onePhase && event.type === 'tick') {
        const { onePhase: _, ...twoPhase } = state
        return coordinatorStep(twoPhase, event, env)
      }
      return coordinatorStep(state, event, env)
    },
  },
}

/** A participant that gives up waiting and aborts on its own after voting yes. */
const abortsWhenInDoubt: Protocol = {
  participantStep(state, event, env) {
    const due = state.state === 'prepared' && state.askAt !== null
    if (event.type === 'tick' && due && event.now >= state.askAt!) {
      return participantStep(state, { type: 'decide', txn: state.txn, decision: 'abort' }, env)
    }
    return participantStep(state, event, env)
  },
}

/** A coordinator shell that drops a write that failed (as this project's once did): the
 * transaction then waits for ever on a decision nobody will send. */
const dropsFailedWrites: Protocol = {
  coordinator: {
    ...realCore,
    step: (state, event, env) =>
      event.type === 'persist-failed' ? [state, []] : coordinatorStep(state, event, env),
  },
}

/** Shells that answer before their write completes: the log and the store report a record
 * durable as soon as it is queued, and the flush follows. */
const answersBeforeWriting: Protocol = {
  wrapLog: (log: CoordinatorLog<CoordinatorRecord>) => ({
    records: () => log.records(),
    append(record, effect, lazy) {
      void log.append(record, effect, lazy).catch(() => {})
      return Promise.resolve()
    },
    get flushes() {
      return log.flushes
    },
    close: () => log.close(),
  }),
  wrapStore: (store: ParticipantStore) =>
    new Proxy(store, {
      get(target, key, receiver) {
        if (key !== 'persist') return Reflect.get(target, key, receiver)
        return (...args: Parameters<ParticipantStore['persist']>) => {
          void target.persist(...args).catch(() => {})
          return Promise.resolve()
        }
      },
    }),
}

/** A batch coordinator that, after a restart, prepares again a transaction it had already
 * decided, as if it were undecided: it may now decide the other way. */
const preparesDecidedAgain: Protocol = {
  coordinator: {
    ...realCore,
    resume(state, env, now) {
      if (!env.retryUndecided || state.decision === null || state.phase === 'done') {
        return resume(state, env, now)
      }
      const undecided = { ...state, phase: 'preparing' as const, decision: null, logged: false }
      return prepareAgain(undecided, env, now)
    },
  },
}

/** Checkpoints that forget: a finished transaction's records are folded away, but the folded
 * record is never looked up, so the node takes it for one it never heard of. A client that asks
 * again about an old transaction (after the coordinator restarted) has it run a second time. */
function forgetting<T extends object>(target: T): T {
  return new Proxy(target, {
    get(target, key) {
      // The target itself as `this`: its private fields are not the proxy's.
      const value = Reflect.get(target, key, target) as unknown
      if (typeof value === 'function') return value.bind(target)
      if (key !== 'checkpoints' || value === undefined) return value
      return { ...(value as Checkpoints<unknown>), folded: () => undefined }
    },
  })
}

const forgetsFolded: Protocol = {
  wrapLog: (log: CoordinatorLog<CoordinatorRecord>) => forgetting(log),
  wrapStore: (store: ParticipantStore) => forgetting(store),
}

/** Three-phase: the textbook termination (Skeen, 1981), which needs no quorum: any committed
 * or precommitted participant reached → commit, else abort. Sound with crashes alone; when a
 * partition splits the participants, each side decides on its own. */
const terminatesWithoutQuorum: Protocol = {
  participantStep(state, event, env) {
    if (event.type !== 'state-reports' || !state.three?.terminating) {
      return participantStep(state, event, env)
    }
    const reached = event.reports.flatMap((r) => ('report' in r && r.report ? [r.report] : []))
    const states = [state.state, ...reached.map((r) => r.state)]
    const decision = states.includes('aborted')
      ? 'abort'
      : states.includes('committed') || states.includes('precommitted')
        ? 'commit'
        : 'abort'
    const idle = { ...state, three: { ...state.three, terminating: null } }
    const [next, actions] = onDecide(idle, decision, false)
    const to = state.peers.filter((p) => p !== state.three!.self)
    return [next, [...actions, { type: 'tell-outcome', txn: state.txn, decision, to }]]
  },
}

/** Three-phase: a participant that commits when its in-doubt time runs out, as if a timeout in
 * `prepared` meant the coordinator must have gone on to commit. */
const commitsOnTimeout: Protocol = {
  participantStep(state, event, env) {
    const due = event.type === 'tick' && state.askAt !== null && event.now >= state.askAt
    if (state.three && due && state.state === 'prepared') return onDecide(state, 'commit', false)
    return participantStep(state, event, env)
  },
}

/** Three-phase: a coordinator that commits on the first precommit acknowledgement, before a
 * quorum is precommitted. */
const commitsBeforeQuorum: Protocol = {
  coordinator: {
    ...realCore,
    step(state, event, env) {
      if (event.type !== 'pre-ack' || state.phase !== 'precommitting') {
        return coordinatorStep(state, event, env)
      }
      return decide({ ...state, precommitted: [event.from] }, 'commit', env)
    },
  },
}

/** The variants of three-phase commit, run on its clusters (`--protocol 3pc`). */
export const BROKEN_3PC: Record<string, Protocol> = {
  'terminates-without-quorum': terminatesWithoutQuorum,
  'commits-on-timeout': commitsOnTimeout,
  'commits-before-quorum': commitsBeforeQuorum,
}

export const BROKEN: Record<string, Protocol> = {
  'loses-last-record': losesLastRecord,
  'decides-on-majority': decidesOnMajority,
  'sends-before-persisting': sendsBeforePersisting,
  'forces-nothing': forcesNothing,
  'asks-read-only-peers': asksReadOnlyPeers,
  'times-out-one-phase': timesOutOnePhase,
  'aborts-when-in-doubt': abortsWhenInDoubt,
  'drops-failed-writes': dropsFailedWrites,
  'answers-before-writing': answersBeforeWriting,
  'prepares-decided-again': preparesDecidedAgain,
  'forgets-folded': forgetsFolded,
}

/** Several coordinators: a shared log whose writes do not check the writer's lease, so one
 * taken over (stalled, or cut off from the database) still writes when it wakes. */
const noFencing: Protocol = { leaseRules: { fencing: false } }

/** Several coordinators: a coordinator that begins a transaction without claiming it, so the
 * log shows no trace of it until its first record: another coordinator asked about it answers
 * `unknown` (presumed abort), and one that a client retries at runs it a second time. */
const noClaim: Protocol = {
  wrapShared: (log: SharedLog<CoordinatorRecord>) =>
    new Proxy(log, {
      get(target, key) {
        if (key === 'claim') return async () => true
        const value = Reflect.get(target, key, target) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      },
    }),
}

/** Several coordinators: takeover of a lease that has not run out (a coordinator that is
 * merely slow, or whose renewal is on its way). */
const takesOverLiveLease: Protocol = { leaseRules: { expiredOnly: false } }

/** Several coordinators: takeover without the grace rule, so that after the database was out
 * of reach (every lease ran out) the first to come back takes over all the others. */
const takesOverWithoutGrace: Protocol = { leaseRules: { grace: false } }

/** Several coordinators: a coordinator that never looks for what it owns on the log but does
 * not run (as this project's once did): neither after a failed takeover or claim, nor when a
 * repeated claim finds its own (an orphan). A takeover or a claim written while its answer was
 * lost leaves a transaction nobody finishes, its participants prepared, its client unanswered. */
const forgetsLostWork: Protocol = {
  wrapShared: (log: SharedLog<CoordinatorRecord>) =>
    new Proxy(log, {
      get(target, key) {
        if (key === 'unfinished') return async () => []
        if (key === 'claim') {
          return async (...args: Parameters<typeof target.claim>) =>
            (await target.claim(...args)) === true
        }
        const value = Reflect.get(target, key, target) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      },
    }),
}

/** The variants of several coordinators on one shared log (`--coordinators N`). */
export const BROKEN_SHARED: Record<string, Protocol> = {
  'no-fencing': noFencing,
  'no-claim': noClaim,
  'takes-over-live-lease': takesOverLiveLease,
  'takes-over-without-grace': takesOverWithoutGrace,
  'forgets-lost-work': forgetsLostWork,
}
