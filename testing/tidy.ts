// The scanners behind tests/tidy.test.ts (TigerBeetle's tidy.zig): which files are ours, which
// lines pass 100 columns, and which functions pass 70 lines. The installed TypeScript is the
// native compiler, with no JS API to parse with, so functions are found by a small tokenizer:
// it drops comments and the text of strings, template literals and regular expressions (where
// a brace means nothing), keeps the code inside a template's `${…}`, and then matches braces.
//
// A `{` opens a function body when the tokens before it are one of
//   `=> {`                               an arrow function
//   `name(…) {`, `name(…): Type {`       a function declaration (after `function`) or a method
//   `function (…) {`                     a function expression
// and not a control statement (`if (…) {`, `for (…) {`, `catch (…) {`, …). A function's length
// runs from the line its declaration starts on (its name, or for an arrow the `name =`,
// `name:` or call it is passed to) to the line of its closing brace, both included.
//
// `describe(…, () => {…})` callbacks are not counted: they group tests the way a module groups
// functions; the tests and helpers inside them are counted one by one.
//
// Known blind spots, none of which our code has: a `{` that follows `=>` in a type (`() => {
// a: T }`) counts as a function; a conditional type as a return type (`): A extends B ? C : D
// {`) hides its function; a regular expression right after `)` or `}` is read as division.
import { readdirSync } from 'node:fs'
import { Glob } from 'bun'

/** A token and the line it starts on. The text of strings, template parts and regular
 * expressions keeps its opening delimiter, so it never equals a word or a punctuation mark. */
export type Token = {
  kind: 'ident' | 'number' | 'string' | 'template' | 'regex' | 'punct'
  text: string
  line: number
}

/** A function found in a source file: `line` is where its declaration starts (1-based). */
export type FunctionSpan = { name: string; line: number; lines: number }

/** Directories that hold no code of ours (installed packages, build output), besides dot-dirs. */
const NOT_OURS = new Set(['node_modules', 'dist', 'coverage'])

/** Every .ts file of the project under `root`, relative to it, sorted. */
export function sourceFiles(root: string): string[] {
  const files: string[] = []
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || NOT_OURS.has(entry.name)) continue
    if (entry.isFile() && entry.name.endsWith('.ts')) files.push(entry.name)
    if (!entry.isDirectory()) continue
    for (const path of new Glob('**/*.ts').scanSync({ cwd: `${root}/${entry.name}` })) {
      files.push(`${entry.name}/${path}`)
    }
  }
  return files.sort()
}

/** The 1-based numbers of the lines of `source` longer than `max` characters. */
export function longLines(source: string, max = 100): number[] {
  const long: number[] = []
  source.split('\n').forEach((line, i) => {
    if (line.length > max) long.push(i + 1)
  })
  return long
}

/** The functions of `source` longer than `max` lines. */
export function longFunctions(source: string, max = 70): FunctionSpan[] {
  return functionSpans(source).filter((f) => f.lines > max)
}

// ---------------------------------------------------------------------------------------------
// Tokens

/** Keywords after which a `/` starts a regular expression rather than a division. */
const BEFORE_REGEX = new Set([
  'return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do',
  'else', 'yield', 'await',
]) // prettier-ignore

/** Splits TypeScript source into tokens; comments and whitespace are dropped. */
export function tokenize(source: string): Token[] {
  const lexer = { source, i: 0, line: 1, tokens: [] as Token[], braces: [] as Brace[] }
  if (source.startsWith('#!')) lexer.i = lineEnd(source, 0)
  while (lexer.i < source.length) lexOne(lexer)
  return lexer.tokens
}

/** What an open brace is: code (`{`), or a template's `${`, whose `}` resumes the template. */
type Brace = 'code' | 'template'
type Lexer = { source: string; i: number; line: number; tokens: Token[]; braces: Brace[] }

