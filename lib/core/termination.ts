// What a participant in doubt concludes from the answers it gets: the rules of termination,
// used by the participant's in-doubt step (./in-doubt.ts).
import type { CoordinatorTxn } from './coordinator.ts'
import type { Decision } from './types.ts'

/** What the coordinator answers about a transaction: `unknown` means it has no record of it,
 * which under presumed abort means abort. */
export type CoordinatorAnswer = 'unknown' | 'preparing' | Decision

export function coordinatorAnswer(state: CoordinatorTxn | undefined): CoordinatorAnswer {
  if (state === undefined) return 'unknown'
  // Only a durable decision is told: one still waiting for its write could be undone by a crash.
  return state.logged && state.decision !== null ? state.decision : 'preparing'
}

/** The outcome a coordinator's answer settles; null when the coordinator is alive but still
 * deciding (it will tell us), or when its answer is not one we understand. */
export function outcomeFromCoordinator(answer: unknown): Decision | null {
  if (answer === 'commit') return 'commit'
  if (answer === 'abort' || answer === 'unknown') return 'abort'
  return null
}

/** The outcome peers' answers (their states) settle: any committed or aborted peer decides it;
 * peers that are prepared, or did not answer (null), cannot. */
export function outcomeFromPeers(states: readonly unknown[]): Decision | null {
  if (states.includes('committed')) return 'commit'
  if (states.includes('aborted')) return 'abort'
  return null
}
