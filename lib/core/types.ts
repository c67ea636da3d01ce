// Words both roles share. Time enters the core as `now` (milliseconds) inside events, and
// randomness as a `Prng`, so the same core runs on a real clock or in a seeded simulation.

export type Decision = 'commit' | 'abort'
export type Vote = 'yes' | 'no'
/** What a participant answers a prepare: a vote, or `read-only` when its operations only read:
 * it has nothing to commit or abort, keeps no record, and is left out of phase two. */
export type Ballot = Vote | 'read-only'
/** A source of uniform numbers in [0, 1): `Math.random` in a shell, a seeded PRNG in tests. */
export type Prng = () => number
