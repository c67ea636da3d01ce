// The text of state.txt, kept so that recording an outcome costs O(1) and a node that has
// decided millions of transactions holds their text and little else.

/** A run of the rendered text's lines, in id order, with the id of its first line. */
type Run = { first: string; text: string }

/** A run is cut in two once it passes twice this many characters. */
const RUN_CHARS = 32 * 1024

/**
 * `state.txt`: `txn=committed|aborted` per decided transaction, in plain string order. The
 * rendered text is kept in runs of lines; an outcome joins, when it arrives, either the tail
 * (an id past every one recorded: a start-up reading its log in key order) or a short list that
 * the next rendering sorts and splices into the runs it falls in, each found by binary search.
 * No map or array per transaction is kept: in a generational collector a large container that
 * keeps changing is scanned again at every minor collection, which for a million ids doubled
 * the cost of everything else the node allocates.
 */
export class StateLines {
  /** The lines rendered, in id order. */
  #runs: Run[] = []
  /** Lines recorded since, each past every id before it; and the tail's first id. */
  #tail = ''
  #tailFirst = ''
  /** The greatest id in the runs and the tail. */
  #last: string | null = null
  /** Outcomes recorded since the last rendering otherwise: id, state, id, state… */
  #added: string[] = []
  #rendered: string | null = ''

  /** Records `txn`'s outcome (its last one counts). */
  set(txn: string, state: string): void {
    this.#rendered = null
    if (this.#added.length > 0 || (this.#last !== null && txn <= this.#last)) {
      this.#added.push(txn, state)
      return
    }
    if (this.#tail === '') this.#tailFirst = txn
    this.#tail += `${txn}=${state}\n`
    this.#last = txn
    if (this.#tail.length >= RUN_CHARS) this.#sealTail()
  }

  render(): string {
    if (this.#rendered !== null) return this.#rendered
    this.#sealTail()
    if (this.#added.length > 0) this.#splice(this.#added)
    this.#added = []
    const text = this.#runs.map((run) => run.text).join('')
    // The runs become slices of the one text, which is all that stays in memory.
    let at = 0
    for (const run of this.#runs) {
      const end = at + run.text.length
      run.text = text.slice(at, end)
      at = end
    }
    this.#rendered = text
    return text
  }

  /** Appends the tail to the last run, or makes it a run of its own once the last is full. */
  #sealTail(): void {
    if (this.#tail === '') return
    const last = this.#runs.at(-1)
    if (last !== undefined && last.text.length + this.#tail.length <= 2 * RUN_CHARS) {
      last.text += this.#tail
    } else this.#runs.push({ first: this.#tailFirst, text: this.#tail })
    this.#tail = ''
  }

  /** Splices `added` (id, state, …) into the runs, each id into the run whose range holds it. */
  #splice(added: readonly string[]): void {
    const [ids, states] = sortedLast(added)
    const runs = this.#runs
    const spliced: Run[] = []
    let i = 0
    for (let r = 0; r < runs.length || (r === 0 && i < ids.length); r++) {
      const next = runs[r + 1]?.first
      let j = i
      while (j < ids.length && (next === undefined || ids[j]! < next)) j++
      const text = runs[r]?.text ?? ''
      if (j === i) spliced.push(runs[r]!)
      else spliced.push(...cut(spliceLines(text, ids, states, i, j)))
      i = j
    }
    this.#runs = spliced
    if (this.#last === null || ids.at(-1)! > this.#last) this.#last = ids.at(-1)!
  }
}

/** The ids of `added` (id, state, …) in plain string order, each once with its last state. */
function sortedLast(added: readonly string[]): [string[], string[]] {
  const order = Array.from({ length: added.length / 2 }, (_, k) => k)
  // Stable, so of one id's outcomes the last recorded comes last.
  order.sort((a, b) => (added[2 * a]! < added[2 * b]! ? -1 : added[2 * a]! > added[2 * b]! ? 1 : 0))
  const ids: string[] = []
  const states: string[] = []
  for (const k of order) {
    const id = added[2 * k]!
    const state = added[2 * k + 1]!
    if (ids.at(-1) === id) {
      states[states.length - 1] = state
    } else {
      ids.push(id)
      states.push(state)
    }
  }
  return [ids, states]
}

/** `text` (lines in id order) with the lines of `ids[from..to)` (in order) put in their
 * places, each replacing the line of the same id if there is one. */
function spliceLines(
  text: string,
  ids: readonly string[],
  states: readonly string[],
  from: number,
  to: number,
): string {
  const parts: string[] = []
  let at = 0
  for (let k = from; k < to; k++) {
    const id = ids[k]!
    const place = seek(text, at, id)
    parts.push(text.slice(at, place), `${id}=${states[k]}\n`)
    at = place < text.length && idAt(text, place) === id ? text.indexOf('\n', place) + 1 : place
  }
  parts.push(text.slice(at))
  return parts.join('')
}

/** Where in `text`, from line start `from`, the first line whose id is not below `id` starts
 * (or the end): a binary search over character offsets, each probe moved to its line's start. */
function seek(text: string, from: number, id: string): number {
  let lo = from
  let hi = text.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const start = Math.max(lo, text.lastIndexOf('\n', mid - 1) + 1)
    if (idAt(text, start) < id) lo = text.indexOf('\n', start) + 1
    else hi = start
  }
  return lo
}

function idAt(text: string, start: number): string {
  return text.slice(start, text.indexOf('=', start))
}

/** `text` as runs of about RUN_CHARS, cut at line ends. */
function cut(text: string): Run[] {
  const runs: Run[] = []
  for (let at = 0; at < text.length;) {
    const end =
      text.length - at > 2 * RUN_CHARS ? text.indexOf('\n', at + RUN_CHARS) + 1 : text.length
    runs.push({ first: idAt(text, at), text: text.slice(at, end) })
    at = end
  }
  return runs
}
