// What a participant in doubt concludes from the answers it gets (lib/core/termination.ts).
// Rule: a prepared participant never decides alone; only an answer that knows the outcome
// settles it, and presumed abort makes a coordinator's "no record" an abort.
import { describe, expect, test } from 'bun:test'
import { outcomeFromCoordinator, outcomeFromPeers } from '../../lib/core/termination.ts'
import type { Decision } from '../../lib/core/types.ts'

describe('outcomeFromCoordinator', () => {
  test.each([
    ['commit', 'commit'],
    ['abort', 'abort'],
    ['unknown', 'abort'], // presumed abort: no record of it means it never committed
    ['preparing', null], // alive and still deciding: it will tell us
    ['COMMIT', null],
    ['', null],
    [undefined, null],
    [null, null],
    [1, null],
  ] as [unknown, Decision | null][])('the answer %p settles %p', (answer, want) => {
    expect(outcomeFromCoordinator(answer)).toBe(want)
  })
})

describe('outcomeFromPeers', () => {
  test.each([
    [['prepared', 'committed', null], 'commit'],
    [[null, 'aborted'], 'abort'],
    [['unknown', 'aborted'], 'abort'],
    // Peers that are prepared or unknown, or did not answer, cannot settle it.
    [['prepared', 'prepared'], null],
    [['prepared', null, 'unknown'], null],
    [[], null],
    [['commit', 'abort'], null], // peers answer with states, not decisions
  ] as [unknown[], Decision | null][])('the peer states %p settle %p', (states, want) => {
    expect(outcomeFromPeers(states)).toBe(want)
  })
})