function lexOne(lx: Lexer): void {
  const { source: s, i } = lx
  const c = s[i]!
  const next = s[i + 1]
  if (c === '\n') {
    lx.line += 1
    lx.i += 1
  } else if (c === ' ' || c === '\t' || c === '\r') lx.i += 1
  else if (c === '/' && next === '/') lx.i = lineEnd(s, i)
  else if (c === '/' && next === '*') skipBlockComment(lx)
  else if (c === '"' || c === "'") lexString(lx, c)
  else if (c === '`') lexTemplate(lx, i + 1)
  else if (c === '}' && lx.braces.at(-1) === 'template') {
    lx.braces.pop()
    lexTemplate(lx, i + 1)
  } else if (c === '/' && regexMayStart(lx.tokens.at(-1)) && lexRegex(lx)) return
  else if (/[A-Za-z_$#]/.test(c) || c.charCodeAt(0) > 127) lexWord(lx, 'ident', /[\w$]/)
  else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(next ?? ''))) {
    lexWord(lx, 'number', /[\w.]/)
  } else lexPunct(lx, c, next)
}

function lineEnd(s: string, i: number): number {
  const end = s.indexOf('\n', i)
  return end < 0 ? s.length : end
}

function skipBlockComment(lx: Lexer): void {
  const end = lx.source.indexOf('*/', lx.i + 2)
  const stop = end < 0 ? lx.source.length : end + 2
  lx.line += countNewlines(lx.source, lx.i, stop)
  lx.i = stop
}

function countNewlines(s: string, from: number, to: number): number {
  let n = 0
  for (let j = from; j < to; j++) if (s[j] === '\n') n += 1
  return n
}

function lexString(lx: Lexer, quote: string): void {
  const { source: s } = lx
  const start = lx.i
  const line = lx.line
  let j = start + 1
  while (j < s.length && s[j] !== quote && s[j] !== '\n') j += s[j] === '\\' ? 2 : 1
  lx.line += countNewlines(s, start, j) // an escaped newline continues the string
  lx.i = Math.min(j + 1, s.length)
  lx.tokens.push({ kind: 'string', text: s.slice(start, lx.i), line })
}

/** Lexes template text from `from` up to its closing backtick or its next `${`. */
function lexTemplate(lx: Lexer, from: number): void {
  const { source: s } = lx
  const line = lx.line
  let j = from
  while (j < s.length && s[j] !== '`' && !(s[j] === '$' && s[j + 1] === '{')) {
    j += s[j] === '\\' ? 2 : 1
  }
  lx.line += countNewlines(s, from, j)
  lx.tokens.push({ kind: 'template', text: `\`${s.slice(from, j)}`, line })
  if (s[j] === '$') {
    lx.braces.push('template')
    lx.i = j + 2
  } else lx.i = j + 1
}

/** Whether a `/` after `prev` starts a regular expression: not after a value. */
function regexMayStart(prev: Token | undefined): boolean {
  if (prev === undefined) return true
  if (prev.kind === 'ident') return BEFORE_REGEX.has(prev.text)
  if (prev.kind === 'punct') return prev.text !== ')' && prev.text !== ']' && prev.text !== '}'
  return false
}

/** Lexes a regular expression literal at `lx.i`; false (and nothing consumed) if there is none
 * on this line, in which case the `/` is a division after all. */
function lexRegex(lx: Lexer): boolean {
  const { source: s } = lx
  let j = lx.i + 1
  let inClass = false
  for (; j < s.length && s[j] !== '\n'; j++) {
    if (s[j] === '\\') j += 1
    else if (s[j] === '[') inClass = true
    else if (s[j] === ']') inClass = false
    else if (s[j] === '/' && !inClass) break
  }
  if (s[j] !== '/') return false
  j += 1
  while (/[a-z]/.test(s[j] ?? '')) j += 1
  lx.tokens.push({ kind: 'regex', text: s.slice(lx.i, j), line: lx.line })
  lx.i = j
  return true
}

function lexWord(lx: Lexer, kind: 'ident' | 'number', rest: RegExp): void {
  const { source: s } = lx
  let j = lx.i + 1
  while (j < s.length && (rest.test(s[j]!) || s.charCodeAt(j) > 127)) j += 1
  lx.tokens.push({ kind, text: s.slice(lx.i, j), line: lx.line })
  lx.i = j
}

function lexPunct(lx: Lexer, c: string, next: string | undefined): void {
  const text = c === '=' && next === '>' ? '=>' : c
  if (text === '{') lx.braces.push('code')
  if (text === '}') lx.braces.pop()
  lx.tokens.push({ kind: 'punct', text, line: lx.line })
  lx.i += text.length
}

// ---------------------------------------------------------------------------------------------
// Functions

