// The bench's tables: right-aligned columns one space apart, under a line of group headings
// (each centred over its columns) and a line of column headings; numbers right-aligned.

export type Column = { label: string; width: number; group?: string; left?: boolean }

/** The headings, then one line per row of `cells` (already formatted, one per column). */
export function table(columns: Column[], cells: string[][]): string[] {
  const line = (values: string[]) => values.map((v, i) => v.padStart(columns[i]!.width)).join(' ')
  return [groupLine(columns), line(columns.map((c) => c.label)), ...cells.map(line)]
}

/** The group headings, each centred over the run of adjacent columns that share it. */
function groupLine(columns: Column[]): string {
  let out = ''
  let at = 0
  for (let i = 0; i < columns.length;) {
    const group = columns[i]!.group
    let width = columns[i]!.width
    let j = i + 1
    while (j < columns.length && group !== undefined && columns[j]!.group === group) {
      width += 1 + columns[j]!.width
      j++
    }
    if (group !== undefined) {
      const start = at + Math.max(0, Math.floor((width - group.length) / 2))
      out = out.padEnd(start) + group
    }
    at += width + 1
    i = j
  }
  return out.trimEnd()
}

/** Megabytes with one decimal (two below 10 MB). */
export function megabytes(bytes: number): string {
  const mb = bytes / 2 ** 20
  return mb < 10 ? mb.toFixed(2) : mb.toFixed(1)
}
