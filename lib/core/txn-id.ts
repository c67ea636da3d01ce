/** Transaction ids are safe in a URL path, a file line (`t1=commit`) and a SQL literal. */
export const TXN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

export function isTxnId(value: unknown): value is string {
  return typeof value === 'string' && TXN_ID.test(value)
}

/** Why `value` is not a transaction id, in the words an error reply uses. */
export function txnIdError(value: unknown): string {
  if (value === undefined) return 'missing "txn": expected a transaction id such as "t1"'
  if (typeof value !== 'string') return `invalid "txn": expected a string, got ${typeof value}`
  const shown = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  const rule = '1-128 of A-Z a-z 0-9 . _ : - starting with a letter or digit'
  return `invalid "txn" ${shown}: expected ${rule}`
}
