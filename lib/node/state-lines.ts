// The text of state.txt, kept so that recording an outcome costs O(1).

/**
 * `state.txt`: `txn=committed|aborted` per decided transaction, in plain string order. An
 * outcome costs O(1) when it arrives: a new id joins a short list that the next rendering sorts
 * and merges into the ids rendered before, so a rewrite costs a merge and a join, and no
 * outcome pays for moving the whole sorted list (which, for a node that has decided a hundred
 * thousand transactions, an insertion in place would).
 */
export class StateLines {
  /** Ids in plain string order, as of the last rendering. */
  #sorted: string[] = []
  /** Ids first recorded since the last rendering, in arrival order. */
  #added: string[] = []
  readonly #states = new Map<string, string>()

  /** Records `txn`'s outcome. */
  set(txn: string, state: string): void {
    const size = this.#states.size
    this.#states.set(txn, state)
    // One lookup, not has() then set(): a start-up after a million transactions makes a million.
    if (this.#states.size > size) this.#added.push(txn)
  }

  render(): string {
    if (this.#added.length > 0) this.#sorted = merge(this.#sorted, this.#added.sort())
    this.#added = []
    return this.#sorted.map((id) => `${id}=${this.#states.get(id)}\n`).join('')
  }
}

/** The ids of two lists in plain string order (as the default sort orders), in that order. */
function merge(a: readonly string[], b: readonly string[]): string[] {
  const ids: string[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) ids.push(a[i]! < b[j]! ? a[i++]! : b[j++]!)
  while (i < a.length) ids.push(a[i++]!)
  while (j < b.length) ids.push(b[j++]!)
  return ids
}
