// Builds one self-contained executable per node role: dist/participant and dist/coordinator.
//   bun scripts/build.ts [--outdir dist]
import { parseArgs } from 'node:util'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '..')

/** Compiles `participant.ts` and `coordinator.ts` into `outdir`; returns the binaries' paths. */
export async function build(outdir: string): Promise<string[]> {
  const outputs: string[] = []
  for (const role of ['participant', 'coordinator']) {
    const outfile = join(outdir, role)
    const proc = Bun.spawn(
      [process.execPath, 'build', '--compile', join(ROOT, `${role}.ts`), '--outfile', outfile],
      { cwd: ROOT, stdout: 'ignore', stderr: 'pipe' },
    )
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
    if (code !== 0) throw new Error(`bun build --compile ${role}.ts failed: ${stderr.trim()}`)
    outputs.push(outfile)
  }
  return outputs
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { outdir: { type: 'string' } }, strict: true })
  for (const path of await build(resolve(values.outdir ?? join(ROOT, 'dist'))))
    console.log(`built ${path}`)
}
