// Rules of the code base that a reviewer would otherwise have to remember (TigerBeetle's tidy).
import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Glob } from 'bun'
import { ROOT } from '../testing/nodes.ts'
import { longFunctions, longLines, sourceFiles } from '../testing/tidy.ts'

function files(pattern: string): string[] {
  return [...new Glob(pattern).scanSync({ cwd: ROOT })].sort()
}

const CORE = files('lib/core/*.ts')
const IMPURE = [
  /\bBun\./,
  /\bfetch\(/,
  /\bDate\./,
  /\bsetTimeout\b/,
  /\bsetInterval\b/,
  /\bMath\.random\b/,
  /\bprocess\./,
  /\bperformance\./,
  /from '(?!\.\/)/, // imports only its own modules: nothing from node:, bun: or packages
]

test.each(CORE)('the core file %s does no I/O and reads no clock or randomness', (file) => {
  const code = readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(\/\/|\/\*|\*)/.test(line))
  const offending = code.filter((line) => IMPURE.some((re) => re.test(line)))
  expect(offending).toEqual([])
})

/** Every .ts file of the repository: nodes, library, tests, testing, scripts, examples. */
const SOURCES = sourceFiles(ROOT)

test('every .ts file fits in 100 columns', () => {
  const long: string[] = []
  for (const file of SOURCES) {
    const source = readFileSync(join(ROOT, file), 'utf8')
    for (const line of longLines(source)) long.push(`${file}:${line}`)
  }
  expect(long).toEqual([])
})

// TigerStyle: a function fits on a screen. How functions are found: testing/tidy.ts.
test('no function is longer than 70 lines', () => {
  const long: string[] = []
  for (const file of SOURCES) {
    for (const f of longFunctions(readFileSync(join(ROOT, file), 'utf8'))) {
      long.push(`${file}:${f.line} ${f.name} (${f.lines} lines)`)
    }
  }
  expect(long).toEqual([])
})

test('the project type-checks under the strict tsconfig', async () => {
  const tsc = Bun.spawn([join(ROOT, 'node_modules/.bin/tsc'), '--noEmit', '-p', ROOT], {
    cwd: ROOT,
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [out, code] = await Promise.all([new Response(tsc.stdout).text(), tsc.exited])
  expect(out).toBe('')
  expect(code).toBe(0)
})
