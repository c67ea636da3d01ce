// A first-in, first-out queue whose oldest item comes off in O(1).

/**
 * Items in the order they were pushed; `shift` takes the oldest. A Set or Map used as such a
 * queue (`values().next()`, then `delete`) is not O(1) in Bun: JavaScriptCore keeps a deleted
 * entry's slot until the table is rebuilt, and iteration walks past every one of them, so taking
 * the oldest of 10,000 retained ids cost about 12 µs where this costs under one. An array whose
 * head moves on, cut down once the dead part is the larger half, is.
 */
export class Fifo<T> {
  #items: (T | undefined)[] = []
  #head = 0

  get size(): number {
    return this.#items.length - this.#head
  }

  push(item: T): void {
    this.#items.push(item)
  }

  /** The oldest item, taken off; undefined when empty. */
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head++] = undefined // not kept alive by the dead part
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return item
  }
}