/** Words before `(…) {` that make it a statement's block, not a function's body. */
const CONTROL = new Set(['if', 'for', 'while', 'switch', 'catch', 'with'])

/** Words a return type never contains: met walking back from a `{`, they show it is no body. */
const NOT_IN_TYPES = new Set([
  'class', 'interface', 'enum', 'namespace', 'module', 'export', 'import', 'default', 'const',
  'let', 'var', 'return', 'throw', 'new', 'type', 'extends', 'implements', 'else', 'do', 'try',
  'finally', 'catch', 'await', 'yield', 'async', 'static', 'declare', 'abstract',
]) // prettier-ignore

/** Punctuation a return type may contain, between the `:` after `)` and the body's `{`. */
const TYPE_PUNCT = new Set(['.', '<', '>', ',', '|', '&', '?', '=>', '-', '*'])

/** Tokens that may come just before a parenthesized or braced part of a type. */
const BEFORE_TYPE_GROUP = new Set([':', '|', '&', '<', ',', '(', '[', '=>', '?'])

/** Words that end the walk back from an arrow's `=>`: what comes before them is another
 * statement (`return () => {…}`). Not type words: `(): void => {` is one arrow. */
const ARROW_HEAD_ENDS = new Set(['return', 'throw', 'yield', 'await', 'case', 'else', 'do'])

const OPENERS = new Set(['(', '[', '{'])
const CLOSERS = new Set([')', ']', '}'])

type Start = { name: string; line: number; grouping: boolean }

/** Every function of `source` with its length in lines, in the order their bodies close. */
export function functionSpans(source: string): FunctionSpan[] {
  const tokens = tokenize(source)
  const open: (Start | null)[] = []
  const spans: FunctionSpan[] = []
  tokens.forEach((token, k) => {
    if (token.kind !== 'punct') return
    if (token.text === '{') open.push(functionAt(tokens, k))
    if (token.text !== '}') return
    const start = open.pop()
    if (start && !start.grouping) {
      spans.push({ name: start.name, line: start.line, lines: token.line - start.line + 1 })
    }
  })
  return spans
}

/** What function the `{` at `k` opens the body of, or null when it opens something else. */
function functionAt(tokens: Token[], k: number): Start | null {
  if (tokens[k - 1]?.text === '=>') return arrowAt(tokens, k - 1)
  const close = paramsCloseBefore(tokens, k)
  if (close < 0) return null
  let j = matchBack(tokens, close) - 1
  if (tokens[j]?.text === '>') j = matchAngleBack(tokens, j) - 1 // `name<T>(…)`
  const word = tokens[j]
  if (word === undefined) return null
  if (word.text === 'function') return { name: '(function)', line: word.line, grouping: false }
  if (word.kind !== 'ident' || CONTROL.has(word.text)) return null
  const before = tokens[j - 1]
  if (word.text === 'await' && before?.text === 'for') return null // `for await (…) {`
  if (before?.text === '.') return null // a call, which no body follows
  const declared = before?.text === 'function' || before?.text === '*' ? before : word
  return { name: word.text, line: declared.line, grouping: false }
}

/** The index of the `)` that closes the parameters of the body opened at `k`: the token just
 * before it, or the one before a return type (`): Promise<void> {`); -1 when there is none. */
function paramsCloseBefore(tokens: Token[], k: number): number {
  if (tokens[k - 1]?.text === ')') return k - 1
  let typeTokens = 0
  for (let j = k - 1; j >= 0;) {
    const t = tokens[j]!
    if (t.text === ':') return typeTokens > 0 && tokens[j - 1]?.text === ')' ? j - 1 : -1
    if (CLOSERS.has(t.text) && t.kind === 'punct') {
      const opener = matchBack(tokens, j)
      if (opener < 0) return -1
      // `T[]`, `T['key']` and tuples may follow anything; `(…)` and `{…}` only where a type
      // begins, or the walk would cross the body of the function before (`f(): T {…} class`).
      const indexed = t.text === ']'
      if (!indexed && !BEFORE_TYPE_GROUP.has(tokens[opener - 1]?.text ?? '')) return -1
      j = opener - 1
    } else if (isTypeToken(t)) j -= 1
    else return -1
    typeTokens += 1
  }
  return -1
}

