// The page in real headless Chromium through haproxy (nginx for static/, two backends, a Sage+Python worker, PostgreSQL):
// a Sage cell, a plot, an interact slider, a terminal, every SockJS transport, a phone screenshot, and a backend
// SIGKILLed during a computation with the whole output shown once.
import { existsSync, mkdirSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { gatherSessions, killCommand, workerSockets } from "../../src/cli/sessions.ts"
import { startWebStack, type WebStack } from "../web/harness.ts"
import { buildClient, cellOutput, closeAll, launchChromium, runCell, setCode } from "./chromium.ts"

let stack: WebStack
let browser: Browser
let page: Page
/** where the screenshots go (look at them): $SAGEWS_SCREENSHOTS, else a directory under the system temp dir */
const SCREENSHOTS = process.env["SAGEWS_SCREENSHOTS"] ?? join(tmpdir(), "sagews-screenshots")

beforeAll(async () => {
  await buildClient()
  stack = await startWebStack({ backends: 2, kernels: ["sage", "python"], postgres: true, haproxy: true, nginx: true })
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
  await page.goto(stack.frontUrl())
  await page.waitForSelector("#connection[data-state=open]")
}, 240_000)

afterAll(() => closeAll(browser, stack))

describe("the page", () => {
  it("runs a Sage cell with shift-enter and renders its LaTeX result", async () => {
    await page.locator(".cell .cm-content").first().click()
    await page.keyboard.press("Shift+Enter")
    const cell = page.locator(".cell").first()
    await cell.locator(".katex").waitFor({ timeout: 90_000 })
    expect(await cell.locator(".cell-output").innerText()).toMatch(/x\s*\+\s*1/)
    expect(await cell.getAttribute("class")).not.toMatch(/running/)
  })

  it("shows a plot", async () => {
    await setCode(page, 0, "plot(sin(x), (x, 0, 2*pi))")
    await runCell(page, 0)
    const img = page.locator(".cell").first().locator("img.out-image")
    await img.waitFor({ timeout: 60_000 })
    expect(await img.evaluate((node: HTMLImageElement) => node.naturalWidth)).toBeGreaterThan(100)
  })

  it("re-runs an interact when its slider moves", async () => {
    await setCode(page, 0, "@interact\ndef f(n=slider(1, 10, 1, default=3)):\n    print('square', n*n)")
    await runCell(page, 0)
    await expect.poll(() => cellOutput(page, 0), { timeout: 30_000 }).toContain("square 9")
    const slider = page.locator(".cell").first().locator("input[type=range]")
    await slider.evaluate((node: HTMLInputElement) => {
      node.value = "7"
      node.dispatchEvent(new Event("input"))
      node.dispatchEvent(new Event("change"))
    })
    await expect.poll(() => cellOutput(page, 0), { timeout: 30_000 }).toContain("square 49")
    expect(await cellOutput(page, 0)).not.toContain("square 9")
  })

  it("echoes in the terminal", async () => {
    await page.click("#toggle-terminal")
    await page.locator(".xterm").waitFor()
    await expect.poll(() => page.locator(".xterm-rows").innerText(), { timeout: 30_000 }).toMatch(/[$#] *$/m)
    await page.locator(".xterm").click()
    await page.keyboard.type("echo sagews-$((6*7))\n")
    await expect.poll(() => page.locator(".xterm-rows").innerText(), { timeout: 20_000 }).toContain("sagews-42")
    await page.click("#toggle-terminal")
  })

  it.each(["websocket", "xhr-streaming", "xhr-polling"])("talks SockJS over %s through haproxy", async (transport) => {
    const reply = await page.evaluate(async (t) => {
      const w = window as unknown as { sagews: { SagewsClient: new (url: string, o: object) => { run(code: string, o: object): Promise<{ reply: { type: string; status?: string }; outputs: Array<{ kind: string; text?: string }> }>; close(): void } } }
      const client = new w.sagews.SagewsClient(`${location.origin}/sockjs`, { transports: [t] })
      const result = await client.run(`print('via ${t}')`, { kernel: "python", cache: false })
      client.close()
      return result
    }, transport)
    expect(reply.reply).toMatchObject({ type: "runDone", status: "ok" })
    expect(reply.outputs[0]).toEqual({ kind: "stdout", text: `via ${transport}\n` })
  })

  it("reads well on a phone", async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true })
    await phone.goto(stack.frontUrl())
    await phone.waitForSelector("#connection[data-state=open]")
    await setCode(phone, 0, "var('x')\nshow(integrate(x^2 * sin(x), x))")
    await runCell(phone, 0)
    await phone.locator(".cell .katex").first().waitFor({ timeout: 60_000 })
    const width = await phone.evaluate(() => document.documentElement.scrollWidth)
    expect(width).toBeLessThanOrEqual(390)
    if (!existsSync(SCREENSHOTS)) mkdirSync(SCREENSHOTS, { recursive: true })
    await phone.screenshot({ path: join(SCREENSHOTS, "phone.png") })
    await phone.close()
  })

  it("keeps the cells, the session's variables and its identity across a reload", async () => {
    type Client = { sagews: { client: { identity?: { client: string } } } }
    const identity = (): Promise<string | undefined> => page.evaluate(() => (window as unknown as Client).sagews.client.identity?.client)
    await setCode(page, 0, "kept = 6 * 7")
    await runCell(page, 0)
    const before = await identity()
    expect(before).toMatch(/^[A-Za-z0-9_-]{22}$/)
    await page.waitForTimeout(400) // the code is saved 300 ms after the last edit
    await page.reload()
    await page.waitForSelector("#connection[data-state=open]")
    // the same client to the admission limits, not a new one per reload
    await expect.poll(identity).toBe(before)
    expect(await page.locator(".cell .cm-content").first().innerText()).toContain("kept = 6 * 7")
    await setCode(page, 0, "print(kept)")
    await runCell(page, 0)
    expect((await cellOutput(page, 0)).trim()).toBe("42")
  })

  it("names the limit when one ends the session", async () => {
    await page.evaluate(() => {
      (window as unknown as { sagews: { settings: { limits?: object } } }).sagews.settings.limits = { exec: 1 }
      const select = document.querySelector<HTMLSelectElement>("#kernel")
      if (select === null) return
      select.value = "python"
      select.dispatchEvent(new Event("change"))
    })
    await setCode(page, 0, "import time\ntime.sleep(20)")
    await runCell(page, 0, 30_000)
    const notice = page.locator("#notice")
    await expect.poll(() => notice.innerText(), { timeout: 20_000 }).toMatch(/limit "exec" reached/)
    expect(await notice.innerText()).toMatch(/exec time limit \(1 s\)/)
    await page.evaluate(() => {
      delete (window as unknown as { sagews: { settings: { limits?: object } } }).sagews.settings.limits
    })
  })

  it("says so when an operator ends the page's session with `sagews kill`", async () => {
    await setCode(page, 0, "'alive'")
    await runCell(page, 0)
    await expect.poll(() => cellOutput(page, 0), { timeout: 30_000 }).toContain("alive")
    const { reports } = await gatherSessions(workerSockets(stack.dataDir))
    // the page runs python since the test before: its newest python session is the one that just ran
    const [newest] = reports.flatMap((r) => r.report.live).filter((s) => s.kind === "python").sort((a, b) => b.startedAt - a.startedAt)
    expect(newest).toBeDefined()
    const out: Array<string> = []
    const code = await killCommand({ dataDir: stack.dataDir, session: newest!.id, out: (l) => out.push(l), err: (l) => out.push(l) })
    expect(code, out.join("\n")).toBe(0)
    const notice = page.locator("#notice")
    await expect.poll(() => notice.innerText(), { timeout: 20_000 }).toMatch(/ClosedByOperator/)
    expect(await notice.innerText()).toMatch(/an operator ended this session/)
  })

  it("turns <div data-sagews> on another site into a cell that evaluates in place", async () => {
    const site = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" })
      res.end(`<!doctype html><html><body><h1>A page about sums</h1>
        <div data-sagews data-kernel="python">print(sum(range(101)))</div>
        <script src="${stack.frontUrl()}/embed.js"></script></body></html>`)
    })
    await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve))
    const address = site.address()
    const other = await browser.newPage()
    try {
      await other.goto(`http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/`)
      await expect.poll(() => other.locator(".sagews-embed .cell-output").innerText().catch(() => ""), { timeout: 30_000 }).toContain("5050")
      expect(await other.locator(".sagews-embed .cm-content").innerText()).toContain("print(sum(range(101)))")
    } finally {
      await other.close()
      site.close()
    }
  })

  it("SIGKILL of the backend serving the page during a computation: reconnects through another, whole output once", async () => {
    await page.evaluate(() => {
      const select = document.querySelector<HTMLSelectElement>("#kernel")
      if (select === null) return
      select.value = "sage"
      select.dispatchEvent(new Event("change"))
    })
    await setCode(page, 0, "import time\nfor i in range(40):\n    print('line', i)\n    time.sleep(float(0.05))")
    const done = runCell(page, 0)
    await expect.poll(() => cellOutput(page, 0), { timeout: 30_000 }).toContain("line 5")
    type Client = { sagews: { client: { backend: string; identity?: { client: string } } } }
    const serving = await page.evaluate(() => (window as unknown as Client).sagews.client.backend)
    const identity = await page.evaluate(() => (window as unknown as Client).sagews.client.identity?.client)
    expect(identity).toMatch(/^[A-Za-z0-9_-]{22}$/)
    const victim = stack.backends[Number(serving.split(":")[1]) - 1]
    await victim?.stop("SIGKILL")
    await done
    const text = await cellOutput(page, 0)
    expect(text.trim().split("\n")).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i}`))
    await page.waitForSelector("#connection[data-state=open]")
    const now = await page.evaluate(() => (window as unknown as Client).sagews.client.backend)
    expect(now).not.toBe(serving)
    // the other backend took the token the first one issued: the page is still the same client
    expect(await page.evaluate(() => (window as unknown as Client).sagews.client.identity?.client)).toBe(identity)
    await page.screenshot({ path: join(SCREENSHOTS, "desktop.png") })
  })
})
