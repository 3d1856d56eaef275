// Permalinks and share links on the page (docs/PAGE.md "Links"), in real headless Chromium through haproxy (nginx for
// static/, a backend, a Python worker, PostgreSQL) with local accounts: a cell's ?z= and ?q= links open its code in a
// fresh browser (not run), broken ones say why; a worksheet's read-only ?s= link opens for someone not signed in with
// its outputs, is copied by a second account into its own worksheets, and after "Revoke link" shows the server's 404.
import { mkdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startWebStack, type WebStack } from "../web/harness.ts"
import { PASSWORD, users } from "../web/users.ts"
import { buildClient, cellOutput, closeAll, launchChromium, runCell, setCode } from "./chromium.ts"

let stack: WebStack
let browser: Browser
/** the owner's: signed in, makes the links */
let owner: BrowserContext
let page: Page
const { addUser } = users(() => stack)

/** where the screenshots go (look at them): $SAGEWS_SCREENSHOTS, else a directory under the system temp dir */
const SCREENSHOTS = process.env["SAGEWS_SCREENSHOTS"] ?? join(tmpdir(), "sagews-screenshots")
const CODE = "# a sum, with ünïcode ✓\nprint(sum(range(10)))"

beforeAll(async () => {
  await buildClient()
  stack = await startWebStack({ kernels: ["python"], postgres: true, haproxy: true, nginx: true })
  browser = await launchChromium()
  owner = await browser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ["clipboard-read", "clipboard-write"] })
  page = await owner.newPage()
  await page.goto(stack.frontUrl())
  await page.waitForSelector("#connection[data-state=open]")
}, 240_000)

afterAll(() => closeAll(browser, stack))

const shoot = async (p: Page, name: string): Promise<void> => {
  mkdirSync(SCREENSHOTS, { recursive: true })
  await p.screenshot({ path: join(SCREENSHOTS, name) })
}
const cellCode = (p: Page, i: number): Promise<string> => p.locator(".cell .cm-content").nth(i).innerText()

/** a browser of its own: no cookie, no storage of the owner's */
const stranger = async (): Promise<{ context: BrowserContext; page: Page }> => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  return { context, page: await context.newPage() }
}

const opened = async (p: Page, url: string): Promise<void> => {
  await p.goto(url)
  await p.waitForSelector("#connection[data-state=open]")
}

/** the page's own sign-in form (the dialog already open, or opened by "Sign in") */
const signIn = async (p: Page, email: string): Promise<void> => {
  if (!(await p.locator("#sign-in-email").isVisible())) await p.click("#sign-in-button")
  await p.fill("#sign-in-email", email)
  await p.fill("#sign-in-password", PASSWORD)
  await p.press("#sign-in-password", "Enter")
  await expect.poll(() => p.locator("#account-email").textContent()).toBe(email)
}

