// A prepared participant in doubt (cooperative termination): past `inDoubtAfterMs` it asks the
// coordinator first, then, when the coordinator gives no answer it understands, every peer.
// Blocking is correct: it keeps asking, with backoff, and never decides on its own.
import { backoffMs } from './backoff.ts'
import {
  outcomeReply,
  persistOf,
  onDecide,
  type ParticipantEnv,
  type ParticipantEvent,
  type ParticipantTxn,
  type ParticipantAction,
} from './participant.ts'
import { outcomeFromCoordinator, outcomeFromPeers } from './termination.ts'

type Step = [ParticipantTxn, ParticipantAction[]]

/** The events of termination: the clock, the answers to its questions, and peers' questions. */
export type InDoubtEvent = Extract<
  ParticipantEvent,
  { type: 'tick' | 'coordinator-answer' | 'peer-answers' | 'decision-request' }
>

export function inDoubtStep(state: ParticipantTxn, event: InDoubtEvent, env: ParticipantEnv): Step {
  switch (event.type) {
    case 'decision-request':
      return onDecisionRequest(state)
    case 'tick':
      return onTick(state, event.now, env)
    case 'coordinator-answer': {
      if (!asking(state)) return [state, []]
      const outcome = event.answer === null ? null : outcomeFromCoordinator(event.answer)
      if (outcome !== null) return onDecide(state, outcome, false)
      // A coordinator still deciding will tell us; one that gave no answer we understand (down,
      // or another service on that address) cannot, so the peers are asked.
      if (event.answer === 'preparing' || state.peers.length === 0) {
        return unresolved(state, event.now, env)
      }
      return [state, [{ type: 'ask-peers', txn: state.txn, peers: state.peers }]]
    }
    case 'peer-answers': {
      if (!asking(state)) return [state, []]
      const outcome = outcomeFromPeers(event.states)
      return outcome === null ? unresolved(state, event.now, env) : onDecide(state, outcome, false)
    }
  }
}

/** Whether a question about `state` is out (its answer is still of use). */
function asking(state: ParticipantTxn): boolean {
  return state.state === 'prepared' && state.askAt === null
}

function onTick(state: ParticipantTxn, now: number, env: ParticipantEnv): Step {
  if (state.state !== 'prepared' || state.askAt === null || now < state.askAt) return [state, []]
  const next: ParticipantTxn = { ...state, askAt: null }
  if (state.coordinator !== null) {
    return [next, [{ type: 'ask-coordinator', txn: state.txn, coordinator: askedNext(state) }]]
  }
  if (state.peers.length > 0)
    return [next, [{ type: 'ask-peers', txn: state.txn, peers: state.peers }]]
  return unresolved(next, now, env)
}

/** Which coordinator to ask: its own first, then, with coordinators sharing one log, each of
 * them in turn (any answers from the shared log; its own may be gone, its work taken over). */
function askedNext(state: ParticipantTxn): string {
  const all = [state.coordinator!, ...(state.coordinators ?? [])]
  return all[state.asks % all.length]!
}

/** Nobody asked knew the outcome: ask again after a backoff. */
function unresolved(state: ParticipantTxn, now: number, env: ParticipantEnv): Step {
  const askAt = now + backoffMs(state.asks, env.prng, env.backoff)
  return [{ ...state, askAt, asks: state.asks + 1 }, []]
}

function onDecisionRequest(state: ParticipantTxn): Step {
  if (state.state === 'committed' || state.state === 'aborted') {
    return [state, [outcomeReply(state.txn, state.state)]]
  }
  if (state.state !== 'unknown') {
    return [state, [{ type: 'reply', reply: { kind: 'uncertain', txn: state.txn } }]]
  }
  // Never voted, so free to abort: after this it can never vote yes, and the asker may abort.
  const reason = 'aborted on a cooperative termination request from a peer in doubt'
  const next: ParticipantTxn = { ...state, state: 'aborted', reason }
  return [next, [persistOf(next, 'release'), outcomeReply(state.txn, 'aborted')]]
}
