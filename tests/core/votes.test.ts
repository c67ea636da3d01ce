// votes.txt (lib/core/votes.ts): line N is this participant's vote for transaction tN.
import { describe, expect, test } from 'bun:test'
import { parseVotes, voteFromFile, type Vote } from '../../lib/core/index.ts'

describe('parseVotes and voteFromFile', () => {
  // Rule: line N of votes.txt is the vote for tN (Compatibility); any case, surrounding spaces and
  // CRLF allowed, trailing blank lines ignored.
  test.each([
    ['LF', 'yes\nno\n', ['yes', 'no']],
    ['no final newline', 'yes\nno', ['yes', 'no']],
    ['CRLF', 'yes\r\nno\r\n', ['yes', 'no']],
    ['trailing blank lines', 'no\nyes\n\n \n\r\n', ['no', 'yes']],
    ['any case and spaces', ' YES \n\tNo\nyEs', ['yes', 'no', 'yes']],
    ['a byte-order mark', '\uFEFFyes\nno\n', ['yes', 'no']],
    ['an empty file', '', []],
    ['only blank lines', '\n\n', []],
  ])('parses %s', (_, text, want) => {
    expect(parseVotes(text)).toEqual(want as Vote[])
  })

  test.each([
    ['a bad word', 'yes\nmaybe\n', 'votes.txt line 2: expected "yes" or "no", got "maybe"'],
    [
      'a bad word with CRLF',
      'yes\r\nno\r\ny\r\n',
      'votes.txt line 3: expected "yes" or "no", got "y"',
    ],
    ['a blank line inside', 'yes\n\nno\n', 'votes.txt line 2: expected "yes" or "no", got ""'],
    ['a bad first line', 'true\n', 'votes.txt line 1: expected "yes" or "no", got "true"'],
  ])('throws on %s, naming the line', (_, text, error) => {
    expect(() => parseVotes(text)).toThrow(error)
  })

  const votes = parseVotes('yes\nno\nyes\n')
  test.each([
    ['t1', { vote: 'yes' }],
    ['t2', { vote: 'no', reason: 'votes.txt votes no on t2' }],
    ['t3', { vote: 'yes' }],
    // Rule: when votes.txt exists, a transaction with no line gets no (Compatibility).
    ['t4', { vote: 'no', reason: 'votes.txt has no line for t4' }],
    ['t1000', { vote: 'no', reason: 'votes.txt has no line for t1000' }],
    ['t0', { vote: 'no', reason: 'votes.txt has no line for t0' }],
    ['t01', { vote: 'no', reason: 'votes.txt has no line for t01' }],
    ['T1', { vote: 'no', reason: 'votes.txt has no line for T1' }],
    ['order-1', { vote: 'no', reason: 'votes.txt has no line for order-1' }],
    ['t1.5', { vote: 'no', reason: 'votes.txt has no line for t1.5' }],
    ['tx', { vote: 'no', reason: 'votes.txt has no line for tx' }],
  ])('%s gets its vote from votes.txt', (txn, want) => {
    expect(voteFromFile(votes, txn)).toEqual(want as { vote: Vote; reason?: string })
  })

  test('an empty votes.txt votes no on everything', () => {
    expect(voteFromFile(parseVotes(''), 't1')).toEqual({
      vote: 'no',
      reason: 'votes.txt has no line for t1',
    })
  })
})
