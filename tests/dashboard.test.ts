// The coordinator's live dashboard in a real Chromium (from npm: @sparticuz/chromium, driven by
// playwright-core): a transaction submitted through the API shows within a second, with its
// timeline on click; a stopped participant is marked; with authentication on, the page asks for
// a client token. UPDATE_SCREENSHOTS=1 keeps the picture in docs/dashboard.png.
import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { chromiumPath, launchBrowser } from '../testing/browser.ts'
import { ROOT } from '../testing/nodes.ts'
import {
  cleanup,
  kill,
  postJson,
  startCoordinatorService,
  startParticipant,
  tempDir,
} from '../testing/processes.ts'

let browser: Browser
beforeAll(async () => {
  browser = await launchBrowser()
})
afterAll(async () => {
  await browser.close()
})
afterEach(cleanup)

test('the browser is the npm package’s Chromium, not the system’s', async () => {
  const path = await chromiumPath()
  expect(path).not.toStartWith('/usr')
  expect(browser.version()).toMatch(/^\d+\./)
})

/** docs/dashboard.png: the page after a few seconds of transactions, one timeline open. */
async function screenshot(page: Page, url: string): Promise<void> {
  const until = Date.now() + 4000
  const client = async (i: number) => {
    for (let n = 0; Date.now() < until; n++) {
      const ok = n % 20 !== 0 // one in twenty checks a value that is not there, and aborts
      const op = ok
        ? { op: 'add', key: `k${i}`, amount: 1 }
        : { op: 'check', key: 'seen', equals: 7 }
      await postJson(`${url}/transactions`, { ops: [op] })
    }
  }
  await Promise.all([0, 1, 2, 3].map(client))
  await page.waitForTimeout(600)
  await page.locator('#recent tr[data-txn]').first().click()
  await page.waitForSelector('#timeline:has-text("done")')
  await page.screenshot({ path: join(ROOT, 'docs', 'dashboard.png'), fullPage: true })
}

test('a submitted transaction shows within a second; a stopped participant is marked', async () => {
  const p0 = await startParticipant(tempDir())
  const p1 = await startParticipant(tempDir())
  const service = await startCoordinatorService(tempDir(), { participants: [p0.url, p1.url] })
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
  await page.goto(`${service.url}/`)
  // Live, and both participants probed.
  await page.waitForSelector('#state:text("live")')
  await page.waitForSelector(`#participants tr[data-url="${p1.url}"] .reach:text("yes")`)

  const ops = [{ op: 'set', key: 'seen', value: 1 }]
  const answer = await postJson(`${service.url}/transactions`, { id: 'shown-1', ops })
  expect(answer.body.decision).toBe('commit')
  const row = page.locator('#recent tr[data-txn="shown-1"]')
  await row.waitFor({ timeout: 1000 })
  expect(await row.locator('td').nth(1).textContent()).toBe('commit')
  expect(await row.locator('td').nth(3).textContent()).toBe('yes, yes')
  await postJson(`${service.url}/transactions`, {
    id: 'refused-1',
    ops: [{ op: 'check', key: 'seen', equals: 2 }],
  })
  await page.locator('#recent tr[data-txn="refused-1"]').waitFor({ timeout: 1000 })
  expect(await page.locator('#abort-total').textContent()).toBe('1')

  await row.click()
  await page.waitForSelector('#timeline:has-text("done")')
  const timeline = (await page.locator('#timeline').textContent())!
  for (const event of ['begin', 'prepare sent', 'vote yes', 'decision durable: commit', 'ack']) {
    expect(timeline).toContain(event)
  }
  expect(timeline).toContain(p0.url)
  if (process.env.UPDATE_SCREENSHOTS === '1') await screenshot(page, service.url)

  await kill(p1)
  const stopped = page.locator(`#participants tr[data-url="${p1.url}"]`)
  await page.waitForSelector(`#participants tr.down[data-url="${p1.url}"]`)
  expect(await stopped.locator('.reach').textContent()).toBe('unreachable')
  const running = page.locator(`#participants tr[data-url="${p0.url}"]`)
  expect(await running.getAttribute('class')).toBe('')
  await page.close()
})

test('with authentication on, the page asks for a client token, then shows the data', async () => {
  const dir = tempDir()
  const secret = join(dir, 'secret')
  const tokens = join(dir, 'tokens')
  writeFileSync(secret, 'the-cluster-secret-for-this-test\n', { mode: 0o600 })
  writeFileSync(tokens, 'dashboard-token-number-one\n', { mode: 0o600 })
  const p0 = await startParticipant(tempDir(), { args: ['--secret-file', secret] })
  const args = ['--secret-file', secret, '--client-tokens-file', tokens]
  const service = await startCoordinatorService(tempDir(), { participants: [p0.url], args })
  expect((await fetch(`${service.url}/events`)).status).toBe(401)
  const page = await browser.newPage()
  await page.goto(`${service.url}/`)
  await page.waitForSelector('#token-form:visible')
  expect(await page.locator('#state').textContent()).toBe('needs a client token')
  await page.fill('#token', 'dashboard-token-number-one')
  await page.click('#token-form button')
  await page.waitForSelector('#state:text("live")')
  // The coordinator probes its participant with the secret's proof.
  await page.waitForSelector(`#participants tr[data-url="${p0.url}"] .reach:text("yes")`)
  await page.close()
})
