// Worksheets on the page (issue 10 item 5), in real headless Chromium through haproxy (nginx for static/, a backend,
// a Sage worker, PostgreSQL) with a real OpenID provider (oidc-provider, its development login and consent pages
// driven by Chromium): sign in, a worksheet with Sage cells and a plot that is there again after a reload, sign-out
// back to the scratch page and in again, two tabs saving over each other (both texts kept, the user told), the
// history and a restore, upload and download of an .ipynb, saves failing and retried, the layout on a phone and a
// desktop (screenshots), and a local account signed in with the keyboard alone.
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Provider from "oidc-provider"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort, startWebStack, type WebStack } from "../web/harness.ts"
import { PASSWORD, users } from "../web/users.ts"
import { buildClient, cellOutput, closeAll, launchChromium, runCell, setCode } from "./chromium.ts"

const CLIENT_ID = "sagews"
const CLIENT_SECRET = "a test client secret that is long enough"
/** where the screenshots go (look at them): $SAGEWS_SCREENSHOTS, else a directory under the system temp dir */
const SCREENSHOTS = process.env["SAGEWS_SCREENSHOTS"] ?? join(tmpdir(), "sagews-screenshots")

let stack: WebStack
let browser: Browser
let context: BrowserContext
let page: Page
let issuer: string
let provider: Server
const { addUser } = users(() => stack)
/** the worksheet the tests share, once made */
let worksheetUrl = ""

beforeAll(async () => {
  await buildClient()
  const port = await freePort()
  issuer = `http://127.0.0.1:${port}`
  stack = await startWebStack({
    kernels: ["sage"],
    postgres: true,
    haproxy: true,
    nginx: true,
    backendConfig: { signIn: { providers: [{ name: "local", issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }] } },
  })
  // the redirect URI the backend gives the provider is the browser's Host: haproxy's front door
  const oidc = new Provider(issuer, {
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [`${stack.frontUrl()}/api/v1/oidc/local/callback`], grant_types: ["authorization_code"], response_types: ["code"] }],
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id, email: `${id}@example.org`, email_verified: true, name: id }) }),
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: ["a test cookie key"] },
  })
  provider = createServer(oidc.callback())
  await new Promise<void>((resolve) => provider.listen(port, "127.0.0.1", resolve))
  browser = await launchChromium()
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  // the provider's development pages import a web font: there is no network to fetch it from
  await context.route(/fonts\.googleapis\.com/, (route) => route.abort())
  page = await context.newPage()
  await page.goto(stack.frontUrl())
  await page.waitForSelector("#connection[data-state=open]")
}, 240_000)

afterAll(async () => {
  if (provider !== undefined) {
    provider.closeAllConnections()
    await new Promise((resolve) => provider.close(resolve))
  }
  await closeAll(browser, stack)
})

/** `act`, and the navigation it starts (through every redirect, to the page's load) */
const navigating = async (p: Page, act: () => Promise<void>): Promise<void> => {
  await Promise.all([p.waitForNavigation({ timeout: 20_000 }), act()])
}

/** "Sign in" → "Sign in with local" → the provider's login (any password) and consent pages → back on the page. */
const signIn = async (p: Page, login: string): Promise<void> => {
  await p.click("#sign-in-button")
  await navigating(p, () => p.getByRole("button", { name: "Sign in with local" }).click())
  // the provider asks for a login (unless it has a session of its own) and a consent, each a form
  for (let step = 0; step < 5 && p.url().startsWith(issuer); step++) {
    const loginBox = p.locator("input[name=login]")
    if (await loginBox.count() > 0) {
      await loginBox.fill(login)
      await p.fill("input[name=password]", "any password")
    }
    await navigating(p, () => p.click("button[type=submit]"))
  }
  expect(p.url().startsWith(stack.frontUrl()), p.url()).toBe(true)
  await expect.poll(() => p.locator("#account-email").textContent(), { timeout: 10_000 }).toBe(`${login}@example.org`)
}

const saveState = (p: Page): Promise<string | null> => p.locator("#save-state").textContent()
/** waits for "saved": shown only once the PUT was answered 200 */
const saved = (p: Page): Promise<void> => expect.poll(() => saveState(p), { timeout: 15_000 }).toBe("saved")
const listTitles = (p: Page): Promise<Array<string>> => p.locator("#worksheet-items .ws-open").allTextContents()
const cellCode = (p: Page, i: number): Promise<string> => p.locator(".cell .cm-content").nth(i).innerText()
const shoot = async (p: Page, name: string): Promise<void> => {
  if (!existsSync(SCREENSHOTS)) mkdirSync(SCREENSHOTS, { recursive: true })
  await p.screenshot({ path: join(SCREENSHOTS, name) })
}

