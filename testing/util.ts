// Small helpers the scripts (demo, bench, chaos, bank) share.

/** A whole-number flag, `fallback` when absent; a bad value is a one-line error and exit 2. */
export function integerFlag(
  value: string | undefined,
  fallback: number,
  name: string,
  min = 1,
): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min) {
    console.error(`error: invalid --${name} ${JSON.stringify(value)}: expected a number >= ${min}`)
    process.exit(2)
  }
  return n
}

/** Runs `f` over `items` with at most `limit` calls in flight; results keep the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, f: (t: T) => Promise<R>) {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await f(items[i]!)
  }
  await Promise.all(Array.from({ length: limit }, worker))
  return results
}
