// The tidy scanners (testing/tidy.ts): a function is found with its name and length however
// its braces sit among strings, templates, comments and regular expressions.
import { describe, expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  functionSpans,
  longFunctions,
  longLines,
  sourceFiles,
  tokenize,
} from '../../testing/tidy.ts'
import { tempDir } from '../../testing/processes.ts'

/** `source` with its lines joined: each test writes its code as a list of lines. */
const code = (...lines: string[]) => lines.join('\n')

/** The spans of `source` as `line name (N lines)`, sorted by line. */
function spans(source: string): string[] {
  return functionSpans(source)
    .sort((a, b) => a.line - b.line)
    .map((f) => `${f.line} ${f.name} (${f.lines})`)
}

/** A function of `n` lines in all: its declaration, `n - 2` statements and its closing brace. */
function functionOf(n: number): string {
  const body = Array.from({ length: n - 2 }, (_, i) => `  call(${i})`)
  return code('function long() {', ...body, '}')
}

describe('functionSpans', () => {
  test('declarations, from the line of their name to their closing brace', () => {
    const source = code(
      'export async function one(a: number): Promise<void> {',
      '  await a',
      '}',
      'function two(',
      '  a: string,',
      '): { name: string; urls: string[] } {',
      '  return { name: a, urls: [] }',
      '}',
      'function* three<T>(xs: T[]): Generator<T> {',
      '  yield* xs',
      '}',
      'const four = function () {}',
    )
    expect(spans(source)).toEqual(['1 one (3)', '4 two (5)', '9 three (3)', '12 (function) (1)'])
  })

  test('methods, getters, constructors and private methods', () => {
    const source = code(
      'export class Node<T> extends Base {',
      '  readonly x = 1',
      '  constructor(readonly path: string) {',
      '    super()',
      '  }',
      '  get size(): number {',
      '    return 1',
      '  }',
      '  async #flush(): Promise<void> {}',
      '  static of(): Node<string>[] {',
      '    return []',
      '  }',
      '}',
      'const app = { fetch(request: Request) {',
      '  return request',
      '} }',
    )
    expect(spans(source)).toEqual([
      '3 constructor (3)',
      '6 size (3)',
      '9 #flush (1)',
      '10 of (3)',
      '14 fetch (3)',
    ])
  })

  test('arrows are named by what they are given to', () => {
    const source = code(
      'const run = async (x: number): Promise<void> => {',
      '  await x',
      '}',
      'const handlers = {',
      '  onVote: (vote) => {',
      '    return vote',
      '  },',
      '}',
      "test('a doubled exchange', async () => {",
      '  expect(1).toBe(1)',
      '})',
      "test.each(rows)('$rule', ({ given }) => {",
      '  expect(given).toBeDefined()',
      '})',
      'await new Promise<void>((resolve) => {',
      '  resolve()',
      '})',
      'items.forEach((item) => {',
      '  use(item)',
      '})',
      'return () => {}',
    )
    expect(spans(source)).toEqual([
      '1 run (3)',
      '5 onVote (3)',
      "9 test 'a doubled exchange' (3)",
      "12 test.each '$rule' (3)",
      '15 Promise (3)',
      '18 items.forEach (3)',
      '21 (arrow) (1)',
    ])
  })

  test('a table before a test.each title is not part of its function', () => {
    const source = code(
      'test.each([',
      '  [1, 2],',
      '  [3, 4],',
      "])('%i', (a) => {",
      '  use(a)',
      '})',
    )
    expect(spans(source)).toEqual(["4 test.each '%i' (3)"])
  })

  test('describe callbacks group tests and are not counted; the tests inside are', () => {
    const source = code(
      "describe('tally', () => {",
      "  test('all yes wins', () => {",
      '    expect(1).toBe(1)',
      '  })',
      '})',
      "describe.each([1])('%i', (n) => {})",
    )
    expect(spans(source)).toEqual(["2 test 'all yes wins' (3)"])
  })

  test('blocks of control statements, classes, objects and types are not functions', () => {
    const source = code(
      'if (a) {',
      '} else if (b) {',
      '} else {}',
      'for (const x of xs) {}',
      'for await (const x of xs) {}',
      'while (true) {}',
      'switch (x) {',
      "  case 'a': {}",
      '}',
      'try {} catch (error) {} finally {}',
      'try {} catch {}',
      'do {} while (x)',
      'class A {}',
      'interface B extends C {}',
      'type D = { e: number }',
      'const f = { g: 1, h: [{}] }',
      'label: {}',
      "export { a, b } from './x.ts'",
      'const i = x ? { j: 1 } : {}',
    )
    expect(spans(source)).toEqual([])
  })

  // The walk back over a return type must stop at the body of the function before it.
  test('a class after a function with a return type is not taken for that function', () => {
    const source = code('function f(): Foo {', '  return foo', '}', 'export class Bar {', '}')
    expect(spans(source)).toEqual(['1 f (3)'])
  })

  test('braces in strings, templates, comments and regular expressions do not count', () => {
    const source = code(
      'function a() {',
      "  const s = '}' + \"{\" + '\\'}'",
      '  const t = `}${ { x: 1 }.x }${`{${"}"}`}` // }',
      '  /* } { */',
      '  const r = /[}{]\\/\\/}/g.test(s) ? /}/ : x / 2 / 3',
      '  return `',
      '  }',
      '  `',
      '}',
      'function b() {}',
    )
    expect(spans(source)).toEqual(['1 a (9)', '10 b (1)'])
  })

  test('a hashbang line is not read as code', () => {
    expect(spans(code('#!/usr/bin/env bun', 'function main() {', '}'))).toEqual(['2 main (2)'])
  })
})

describe('tokenize', () => {
  test('keeps words and punctuation, marks literals, drops comments', () => {
    const tokens = tokenize('a => /x/g // c\n`t${b}u` + "s" /* d */ + 1_000')
    expect(tokens.map((t) => [t.kind, t.text, t.line])).toEqual([
      ['ident', 'a', 1],
      ['punct', '=>', 1],
      ['regex', '/x/g', 1],
      ['template', '`t', 2],
      ['ident', 'b', 2],
      ['template', '`u', 2],
      ['punct', '+', 2],
      ['string', '"s"', 2],
      ['punct', '+', 2],
      ['number', '1_000', 2],
    ])
  })
})

describe('longFunctions and longLines', () => {
  test('70 lines is within the limit, 71 is over it', () => {
    expect(longFunctions(functionOf(70))).toEqual([])
    expect(longFunctions(functionOf(71))).toEqual([{ name: 'long', line: 1, lines: 71 }])
    expect(longFunctions(functionOf(71), 71)).toEqual([])
  })

  test('lines are counted in characters, 100 allowed', () => {
    expect(longLines(code('x'.repeat(100), 'y'.repeat(101), '', 'é'.repeat(101)))).toEqual([2, 4])
  })
})

test('sourceFiles lists every .ts file but packages, build output and dot-dirs', () => {
  const root = tempDir()
  const files = [
    'a.ts',
    'lib/core/b.ts',
    'tests/c.test.ts',
    'node_modules/x/index.ts',
    'dist/d.ts',
    '.git/e.ts',
    'README.md',
  ]
  for (const file of files) {
    mkdirSync(join(root, file, '..'), { recursive: true })
    writeFileSync(join(root, file), '')
  }
  expect(sourceFiles(root)).toEqual(['a.ts', 'lib/core/b.ts', 'tests/c.test.ts'])
})
