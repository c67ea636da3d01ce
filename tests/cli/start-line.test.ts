// The client's `SQL` keyword on the start line: `SQL TEXT [PARAMS] [ROWS N] [--on P]`, read into
// the `sql` operation it sends (lib/cli/start-line.ts); a malformed one is a usage error.
import { expect, test } from 'bun:test'
import { UsageError } from '../../lib/cli/args.ts'
import { readStartLine } from '../../lib/cli/start-line.ts'

const TEXT = 'UPDATE accounts SET balance = balance - $1 WHERE id = $2'

test('SQL takes its text, JSON parameters, ROWS and --on', () => {
  const { line } = readStartLine(['t1', 'SQL', TEXT, '[100, "a"]', 'ROWS', '1', '--on', 'ledger'])
  expect(line).toEqual({
    id: 't1',
    ops: [
      {
        op: { op: 'sql', text: TEXT, params: [100, 'a'], expect: { rows: 1 } },
        on: ['ledger'],
      },
    ],
  })
})

test('SQL without parameters, followed by another operation', () => {
  const { line } = readStartLine(['sql', 'SELECT 1', 'SET', 'k', '1'])
  expect(line.ops.map((o) => o.op)).toEqual([
    { op: 'sql', text: 'SELECT 1', params: [] },
    { op: 'set', key: 'k', value: 1 },
  ])
})

test.each([
  [['SQL'], 'start: SQL needs a statement'],
  [['SQL', 'SELECT 1', '[1,'], 'start: invalid SQL parameters "[1,": a JSON array'],
  [['SQL', 'SELECT 1', 'ROWS', 'x'], 'start: invalid ROWS "x": expected a number'],
  [['SQL', 'SELECT 1', 'ROWS', '1.5'], 'start: invalid ROWS 1.5: expected a whole number'],
])('%p is a usage error', (argv, message) => {
  expect(() => readStartLine(argv)).toThrow(new UsageError(message))
})
