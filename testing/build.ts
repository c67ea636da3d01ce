// Builds one self-contained executable per node role (scripts/build.ts is its command line).
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dir, '..')

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