describe("links on the page", () => {
  let zUrl = ""
  let qUrl = ""
  let shareUrl = ""

  it("makes a cell's permalinks: a self-contained ?z= link (copied) and a short ?q= link", async () => {
    await page.selectOption("#kernel", "python")
    await setCode(page, 0, CODE)
    await page.locator(".cell").first().getByRole("button", { name: "Permalink" }).click()
    const z = page.locator("#permalink-z")
    const q = page.locator("#permalink-q")
    await expect.poll(() => q.inputValue()).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?q=[A-Za-z0-9_-]{16}$/)
    zUrl = await z.inputValue()
    qUrl = await q.inputValue()
    expect(zUrl).toMatch(new RegExp(`^${stack.frontUrl()}/\\?z=[A-Za-z0-9_-]+&kernel=python$`))
    await page.click("#permalink-z-copy")
    await expect.poll(() => page.locator(".permalink .copy-state").first().textContent()).toBe("copied")
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(zUrl)
    await shoot(page, "permalink-desktop.png")
    await page.keyboard.press("Escape")
  })

  it("opens both permalinks in a fresh browser with the code in the first cell, not run; a broken one says why", async () => {
    const { context, page: fresh } = await stranger()
    try {
      for (const url of [zUrl, qUrl]) {
        await opened(fresh, url)
        await expect.poll(() => cellCode(fresh, 0)).toBe(CODE)
        expect(await fresh.inputValue("#kernel")).toBe("python")
        expect(await fresh.locator(".cell").first().locator(".cell-output").innerText()).toBe("")
        expect(await fresh.locator("#notice").isVisible()).toBe(false)
      }
      // sagecell's own form (Python's base64.urlsafe_b64encode(zlib.compress(code)), docs/PROTOCOL.md)
      await opened(fresh, `${stack.frontUrl()}/?z=eJwryMkv0SjOzNOo0NRR0KjQUTDQUTDSKsjU1AQAbfMHNg&lang=sage`)
      await expect.poll(() => cellCode(fresh, 0)).toBe("plot(sin(x), (x, 0, 2*pi))")
      expect(await fresh.inputValue("#kernel")).toBe("sage")
      await opened(fresh, qUrl)
      // the user presses Run
      await runCell(fresh, 0)
      await expect.poll(() => cellOutput(fresh, 0)).toContain("45")

      await opened(fresh, `${zUrl.slice(0, zUrl.indexOf("&") - 6)}&kernel=python`)
      await expect.poll(() => fresh.locator("#notice").innerText()).toMatch(/This permalink could not be opened: the z parameter .*cut or altered/)
      await opened(fresh, `${stack.frontUrl()}/?q=AAAAAAAAAAAAAAAA`)
      await expect.poll(() => fresh.locator("#notice").innerText()).toMatch(/This permalink could not be opened: no permalink AAAAAAAAAAAAAAAA on this server/)
    } finally {
      await context.close()
    }
  })

  it("shares a worksheet read-only: someone not signed in sees its title, code and outputs, and cannot edit or run it", async () => {
    await addUser("owner@example.org")
    await signIn(page, "owner@example.org")
    await page.click("#new-worksheet")
    await page.waitForURL(/\?w=[0-9a-f-]{36}$/)
    await page.fill("#title", "Shared sums")
    await setCode(page, 0, "print(6 * 7)")
    await runCell(page, 0)
    await expect.poll(() => cellOutput(page, 0)).toContain("42")
    await expect.poll(() => page.locator("#save-state").textContent(), { timeout: 15_000 }).toBe("saved")
    await page.click("#share-button")
    await page.click("#create-share-link")
    const link = page.locator("#share-link")
    await expect.poll(() => link.inputValue()).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?s=[A-Za-z0-9_-]{43}$/)
    shareUrl = await link.inputValue()
    // the same link until it is revoked
    await page.click("#create-share-link")
    await expect.poll(() => page.locator("#share-link-status").textContent()).toMatch(/until you revoke it/)
    expect(await link.inputValue()).toBe(shareUrl)
    await page.keyboard.press("Escape")

    const { context, page: reader } = await stranger()
    try {
      await opened(reader, shareUrl)
      await expect.poll(() => reader.locator("#banner").innerText()).toMatch(/shared with you.*read-only/s)
      expect(await reader.inputValue("#title")).toBe("Shared sums")
      expect(await reader.locator("#title").isDisabled()).toBe(true)
      expect(await cellCode(reader, 0)).toBe("print(6 * 7)")
      expect(await cellOutput(reader, 0)).toContain("42")
      expect(await reader.locator(".cell .cm-content").first().getAttribute("contenteditable")).toBe("false")
      expect(await reader.locator(".cell button.run").first().isDisabled()).toBe(true)
      expect(await reader.locator("#add-cell").isVisible()).toBe(false)
      expect(await reader.locator("#history-button").isVisible()).toBe(false)
      expect(await reader.locator("#sign-in-to-copy").isVisible()).toBe(true)
      // showing it kept nothing in the scratch page's storage
      expect(await reader.evaluate(() => localStorage.getItem("sagews:cells"))).toBeNull()
      await reader.setViewportSize({ width: 390, height: 844 })
      expect(await reader.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      await shoot(reader, "shared-phone.png")
    } finally {
      await context.close()
    }
  })

  it("copies the shared worksheet into a second account's worksheets, editable and runnable there", async () => {
    await addUser("reader@example.org")
    const { context, page: reader } = await stranger()
    try {
      await opened(reader, shareUrl)
      await reader.click("#sign-in-to-copy")
      await signIn(reader, "reader@example.org")
      await reader.click("#copy-shared")
      await reader.waitForURL(/\?w=[0-9a-f-]{36}$/)
      await expect.poll(() => reader.locator("#notice").innerText()).toMatch(/Copied “Shared sums” to your worksheets/)
      expect(await reader.inputValue("#title")).toBe("Shared sums")
      await expect.poll(() => reader.locator("#worksheet-items .ws-open").allTextContents()).toEqual(["Shared sums"])
      expect(await cellOutput(reader, 0)).toContain("42")
      expect(await reader.locator(".cell button.run").first().isDisabled()).toBe(false)
      await setCode(reader, 0, "print(6 * 7 + 1)")
      await runCell(reader, 0)
      await expect.poll(() => cellOutput(reader, 0)).toContain("43")
      await expect.poll(() => reader.locator("#save-state").textContent(), { timeout: 15_000 }).toBe("saved")
    } finally {
      await context.close()
    }
    // the copy is the reader's: the owner's worksheet still says 42
    await page.reload()
    await page.waitForSelector("#connection[data-state=open]")
    expect(await cellCode(page, 0)).toBe("print(6 * 7)")
  })

  it("after Revoke link, the link shows the server's not-found message", async () => {
    await page.click("#share-button")
    await page.click("#revoke-share-link")
    await expect.poll(() => page.locator("#share-link-status").textContent()).toMatch(/^Revoked/)
    await page.keyboard.press("Escape")
    const { context, page: reader } = await stranger()
    try {
      await opened(reader, shareUrl)
      await expect.poll(() => reader.locator("#notice").innerText()).toMatch(/This share link opens nothing: no worksheet is shared by this link: it was revoked, or the link is wrong/)
      expect(await reader.locator("#docbar").isVisible()).toBe(false)
      expect(await reader.locator(".cell button.run").first().isDisabled()).toBe(false)
    } finally {
      await context.close()
    }
  })
})