function isTypeToken(t: Token): boolean {
  if (t.kind === 'ident') return !NOT_IN_TYPES.has(t.text)
  if (t.kind === 'punct') return TYPE_PUNCT.has(t.text)
  return t.kind === 'string' || t.kind === 'number'
}

/** Names the arrow function whose `=>` is at `arrow` by what it is given to: `name = …`,
 * `name: …`, or a call (`test('title', …)`), found by walking back over its parameters. */
function arrowAt(tokens: Token[], arrow: number): Start {
  let depth = 0
  for (let j = arrow - 1; j >= 0; j--) {
    const t = tokens[j]!
    if (t.kind === 'punct' && CLOSERS.has(t.text)) depth += 1
    else if (t.kind === 'punct' && OPENERS.has(t.text)) {
      if (depth === 0) return t.text === '(' ? callAt(tokens, j) : anonymous(tokens[arrow]!)
      depth -= 1
    } else if (depth > 0) continue
    else if (t.text === '=' || (t.text === ':' && tokens[j - 1]?.text !== ')')) {
      const name = tokens[j - 1]
      if (name?.kind !== 'ident') return anonymous(tokens[arrow]!)
      return { name: name.text, line: name.line, grouping: false }
    } else if (t.text === ',') {
      j = unmatchedOpenBefore(tokens, j)
      if (j < 0 || tokens[j]!.text !== '(') return anonymous(tokens[arrow]!)
      return callAt(tokens, j)
    } else if (t.text === ';' || t.text === '=>' || ARROW_HEAD_ENDS.has(t.text)) break
  }
  return anonymous(tokens[arrow]!)
}

function anonymous(arrow: Token): Start {
  return { name: '(arrow)', line: arrow.line, grouping: false }
}

/** The call whose `(` is at `open`: `callee 'first argument'` when that is a string. The
 * function starts on the line of that `(`, so that `test.each([…rows…])('title', () => {` does
 * not count its table. */
function callAt(tokens: Token[], open: number): Start {
  let j = open - 1
  if (tokens[j]?.text === ')') j = matchBack(tokens, j) - 1 // `test.each(rows)(…)`
  if (tokens[j]?.text === '>') j = matchAngleBack(tokens, j) - 1 // `call<T>(…)`
  const parts: string[] = []
  // `a.b.c`: words joined by dots, back to the first word not after a dot.
  for (; j >= 0 && tokens[j]!.kind === 'ident'; j -= 2) {
    if (NOT_IN_TYPES.has(tokens[j]!.text) || BEFORE_REGEX.has(tokens[j]!.text)) break // `new`
    parts.unshift(tokens[j]!.text)
    if (tokens[j - 1]?.text !== '.') break
    parts.unshift('.')
  }
  const callee = parts.join('').replace(/^\./, '')
  if (callee === '') return anonymous(tokens[open]!)
  const first = tokens[open + 1]
  const title = first?.kind === 'string' ? ` ${shorten(first.text, 60)}` : ''
  const grouping = callee === 'describe' || callee.startsWith('describe.')
  return { name: `${callee}${title}`, line: tokens[open]!.line, grouping }
}

function shorten(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** The index of the opener that matches the closer at `close`, or -1. */
function matchBack(tokens: Token[], close: number): number {
  let depth = 0
  for (let j = close; j >= 0; j--) {
    const t = tokens[j]!
    if (t.kind !== 'punct') continue
    if (CLOSERS.has(t.text)) depth += 1
    if (OPENERS.has(t.text)) depth -= 1
    if (depth === 0) return j
  }
  return -1
}

/** The index of the `<` that matches the `>` at `close`, or -1. */
function matchAngleBack(tokens: Token[], close: number): number {
  let depth = 0
  for (let j = close; j >= 0; j--) {
    if (tokens[j]!.text === '>') depth += 1
    if (tokens[j]!.text === '<') depth -= 1
    if (depth === 0) return j
  }
  return -1
}

/** The index of the innermost opener still open at `from`, or -1. */
function unmatchedOpenBefore(tokens: Token[], from: number): number {
  let depth = 0
  for (let j = from - 1; j >= 0; j--) {
    const t = tokens[j]!
    if (t.kind !== 'punct') continue
    if (CLOSERS.has(t.text)) depth += 1
    if (OPENERS.has(t.text)) {
      if (depth === 0) return j
      depth -= 1
    }
  }
  return -1
}
