// Files that are replaced whole and survive a crash: write a temp file, fsync it, rename it over
// the old one, fsync the directory. `Bun.write` alone is neither atomic nor durable.
import { closeSync, fsyncSync, openSync, readdirSync, renameSync } from 'node:fs'
import { unlinkSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

let tempSeq = 0

function tempPathOf(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${tempSeq++}.tmp`)
}

/** Makes a rename (or create) in `dir` durable. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Replaces `path` with `data` so that a reader or a crash sees either the old or the new file,
 * and a power loss the new one once this returns. Synchronous: it is for small files written
 * rarely (a participant's address at start-up), and node:fs/promises alone takes a millisecond
 * to load, which a batch coordinator, whose whole run is a few tens of them, never needs. */
export function writeFileAtomicSync(path: string, data: string): void {
  const temp = tempPathOf(path)
  const fd = openSync(temp, 'wx', 0o644)
  try {
    writeFileSync(fd, data)
    fsyncSync(fd)
  } catch (error) {
    closeSync(fd)
    unlinkQuietly(temp)
    throw error
  }
  closeSync(fd)
  try {
    renameSync(temp, path)
  } catch (error) {
    unlinkQuietly(temp) // never renamed, so never seen: nobody else will remove it
    throw error
  }
  fsyncDirSync(dirname(path))
}

/** Replaces `path` with `data`, atomically for readers and for a process crash but without the
 * fsyncs: a power loss may leave the old file or an empty one (fine for a view rebuilt at
 * start-up). Synchronous, because a small write to the page cache takes microseconds, where
 * each step through the thread pool of node:fs/promises costs a round trip of the event loop;
 * the classic /commit answers only once state.txt is written, so that is on its latency. */
export function replaceFileSync(path: string, data: string): void {
  const temp = tempPathOf(path)
  try {
    writeFileSync(temp, data, { flag: 'wx', mode: 0o644 })
    renameSync(temp, path)
  } catch (error) {
    unlinkQuietly(temp)
    throw error
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {}
}

/** Removes temp files a crash left behind in `dir` (they were never renamed, so never seen). */
export function sweepTempFiles(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (/^\..+\.\d+\.\d+\.tmp$/.test(name)) unlinkSync(join(dir, name))
  }
}

/** How many times its last rewrite's cost an unawaited rewrite of a view waits, at least. */
const VIEW_SPACING = 100
/** The longest an unawaited rewrite waits, however dear the last one was: how far a view may
 * lag its log. A view whose write takes more than a tenth of this (about 100 MB of view,
 * millions of transactions) then costs more than 1 %: such a node is better run with
 * `--no-views`. */
const VIEW_LAG_MAX_MS = 10_000

/**
 * A text file that shows a rendering of in-memory state (`state.txt`, `decision.txt`). It is
 * replaced atomically but not fsynced: the log is what is durable, and the node rebuilds the
 * file from it at start-up, so a power loss that takes the last rewrite loses nothing.
 * `refresh()` writes it at once (synchronously: nothing can interleave with a write).
 * `refreshSoon()` is for changes nobody waits on: one write within `delayMs` covers them all,
 * so a busy node rewrites the file a few times a second instead of once per transaction. The
 * file holds every transaction the node has seen, so its cost grows with the node's age: the
 * delay stretches to VIEW_SPACING times what the last write took, which keeps those rewrites
 * of a large view to about 1 % of the node's time however busy it is (by the clock: a rename
 * waiting on a busy disk blocks the event loop as surely as CPU work does). Never more than
 * VIEW_LAG_MAX_MS, though: a process stopped mid-write (SIGSTOP, a paused machine) counts the
 * stop as the write's cost, and must not leave its view minutes behind its log for it. A
 * `refresh()` someone waits for (the classic endpoints) is not delayed; its write, like every
 * write here, blocks the event loop while it lasts (about a millisecond per megabyte of view).
 */
export class FileView {
  /** How long the last write took (rendering included), in ms. */
  #costMs = 0
  #written: string | null = null
  #timer: Timer | null = null

  constructor(
    readonly path: string,
    private readonly render: () => string,
    readonly delayMs = 100,
    readonly maxDelayMs = VIEW_LAG_MAX_MS,
  ) {}

  refreshSoon(): void {
    if (this.#timer !== null) return
    this.#timer = setTimeout(
      () => {
        this.#timer = null
        this.refresh().catch((error) => console.error(`${basename(this.path)}: ${error}`))
      },
      Math.min(Math.max(this.delayMs, this.#costMs * VIEW_SPACING), this.maxDelayMs),
    )
    // The file is rebuilt from the log at start-up, so an exit need not wait for this write.
    this.#timer.unref()
  }

  /** Writes now what a pending `refreshSoon` would have written (a node stopping cleanly). */
  async settle(): Promise<void> {
    if (this.#timer === null) return
    clearTimeout(this.#timer)
    this.#timer = null
    await this.refresh()
  }

  /** Writes the file now, unless it already shows the state; rejects if the write failed. */
  async refresh(): Promise<void> {
    const started = performance.now()
    const text = this.render()
    if (text === this.#written) return
    replaceFileSync(this.path, text)
    this.#written = text
    this.#costMs = performance.now() - started
  }
}
