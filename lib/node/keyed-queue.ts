/** Runs tasks one at a time per key (a transaction id), any number of keys concurrently. */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>()

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key)
    // An idle key starts its task at once: no turn of the event loop spent waiting for nothing.
    const result = previous === undefined ? task() : previous.then(task)
    const tail = result.catch(() => {})
    this.#tails.set(key, tail)
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return result
  }
}
