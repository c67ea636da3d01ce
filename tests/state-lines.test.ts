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
