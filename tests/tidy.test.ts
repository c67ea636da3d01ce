// Rules of the code base that a reviewer would otherwise have to remember (TigerBeetle's tidy).
import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Glob } from 'bun'
import { ROOT } from '../testing/nodes.ts'

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

test('lines in the nodes and their library fit in 100 columns', () => {
  const long: string[] = []
  for (const file of ['participant.ts', 'coordinator.ts', 'lib.ts', ...files('lib/**/*.ts')]) {
    readFileSync(join(ROOT, file), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.length > 100) long.push(`${file}:${i + 1}`)
      })
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