describe("worksheets on the page", () => {
  it("signs in through the OpenID provider; anonymous, the scratch page says to sign in to save", async () => {
    expect(await page.locator("#banner").innerText()).toMatch(/kept in this browser only.*Sign in.*to save/s)
    expect(await page.locator("#worksheets").isVisible()).toBe(false)
    await signIn(page, "ada")
    await expect.poll(() => page.locator("#worksheets").isVisible()).toBe(true)
    await expect.poll(() => page.locator("#worksheets .ws-status").innerText()).toMatch(/No worksheets yet/)
    // the page's SockJS hello carried the account's ticket: its sessions are the account's
    type Client = { sagews: { client: { identity?: { account?: string } } } }
    await expect.poll(() => page.evaluate(() => (window as unknown as Client).sagews.client.identity?.account)).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("makes a worksheet, runs Sage cells with a plot, shows saved, and after a reload has the same cells and outputs", async () => {
    await page.click("#new-worksheet")
    await page.waitForURL(/\?w=[0-9a-f-]{36}$/)
    await page.fill("#title", "Plots")
    await setCode(page, 0, "show(factor(x^2 - 1))")
    await runCell(page, 0)
    await page.click("#add-cell")
    await setCode(page, 1, "print('sin, plotted')\nplot(sin(x), (x, 0, 2*pi))")
    await runCell(page, 1)
    await page.locator(".cell").nth(1).locator("img.out-image").waitFor()
    await saved(page)
    await expect.poll(() => listTitles(page)).toEqual(["Plots"])
    worksheetUrl = page.url()
    await shoot(page, "worksheet-desktop.png")

    await page.reload()
    await page.waitForSelector("#connection[data-state=open]")
    await expect.poll(() => page.locator(".cell").count()).toBe(2)
    expect(await page.inputValue("#title")).toBe("Plots")
    expect(await cellCode(page, 0)).toContain("show(factor(x^2 - 1))")
    expect(await cellCode(page, 1)).toContain("plot(sin(x), (x, 0, 2*pi))")
    expect(await page.locator(".cell").first().locator(".katex").count()).toBeGreaterThan(0)
    expect(await cellOutput(page, 0)).toMatch(/x\s*\+\s*1/)
    expect(await cellOutput(page, 1)).toContain("sin, plotted")
    const img = page.locator(".cell").nth(1).locator("img.out-image")
    expect(await img.evaluate((node: HTMLImageElement) => node.naturalWidth)).toBeGreaterThan(100)
    expect(await saveState(page)).toBe("saved")
  })

  it("signs out to the scratch page (no list, cells still run) and in again: the worksheet is there", async () => {
    await page.click("#sign-out")
    await expect.poll(() => page.locator("#sign-in-button").isVisible()).toBe(true)
    expect(await page.locator("#worksheets").isVisible()).toBe(false)
    expect(await page.locator("#docbar").isVisible()).toBe(false)
    expect(new URL(page.url()).search).toBe("")
    expect(await page.locator("#banner").innerText()).toMatch(/Sign in/)
    await setCode(page, 0, "2^10")
    await runCell(page, 0)
    await expect.poll(() => cellOutput(page, 0), { timeout: 30_000 }).toContain("1024")

    await signIn(page, "ada")
    await expect.poll(() => listTitles(page)).toEqual(["Plots"])
    await page.getByRole("link", { name: "Plots" }).click()
    await page.waitForURL(worksheetUrl)
    expect(await cellCode(page, 1)).toContain("plot(sin(x)")
    await page.locator(".cell").nth(1).locator("img.out-image").waitFor()
  })

  it("keeps both texts when two tabs edit the same worksheet, and says so", async () => {
    const other = await context.newPage()
    try {
      await other.goto(worksheetUrl)
      await other.waitForSelector("#connection[data-state=open]")
      await expect.poll(() => cellCode(other, 0)).toContain("factor")
      await setCode(page, 0, "# this tab's edit\nfactor(x^3 - 1)")
      await saved(page)
      // the other tab still edits the version it loaded: its save is refused (409)
      await setCode(other, 0, "# the other tab's edit\nexpand((x + 1)^3)")
      const notice = other.locator("#notice")
      await expect.poll(() => notice.innerText(), { timeout: 15_000 }).toMatch(/changed in another tab or on another device/)
      expect(await notice.innerText()).toMatch(/Nothing is lost: your version is saved as “Plots \(conflict copy\)”/)
      expect(await other.inputValue("#title")).toBe("Plots (conflict copy)")
      await saved(other)
      expect(other.url()).not.toBe(worksheetUrl)
      expect(await cellCode(other, 0)).toContain("the other tab's edit")
      await expect.poll(() => listTitles(other)).toEqual(expect.arrayContaining(["Plots", "Plots (conflict copy)"]))
      await shoot(other, "conflict-desktop.png")
      // the other side is one click away, as it was saved
      await notice.getByRole("button", { name: "Open “Plots”" }).click()
      await other.waitForURL(worksheetUrl)
      await expect.poll(() => cellCode(other, 0)).toContain("this tab's edit")
    } finally {
      await other.close()
    }
  })

  it("lists versions in the history, opens one read-only and restores it", async () => {
    await page.click("#history-button")
    const items = page.locator("#history-items .history-item")
    await expect.poll(() => items.count()).toBeGreaterThanOrEqual(3)
    const before = await items.count()
    expect(await items.first().innerText()).toMatch(/latest/)
    // the version before this tab's last edit: factor(x^2 - 1) and the plot
    await items.nth(1).getByRole("button", { name: /Open the version/ }).click()
    await page.waitForURL(/&v=[0-9a-f]{40}$/)
    await expect.poll(() => page.locator("#banner").innerText()).toMatch(/read-only/)
    expect(await cellCode(page, 0)).toContain("show(factor(x^2 - 1))")
    expect(await page.locator(".cell .cm-content").first().getAttribute("contenteditable")).toBe("false")
    expect(await page.locator(".cell button.run").first().isDisabled()).toBe(true)
    await shoot(page, "version-desktop.png")
    await page.click("#restore-version")
    await expect.poll(() => page.locator("#notice").innerText()).toMatch(/Restored the version of .*: it is the latest now/)
    await page.waitForURL(worksheetUrl)
    expect(await page.locator("#banner").isVisible()).toBe(false)
    await saved(page)
    expect(await cellCode(page, 0)).toContain("show(factor(x^2 - 1))")
    await page.click("#history-button")
    await expect.poll(() => items.count()).toBe(before + 1)
    await page.keyboard.press("Escape")
    await page.reload()
    await page.waitForSelector("#connection[data-state=open]")
    expect(await cellCode(page, 0)).toContain("show(factor(x^2 - 1))")
  })

  it("downloads the worksheet as an .ipynb, and uploads a Jupyter notebook", async () => {
    const downloading = page.waitForEvent("download")
    await page.getByRole("button", { name: "Download “Plots”" }).click()
    const download = await downloading
    expect(download.suggestedFilename()).toBe("Plots.ipynb")
    const downloaded = await download.path()
    // what the page wrote is a notebook to Jupyter's own nbformat (Debian's python3-nbformat)
    execFileSync("/usr/bin/python3", ["-c", "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))", downloaded])
    const notebook = JSON.parse(readFileSync(downloaded, "utf8")) as {
      nbformat: number; metadata: { title: string; kernelspec: { name: string } }; cells: Array<{ source: string; outputs: Array<{ output_type: string; data?: Record<string, string>; name?: string }> }>
    }
    expect(notebook).toMatchObject({ nbformat: 4, metadata: { title: "Plots", kernelspec: { name: "sagemath" } } })
    expect(notebook.cells.map((c) => c.source)).toEqual(["show(factor(x^2 - 1))", "print('sin, plotted')\nplot(sin(x), (x, 0, 2*pi))"])
    expect(notebook.cells[0]?.outputs[0]).toMatchObject({ output_type: "display_data", data: { "text/latex": expect.any(String) } })
    expect(notebook.cells[1]?.outputs.map((o) => o.output_type)).toEqual(["stream", "display_data"])
    expect(notebook.cells[1]?.outputs[1]?.data?.["image/png"]?.length).toBeGreaterThan(1000)

    // as Jupyter writes one: sources as lines, a markdown cell, no title, the python3 kernel
    const file = join(stack.dataDir, "primes below 20.ipynb")
    writeFileSync(file, JSON.stringify({
      nbformat: 4, nbformat_minor: 5,
      metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" }, language_info: { name: "python" } },
      cells: [
        { id: "intro", cell_type: "markdown", metadata: {}, source: ["# Primes\n", "below twenty"] },
        { id: "sieve", cell_type: "code", metadata: {}, execution_count: 1, source: ["ps = [n for n in range(2, 20)\n", "      if all(n % d for d in range(2, n))]\n", "print(ps)"], outputs: [{ output_type: "stream", name: "stdout", text: ["[2, 3, 5, 7, 11, 13, 17, 19]\n"] }] },
      ],
    }, null, 1))
    await page.setInputFiles("#upload-file", file)
    await expect.poll(() => page.inputValue("#title")).toBe("primes below 20")
    await expect.poll(() => listTitles(page)).toContain("primes below 20")
    expect(await page.inputValue("#kernel")).toBe("python")
    expect(await page.locator(".cell").count()).toBe(2)
    expect(await cellCode(page, 0)).toContain("# Primes")
    expect(await page.locator(".cell").first().innerText()).toContain("markdown cell")
    expect(await cellCode(page, 1)).toContain("if all(n % d for d in range(2, n))]")
    expect(await cellOutput(page, 1)).toContain("[2, 3, 5, 7, 11, 13, 17, 19]")
    expect(await saveState(page)).toBe("saved")
  })

  it("says offline, will retry while saves fail, and saved once one is answered", async () => {
    // PUTs get no answer, as when the network is gone
    const drop = (route: import("playwright-core").Route) => (route.request().method() === "PUT" ? route.abort("internetdisconnected") : route.continue())
    await page.route("**/api/v1/worksheets/*", drop)
    await setCode(page, 1, "print('typed while offline')")
    await expect.poll(() => saveState(page), { timeout: 10_000 }).toBe("offline, will retry")
    await page.unroute("**/api/v1/worksheets/*", drop)
    await saved(page)
    await page.reload()
    await page.waitForSelector("#connection[data-state=open]")
    expect(await cellCode(page, 1)).toContain("typed while offline")
  })

  it("reads well on a phone: the list behind a button, nothing wider than the screen", async () => {
    const phone = await context.newPage()
    try {
      await phone.setViewportSize({ width: 390, height: 844 })
      await phone.goto(worksheetUrl)
      await phone.waitForSelector("#connection[data-state=open]")
      await phone.locator(".cell").nth(1).locator("img.out-image").waitFor()
      expect(await phone.locator("#worksheets").isVisible()).toBe(false)
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      await shoot(phone, "worksheet-phone.png")
      await phone.click("#toggle-worksheets")
      await expect.poll(() => phone.locator("#worksheets").isVisible()).toBe(true)
      expect(await phone.evaluate(() => document.activeElement?.id)).toBe("new-worksheet")
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      await shoot(phone, "worksheets-phone.png")
      await phone.click("#share-button")
      await phone.click("#publish")
      const link = phone.locator("#published-link")
      await link.waitFor()
      const published = await fetch(await link.getAttribute("href") ?? "")
      expect(published.status).toBe(200)
      expect(await published.text()).toContain("Plots")
      await shoot(phone, "share-phone.png")
    } finally {
      await phone.close()
    }
  })

  it("signs in a local account with the keyboard alone: its own, empty list, and the session is its own", async () => {
    await page.click("#sign-out")
    await page.locator("#sign-in-button").waitFor()
    await addUser("bob@example.org")
    await page.focus("#sign-in-button")
    await page.keyboard.press("Enter")
    // the dialog: the provider's button first, then the email and password fields
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe("Sign in with local")
    await page.keyboard.press("Tab")
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("sign-in-email")
    await page.keyboard.type("bob@example.org")
    await page.keyboard.press("Tab")
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("sign-in-password")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect.poll(() => page.locator("#account-email").textContent()).toBe("bob@example.org")
    await expect.poll(() => page.locator("#worksheets .ws-status").innerText()).toMatch(/No worksheets yet/)
    expect(await listTitles(page)).toEqual([])
    // the scratch page kept the uploaded worksheet's python; this stack runs Sage only
    await page.selectOption("#kernel", "sage")
    await setCode(page, 0, "6*7")
    await page.locator(".cell .cm-content").first().click()
    await page.keyboard.press("Shift+Enter")
    await expect.poll(() => cellOutput(page, 0), { timeout: 30_000 }).toContain("42")
    expect(await page.evaluate(() => (window as unknown as { sagews: { client: { identity?: { account?: string } } } }).sagews.client.identity?.account)).toMatch(/^[0-9a-f-]{36}$/)
  })
})
