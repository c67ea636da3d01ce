// A real Chromium for the browser tests, from npm only: the binary that @sparticuz/chromium
// ships (unpacked under the temp directory on first use), driven by playwright-core. Nothing
// from the system's packages is used.
import { tmpdir } from 'node:os'
import sparticuz from '@sparticuz/chromium'
import { chromium, type Browser } from 'playwright-core'

/** Where @sparticuz/chromium unpacked its browser: under the temp directory, never /usr. */
export async function chromiumPath(): Promise<string> {
  const path = await sparticuz.executablePath()
  if (!path.startsWith(tmpdir())) throw new Error(`chromium at ${path}: not the npm package's`)
  return path
}

/** The browser, in English whatever the machine's locale (a POSIX locale makes Chromium's
 * language `en-US@posix`, which Intl refuses), and not in one process (the package's choice for
 * serverless hosts), where closing the last page would close the browser. */
export async function launchBrowser(): Promise<Browser> {
  const args = [...sparticuz.args.filter((a) => a !== '--single-process'), '--lang=en-US']
  return chromium.launch({
    executablePath: await chromiumPath(),
    args,
    env: { LANG: 'en_US.UTF-8' },
  })
}
