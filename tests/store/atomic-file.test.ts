// Files replaced whole (lib/store/atomic-file.ts): a reader sees the old file or the new one,
// never a temp file; and a view (FileView) is rewritten at once, soon, or on settle, on a
// virtual clock here so that "not yet" is a statement about time, not about a race.
import { afterEach, describe, expect, jest, test } from 'bun:test'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  FileView,
  replaceFileSync,
  sweepTempFiles,
  writeFileAtomicSync,
} from '../../lib/store/atomic-file.ts'
import { cleanup, tempDir } from '../../testing/processes.ts'

afterEach(async () => {
  jest.useRealTimers()
  await cleanup()
})

const read = (path: string) => readFileSync(path, 'utf8')

describe.each([
  ['writeFileAtomicSync', writeFileAtomicSync],
  ['replaceFileSync', replaceFileSync],
])('%s', (_, replace) => {
  test('creates the file with exactly the data, and leaves no temp file', () => {
    const dir = tempDir()
    replace(join(dir, 'state.txt'), 't1=committed\n')
    expect(read(join(dir, 'state.txt'))).toBe('t1=committed\n')
    expect(readdirSync(dir)).toEqual(['state.txt'])
  })

  test('replaces a longer file whole: nothing of the old one is left', () => {
    const dir = tempDir()
    const path = join(dir, 'state.txt')
    writeFileSync(path, 't1=committed\nt2=aborted\nt3=committed\n')
    replace(path, 't1=aborted\n')
    expect(read(path)).toBe('t1=aborted\n')
    replace(path, '')
    expect(read(path)).toBe('')
    expect(readdirSync(dir)).toEqual(['state.txt'])
  })

  test('throws when the directory does not exist, and creates nothing', () => {
    const dir = tempDir()
    expect(() => replace(join(dir, 'missing', 'state.txt'), 'x')).toThrow('ENOENT')
    expect(readdirSync(dir)).toEqual([])
  })
})

// writeFileAtomicSync leaves its temp file behind when the rename fails (sweepTempFiles cleans
// it at the next start); replaceFileSync removes it at once.
test('replaceFileSync over a directory throws and leaves no temp file', () => {
  const dir = tempDir()
  mkdirSync(join(dir, 'state.txt'))
  writeFileSync(join(dir, 'state.txt', 'inside'), 'x') // a non-empty directory: no rename over it
  expect(() => replaceFileSync(join(dir, 'state.txt'), 'x')).toThrow()
  expect(readdirSync(dir)).toEqual(['state.txt'])
  expect(readdirSync(join(dir, 'state.txt'))).toEqual(['inside'])
})

test('sweepTempFiles removes the temp files a crash left, and nothing else', () => {
  const dir = tempDir()
  const left = [`.state.txt.${process.pid}.0.tmp`, '.decision.txt.4242.17.tmp']
  const kept = [
    'state.txt',
    '.hidden',
    'x.1.2.tmp', // no leading dot: not one of ours
    '.state.txt.pid.1.tmp', // not a process id
    '.state.txt.1.2.tmp.bak',
    'participant.db',
  ]
  for (const name of [...left, ...kept]) writeFileSync(join(dir, name), 'x')
  sweepTempFiles(dir)
  expect(readdirSync(dir).sort()).toEqual([...kept].sort())
})

