// What any JSON body must be, whatever it carries: nested at most MAX_JSON_DEPTH deep, numbers
// finite and exact, strings well-formed Unicode. Checked once, right after parsing, by a walk
// whose cost is linear in the body's size, so no body within the size limit can stall a node
// (a value nested 30,000 deep costs half a second to serialize), and nothing is stored other
// than it was sent (SQLite turns a lone surrogate into U+FFFD, JSON turns Infinity into null).

export const MAX_JSON_DEPTH = 64

/** The largest request body any node reads (a 413 beyond). */
export const MAX_BODY_BYTES = 1024 * 1024

/** Beyond this, integers are no longer exact in a double: 2^53 + 1 reads as 2^53. */
export const MAX_EXACT = Number.MAX_SAFE_INTEGER

/** Why `value` (parsed JSON) is refused, or null when it is fine. */
export function jsonProblem(value: unknown): string | null {
  const stack: [unknown, number][] = [[value, 1]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    const problem = scalarProblem(v)
    if (problem !== null) return problem
    if (v === null || typeof v !== 'object') continue
    if (depth > MAX_JSON_DEPTH) return `it is nested deeper than ${MAX_JSON_DEPTH} levels`
    if (Array.isArray(v)) {
      for (const item of v) stack.push([item, depth + 1])
      continue
    }
    for (const key in v) {
      if (!key.isWellFormed()) return 'a key is not well-formed Unicode (a lone surrogate)'
      stack.push([(v as Record<string, unknown>)[key], depth + 1])
    }
  }
  return null
}

function scalarProblem(v: unknown): string | null {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return 'a number is not finite'
    if (Math.abs(v) > MAX_EXACT) return `a number is beyond ±${MAX_EXACT}, where it is not exact`
  }
  if (typeof v === 'string' && !v.isWellFormed()) {
    return 'a string is not well-formed Unicode (a lone surrogate)'
  }
  return null
}
