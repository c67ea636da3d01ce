// Deliberately broken variants of the protocol, built here in the test tree (never as switches
// in production code), to prove the simulator catches each kind of bug.
import {
  begin,
  coordinatorStep,
  participantStep,
  type CoordinatorEvent,
  type CoordinatorTxn,
  type Vote,
} from '../../lib/core/index.ts'
import { realProtocol, type Protocol } from './cluster.ts'

/** A store that loses the last record it persisted when the node crashes. */
const losesLastRecord: Protocol = {
  ...realProtocol,
  onCrash: (records) => void records.pop(),
}

/** A coordinator that commits once a majority voted yes, instead of all. */
const decidesOnMajority: Protocol = {
  ...realProtocol,
  coordinatorStep(state: CoordinatorTxn, event: CoordinatorEvent, env) {
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
}

/** A coordinator that sends its decision before the decision is logged. */
const sendsBeforePersisting: Protocol = {
  ...realProtocol,
  order: (actions) => [
    ...actions.filter((a) => a.type === 'send'),
    ...actions.filter((a) => a.type === 'persist'),
  ],
}

/** A coordinator that forces nothing: even a commit decision only rides a later flush. */
const forcesNothing: Protocol = {
  ...realProtocol,
  order: (actions) => actions.map((a) => (a.type === 'persist' ? { ...a, lazy: true } : a)),
}

/** A coordinator that names read-only participants as peers to ask in doubt: they keep no
 * record, so asked later they abort as if they had never voted. */
const asksReadOnlyPeers: Protocol = {
  ...realProtocol,
  begin(txn, participants, now, env, ops) {
    const [state, actions] = begin(txn, participants, now, env, ops)
    const everyone = actions.map((a) =>
      a.type === 'send' && a.message.type === 'prepare'
        ? { ...a, message: { ...a.message, participants } }
        : a,
    )
    return [state, everyone]
  },
}

/** A coordinator that times out a one-phase prepare like a two-phase one and aborts, although
 * the participant may have committed on its own and only the answer was lost. */
const timesOutOnePhase: Protocol = {
  ...realProtocol,
  coordinatorStep(state, event, env) {
    if (state.onePhase && event.type === 'tick') {
      const { onePhase: _, ...twoPhase } = state
      return coordinatorStep(twoPhase, event, env)
    }
    return coordinatorStep(state, event, env)
  },
}

/** A participant that gives up waiting and aborts on its own after voting yes. */
const abortsWhenInDoubt: Protocol = {
  ...realProtocol,
  participantStep(state, event, env) {
    if (
      event.type === 'tick' &&
      state.state === 'prepared' &&
      state.askAt !== null &&
      event.now >= state.askAt
    ) {
      return participantStep(state, { type: 'decide', txn: state.txn, decision: 'abort' }, env)
    }
    return participantStep(state, event, env)
  },
}

export const BROKEN: Record<string, Protocol> = {
  'loses-last-record': losesLastRecord,
  'decides-on-majority': decidesOnMajority,
  'sends-before-persisting': sendsBeforePersisting,
  'forces-nothing': forcesNothing,
  'asks-read-only-peers': asksReadOnlyPeers,
  'times-out-one-phase': timesOutOnePhase,
  'aborts-when-in-doubt': abortsWhenInDoubt,
}
