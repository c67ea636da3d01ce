// Transaction ids (lib/core/txn-id.ts): what a URL path, a file line and a SQL literal accept.
import { describe, expect, test } from 'bun:test'
import { isTxnId, txnIdError } from '../../lib/core/index.ts'

describe('isTxnId and txnIdError', () => {
  // Rule: transaction ids match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$; anything else is a 400.
  test.each([
    ['t1'],
    ['T'],
    ['0'],
    ['order-2024.06:01_a'],
    ['a..b'],
    ['a' + 'b'.repeat(127)], // 128 characters
  ])('%p is a transaction id', (id) => {
    expect(isTxnId(id)).toBe(true)
  })

  const rule = '1-128 of A-Z a-z 0-9 . _ : - starting with a letter or digit'
  test.each([
    ['empty', ''],
    ['with =', 't1=commit'],
    ['with a newline', 't1\n'],
    ['with a newline inside', 't1\nt2=commit'],
    ['with /', 'a/b'],
    ['starting with ..', '../etc'],
    ['starting with .', '.t1'],
    ['starting with -', '-t1'],
    ['with a space', 't 1'],
    ['with a quote', "t1'"],
    ['non-ASCII', 'tï'],
    ['129 characters', 'a'.repeat(129)],
  ])('%s is not a transaction id', (_, id) => {
    expect(isTxnId(id)).toBe(false)
    const shown = JSON.stringify(id.length > 40 ? `${id.slice(0, 40)}…` : id)
    expect(txnIdError(id)).toBe(`invalid "txn" ${shown}: expected ${rule}`)
  })

  test('a 200-character id is refused and shown cut to 40 characters', () => {
    const id = 'x'.repeat(200)
    expect(isTxnId(id)).toBe(false)
    expect(txnIdError(id)).toBe(`invalid "txn" "${'x'.repeat(40)}…": expected ${rule}`)
  })

  test.each([
    [undefined, 'missing "txn": expected a transaction id such as "t1"'],
    [1, 'invalid "txn": expected a string, got number'],
    [null, 'invalid "txn": expected a string, got object'],
    [['t1'], 'invalid "txn": expected a string, got object'],
    [true, 'invalid "txn": expected a string, got boolean'],
  ])('the non-string %p is refused: %s', (value, error) => {
    expect(isTxnId(value)).toBe(false)
    expect(txnIdError(value)).toBe(error)
  })
})
