// state.txt's lines (StateLines): whatever order outcomes arrive and are forgotten in, each
// rendering is every recorded transaction once, in plain string order, with its last outcome.
import { expect, test } from 'bun:test'
import { StateLines, mulberry32 } from '../lib.ts'

/** What state.txt must show for `states`, computed the obvious way. */
function expected(states: Map<string, string>): string {
  return [...states.keys()]
    .sort()
    .map((id) => `${id}=${states.get(id)}\n`)
    .join('')
}

test('renderings match a sort of the recorded outcomes through random records and forgets', () => {
  const random = mulberry32(7)
  const lines = new StateLines()
  const states = new Map<string, string>()
  for (let step = 0; step < 5000; step++) {
    // Few ids, so the same one is recorded, forgotten and recorded again.
    const id = `t${Math.floor(random() * 300)}`
    const roll = random()
    if (roll < 0.15) {
      lines.set(id, null)
      states.delete(id)
    } else {
      const state = roll < 0.6 ? 'committed' : 'aborted'
      lines.set(id, state)
      states.set(id, state)
    }
    if (random() < 0.1) expect(lines.render()).toBe(expected(states))
  }
  expect(lines.render()).toBe(expected(states))
})

test('plain string order, not numeric: t10 sorts before t2', () => {
  const lines = new StateLines()
  for (const id of ['t2', 't10', 't1']) lines.set(id, 'committed')
  expect(lines.render()).toBe('t1=committed\nt10=committed\nt2=committed\n')
  lines.set('t10', null)
  expect(lines.render()).toBe('t1=committed\nt2=committed\n')
})
