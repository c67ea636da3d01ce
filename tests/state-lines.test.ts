// state.txt's lines (StateLines): whatever order outcomes arrive in, each rendering is every
// recorded transaction once, in plain string order, with its last outcome.
import { expect, test } from 'bun:test'
import { mulberry32 } from '../lib.ts'
import { StateLines } from '../lib/node/state-lines.ts'

/** What state.txt must show for `states`, computed the obvious way. */
function expected(states: Map<string, string>): string {
  return [...states.keys()]
    .sort()
    .map((id) => `${id}=${states.get(id)}\n`)
    .join('')
}

test('renderings match a sort of the outcomes, through thousands of random records', () => {
  const random = mulberry32(7)
  const lines = new StateLines()
  const states = new Map<string, string>()
  for (let step = 0; step < 5000; step++) {
    // Ids of varying length, some recorded again with another outcome.
    const id = `t${Math.floor(random() * 3000)}`
    const state = random() < 0.6 ? 'committed' : 'aborted'
    lines.set(id, state)
    states.set(id, state)
    if (random() < 0.05) expect(lines.render()).toBe(expected(states))
  }
  expect(lines.render()).toBe(expected(states))
})

test('plain string order, not numeric: t10 sorts before t2', () => {
  const lines = new StateLines()
  lines.set('t2', 'committed')
  expect(lines.render()).toBe('t2=committed\n')
  for (const id of ['t10', 't1']) lines.set(id, 'aborted')
  expect(lines.render()).toBe('t1=aborted\nt10=aborted\nt2=committed\n')
})

test('a long history read in key order, then outcomes in any order, across many runs', () => {
  const random = mulberry32(11)
  const lines = new StateLines()
  const states = new Map<string, string>()
  const record = (id: string, state: string) => {
    lines.set(id, state)
    states.set(id, state)
  }
  // A start-up: 20,000 ids in key order (several hundred KB: many runs), rendered once.
  const history = Array.from({ length: 20_000 }, (_, i) => `h-${i}`).sort()
  for (const id of history) record(id, 'committed')
  expect(lines.render()).toBe(expected(states))
  for (let step = 0; step < 20_000; step++) {
    const roll = random()
    // New ids before, among and after the history's; some of the history's recorded again.
    if (roll < 0.3) record(`z-${step}`, 'committed')
    else if (roll < 0.6) record(`a-${Math.floor(random() * 1e6)}`, 'aborted')
    else if (roll < 0.9) record(`h-${Math.floor(random() * 30_000)}`, 'committed')
    else record(history[Math.floor(random() * history.length)]!, 'aborted')
    if (random() < 0.002) expect(lines.render()).toBe(expected(states))
  }
  expect(lines.render()).toBe(expected(states))
  // The whole history again, backwards: every run's first line among them.
  for (const id of history.toReversed()) record(id, 'aborted')
  expect(lines.render()).toBe(expected(states))
  // Nothing recorded since: the same text again.
  expect(lines.render()).toBe(expected(states))
})

test('an empty view renders empty, and one outcome below every other goes first', () => {
  const lines = new StateLines()
  expect(lines.render()).toBe('')
  lines.set('m', 'committed')
  lines.set('n', 'committed')
  expect(lines.render()).toBe('m=committed\nn=committed\n')
  lines.set('a', 'aborted')
  lines.set('m', 'aborted')
  expect(lines.render()).toBe('a=aborted\nm=aborted\nn=committed\n')
})