describe('FileView', () => {
  /** A view of `lines`, counting how often it is rendered. */
  function view(delayMs?: number, maxDelayMs?: number) {
    const path = join(tempDir(), 'state.txt')
    const lines: string[] = []
    let renders = 0
    let stallMs = 0
    let burnMs = 0
    const render = () => {
      renders += 1
      if (stallMs > 0) Bun.sleepSync(stallMs) // off the CPU, as a stopped process is
      for (const until = performance.now() + burnMs; performance.now() < until;);
      stallMs = burnMs = 0
      return lines.map((l) => `${l}\n`).join('')
    }
    const file = new FileView(path, render, delayMs, maxDelayMs)
    const stallNextRender = (ms: number) => (stallMs = ms)
    return { file, lines, path, renders: () => renders, stallNextRender }
  }

  test('refresh writes the rendering at once', async () => {
    const { file, lines, path } = view()
    lines.push('t1=committed')
    await file.refresh()
    expect(read(path)).toBe('t1=committed\n')
    lines.push('t2=aborted')
    await file.refresh()
    expect(read(path)).toBe('t1=committed\nt2=aborted\n')
  })

  // The file is written only when the rendering changed: a rewrite of the same text is skipped
  // (seen here because a file changed behind the view's back stays as it was).
  test('refresh skips a rendering it has already written', async () => {
    const { file, lines, path } = view()
    lines.push('t1=committed')
    await file.refresh()
    writeFileSync(path, 'changed behind its back\n')
    await file.refresh()
    expect(read(path)).toBe('changed behind its back\n')
    lines.push('t2=aborted')
    await file.refresh()
    expect(read(path)).toBe('t1=committed\nt2=aborted\n')
  })

  test('refresh rejects when the write fails', async () => {
    const file = new FileView(join(tempDir(), 'missing', 'state.txt'), () => 'x')
    await expect(file.refresh()).rejects.toThrow('ENOENT')
  })

  test('refreshSoon writes once after delayMs, whatever changed meanwhile', () => {
    jest.useFakeTimers()
    const { file, lines, path, renders } = view(100)
    lines.push('t1=committed')
    file.refreshSoon()
    lines.push('t2=aborted')
    file.refreshSoon() // already scheduled: covered by the same write
    jest.advanceTimersByTime(99)
    expect(existsSync(path)).toBe(false)
    expect(renders()).toBe(0)
    jest.advanceTimersByTime(1)
    expect(read(path)).toBe('t1=committed\nt2=aborted\n')
    expect(renders()).toBe(1)
  })

  /** Writes t1 in a rewrite that takes at least `stallMs`, then t2 with refreshSoon: whether
   * t2 is in the file `notYetMs` and then `byMs` later (on the virtual clock). */
  async function rewriteAfterSlowOne(
    stallMs: number,
    notYetMs: number,
    byMs: number,
    max?: number,
  ) {
    const { file, lines, path, stallNextRender } = view(100, max)
    lines.push('t1=committed')
    stallNextRender(stallMs)
    await file.refresh()
    jest.useFakeTimers()
    lines.push('t2=aborted')
    file.refreshSoon()
    jest.advanceTimersByTime(notYetMs)
    expect(read(path)).toBe('t1=committed\n')
    jest.advanceTimersByTime(byMs - notYetMs)
    expect(read(path)).toBe('t1=committed\nt2=aborted\n')
  }

  test('a write that took 10 ms spaces the next unawaited one by at least 1 s', async () => {
    await rewriteAfterSlowOne(10, 900, 20_000)
  })

  // A process stopped in the middle of a write (SIGSTOP, a paused machine) counts the stop as
  // the write's cost: the next waits no longer than maxDelayMs, or one stop would leave the file
  // minutes behind the log.
  test('a stop in the middle of a write delays the next by maxDelayMs at most', async () => {
    await rewriteAfterSlowOne(400, 1_900, 2_000, 2_000) // 40 s at 100 times, capped at 2
  })

  test('settle writes a pending refreshSoon now; the timer then writes nothing more', async () => {
    jest.useFakeTimers()
    const { file, lines, path, renders } = view(100)
    lines.push('t1=committed')
    file.refreshSoon()
    await file.settle()
    expect(read(path)).toBe('t1=committed\n')
    expect(renders()).toBe(1)
    jest.advanceTimersByTime(10_000)
    expect(renders()).toBe(1)
  })

  test('settle with nothing pending writes nothing', async () => {
    const { file, lines, path, renders } = view(100)
    lines.push('t1=committed')
    await file.settle()
    expect(existsSync(path)).toBe(false)
    expect(renders()).toBe(0)
  })
})
