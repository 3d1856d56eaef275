// Cell output is markup the page must not trust: in real Chromium through haproxy, HTML from a live cell and from a
// result forged into memcached renders in a sandboxed frame (opaque origin) and runs no script as the page or the
// embedding site; plain text, tracebacks and interact labels stay text; the page's CSP refuses inline script.
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import type { Browser, Frame, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cacheKey } from "../../src/backend/cache.ts"
import { kernelVersions } from "../../src/protocol/versions.ts"
import { Memcache } from "../../src/backend/memcache.ts"
import { BACKEND_DEFAULTS } from "../../src/backend/options.ts"
import { postJson, startWebStack, type WebStack } from "../web/harness.ts"
import { buildClient, closeAll, launchChromium, runCell, setCode } from "./chromium.ts"

/** What an attacker plants: a handler and a script that reach for the embedding page, its cookies and its location. */
const ATTACK = `<img src=x onerror="parent.document.title='pwned'; window.top.pwned=1">
<script>
  var seen = [];
  try { seen.push("cookie:" + parent.document.cookie); } catch (e) { seen.push("cookie-blocked:" + e.name); }
  try { top.location = "http://sagews-pwned.invalid/"; seen.push("navigation-tried"); } catch (e) { seen.push("navigation-blocked:" + e.name); }
  try { window.top.pwned = 2; } catch (e) { seen.push("global-blocked:" + e.name); }
  parent.postMessage("probe " + seen.join(" "), "*");
</script>`
/** The same attack as plain text, where the page must show it as text. */
const TEXT_ATTACK = `<img src=x onerror="window.top.pwned=3">`

/** A Python cell whose last value has `_repr_html_`; `show()` displays one more before it. */
const htmlCell = (...parts: Array<string>): string => {
  const shown = parts.slice(0, -1).map((p) => `show(H(${JSON.stringify(p)}))\n`).join("")
  return `class H:\n    def __init__(self, s): self.s = s\n    def _repr_html_(self): return self.s\n${shown}H(${JSON.stringify(parts.at(-1) ?? "")})`
}

let stack: WebStack
let browser: Browser
let page: Page

const frameOf = async (p: Page, selector: string): Promise<Frame> => {
  const frame = await p.locator(selector).elementHandle().then((h) => h?.contentFrame())
  if (frame === null || frame === undefined) throw new Error(`${selector} has no frame`)
  return frame
}

const frameHeight = (p: Page, selector: string): Promise<number> => p.locator(selector).evaluate((node) => node.getBoundingClientRect().height)

beforeAll(async () => {
  await buildClient()
  stack = await startWebStack({ backends: 1, kernels: ["python"], cache: true, haproxy: true, nginx: true })
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1000, height: 800 } })
  // what the page's own document is refused by its CSP (a frame's violations are reported in the frame)
  await page.addInitScript(() => {
    const w = window as { cspViolations?: Array<string> }
    w.cspViolations = []
    document.addEventListener("securitypolicyviolation", (e) => w.cspViolations?.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`))
  })
  await page.goto(`${stack.frontUrl()}/?code=${encodeURIComponent("print(1)")}`)
  await page.waitForSelector("#connection[data-state=open]")
  await page.evaluate(() => {
    const select = document.querySelector<HTMLSelectElement>("#kernel")
    if (select === null) return
    select.value = "python"
    select.dispatchEvent(new Event("change"))
  })
}, 240_000)

afterAll(() => closeAll(browser, stack))

describe("HTML from a live cell on the page", () => {
  it("runs no script in the page's origin", async () => {
    await setCode(page, 0, htmlCell(ATTACK))
    await runCell(page, 0)
    // The broken image has fired its error event once it is complete (markup in the page) or once the frame's
    // document has loaded (markup in a frame).
    await page.waitForFunction(() => {
      const out = document.querySelector(".cell .cell-output")
      const img = out?.querySelector("img")
      return (img instanceof HTMLImageElement && img.complete) || out?.querySelector("iframe") != null
    })
    if (await page.locator(".cell iframe.out-html").count() > 0) await (await frameOf(page, ".cell >> nth=0 >> iframe.out-html")).waitForLoadState("load")
    expect(await page.title()).toBe("sagews")
    expect(await page.evaluate(() => (window as { pwned?: unknown }).pwned)).toBeUndefined()
    expect(page.url()).toContain(stack.frontUrl())
    expect(await page.locator(".cell img").count()).toBe(0)
    expect(await page.locator(".cell").first().locator("iframe.out-html").getAttribute("sandbox")).toBe("allow-scripts")
  })

  it("still shows the markup, in a frame sized to its content", async () => {
    await setCode(page, 0, htmlCell("<b>bold</b>", '<div style="height:400px">tall</div>'))
    await runCell(page, 0)
    const frames = page.locator(".cell").first().locator("iframe.out-html")
    await expect.poll(() => frames.count()).toBe(2)
    const bold = (await frameOf(page, ".cell >> nth=0 >> iframe.out-html >> nth=0")).locator("b")
    expect(await bold.innerText()).toBe("bold")
    expect(Number(await bold.evaluate((node) => getComputedStyle(node).fontWeight))).toBeGreaterThanOrEqual(700)
    // the frame reports its height: small for one line (an iframe is 150 px by default), tall for the tall div
    const small = ".cell >> nth=0 >> iframe.out-html >> nth=0"
    const tall = ".cell >> nth=0 >> iframe.out-html >> nth=1"
    await expect.poll(() => frameHeight(page, small), { timeout: 10_000 }).toBeLessThan(60)
    expect(await frameHeight(page, small)).toBeGreaterThan(10)
    await expect.poll(() => frameHeight(page, tall), { timeout: 10_000 }).toBeGreaterThanOrEqual(400)
    expect(await frameHeight(page, tall)).toBeLessThan(460)
  })

  it("takes a height only as a number and only from the frame itself", async () => {
    const selector = ".cell >> nth=0 >> iframe.out-html >> nth=0"
    const frame = await frameOf(page, selector)
    // This listener is added after the renderer's: once it has seen all five messages, the renderer has too.
    await page.evaluate(() => {
      const w = window as { seenMessages?: number }
      w.seenMessages = 0
      window.addEventListener("message", () => (w.seenMessages = (w.seenMessages ?? 0) + 1))
    })
    await frame.evaluate(() => {
      parent.postMessage(200, "*")
      parent.postMessage("300", "*")
      parent.postMessage({ height: 300 }, "*")
      parent.postMessage(Number.NaN, "*")
    })
    await page.evaluate(() => window.postMessage(300, "*"))
    await expect.poll(() => page.evaluate(() => (window as { seenMessages?: number }).seenMessages)).toBe(5)
    expect(await frameHeight(page, selector)).toBe(200)
  })

  it("keeps plain text, tracebacks and interact labels as text", async () => {
    await setCode(page, 0, `print(${JSON.stringify(TEXT_ATTACK)})\n@interact\ndef f(n=slider(1, 3, 1, label=${JSON.stringify(TEXT_ATTACK)})):\n    pass\nraise ValueError(${JSON.stringify(TEXT_ATTACK)})`)
    await runCell(page, 0)
    const out = page.locator(".cell").first().locator(".cell-output")
    for (const part of [".out-stdout", ".control-label", ".out-error"]) expect(await out.locator(part).innerText(), part).toContain(TEXT_ATTACK)
    expect(await out.locator("img").count()).toBe(0)
    expect(await page.evaluate(() => (window as { pwned?: unknown }).pwned)).toBeUndefined()
  })

  it("still renders LaTeX with KaTeX and plots as data: images, outside any frame", async () => {
    await setCode(page, 0, "import sympy, matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()\nsympy.sqrt(sympy.Symbol('x'))")
    await runCell(page, 0)
    const out = page.locator(".cell").first().locator(".cell-output")
    await out.locator(".katex").waitFor()
    expect(await out.locator("img.out-image").evaluate((node: HTMLImageElement) => node.naturalWidth)).toBeGreaterThan(100)
    expect(await out.locator("iframe").count()).toBe(0)
  })

  it("serves the page with a CSP that refuses inline script, and the page needs nothing it refuses", async () => {
    const response = await page.request.get(`${stack.frontUrl()}/`)
    expect(response.headers()["content-security-policy"]).toMatch(/script-src 'self'/)
    // every cell above ran, KaTeX and frames included, without the page's own document tripping its CSP
    expect(await page.evaluate(() => (window as { cspViolations?: Array<string> }).cspViolations)).toEqual([])
    const outcome = await page.evaluate(
      () =>
        new Promise<{ ran: unknown; violations: Array<string> }>((resolve) => {
          const violations: Array<string> = []
          document.addEventListener("securitypolicyviolation", (e) => violations.push(e.effectiveDirective))
          const holder = document.createElement("div")
          document.body.append(holder)
          // what the old renderer did with a cell's HTML
          holder.innerHTML = `<img src="data:," onerror="window.cspHole=1">`
          // added after the inline handler, so it runs after it would have
          holder.querySelector("img")?.addEventListener("error", () => {
            holder.remove()
            resolve({ ran: (window as { cspHole?: unknown }).cspHole, violations })
          })
        }),
    )
    expect(outcome.ran).toBeUndefined()
    expect(outcome.violations).toContain("script-src-attr")
  })
})

describe("a result forged into memcached, shown by an embed on another site", () => {
  let site: Server | undefined
  afterAll(() => site?.close())

  it("stays contained: its script runs in an opaque origin and cannot reach the embedding page", async () => {
    if (stack.cacheSocket === undefined) throw new Error("the stack has no memcached")
    const code = `print("an innocent cell") # ${Date.now()}`
    // A real run stores the result under the backend's key; the key computed here must find it.
    expect((await postJson(`${stack.frontUrl()}/api/v1/execute`, { kernel: "python", code })).json).toMatchObject({ status: "ok", cached: false })
    const key = cacheKey("python", (await kernelVersions()).python, BACKEND_DEFAULTS.statelessLimits, code)
    const mc = new Memcache(stack.cacheSocket, 2_000)
    try {
      const stored = await mc.get(key)
      expect(stored, `no cached result under ${key}`).toBeDefined()
      const forged = {
        ...(JSON.parse(stored?.toString("utf8") ?? "{}") as object),
        outputs: [
          { kind: "stdout", text: `${TEXT_ATTACK}\n` },
          { kind: "display", data: { "text/plain": "html", "text/html": `<b>forged</b>${ATTACK}` } },
          { kind: "display", data: { "text/plain": TEXT_ATTACK, "text/latex": "\\notamacro{" } },
          { kind: "interact", interact: "1", controls: [{ name: "n", control: "slider", label: TEXT_ATTACK, default: 1, min: 0, max: 2, step: 1 }] },
          { kind: "error", ename: "Error", evalue: TEXT_ATTACK, traceback: [TEXT_ATTACK] },
          { kind: "done", status: "ok" },
        ],
      }
      await mc.set(key, Buffer.from(JSON.stringify(forged)), 60)
      expect((await postJson(`${stack.frontUrl()}/api/v1/execute`, { kernel: "python", code })).json).toMatchObject({ cached: true, outputs: forged.outputs })
    } finally {
      mc.close()
    }

    site = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html", "set-cookie": "host-secret=1" })
      res.end(`<!doctype html><html><head><title>a host page</title></head><body>
        <div data-sagews data-kernel="python">${code}</div>
        <script>window.messages = []; addEventListener("message", (e) => messages.push(e.data));</script>
        <script src="${stack.frontUrl()}/embed.js"></script></body></html>`)
    })
    await new Promise<void>((resolve) => site?.listen(0, "127.0.0.1", resolve))
    const hostUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`
    const host = await browser.newPage()
    try {
      await host.goto(hostUrl)
      await host.locator(".sagews-embed iframe.out-html").waitFor({ timeout: 30_000 })
      await expect.poll(() => host.locator(".sagews-embed .cell-status").innerText(), { timeout: 10_000 }).toContain("cached")
      expect(await host.locator(".sagews-embed iframe.out-html").getAttribute("sandbox")).toBe("allow-scripts")
      const probe = async (): Promise<string | undefined> =>
        (await host.evaluate(() => (window as { messages?: Array<unknown> }).messages ?? [])).find((m): m is string => typeof m === "string" && m.startsWith("probe "))
      await expect.poll(probe, { timeout: 10_000 }).toBeDefined()
      // the script did run, in the frame, and every reach for the host was refused
      expect(await probe()).toMatch(/cookie-blocked:SecurityError/)
      expect(await probe()).toMatch(/global-blocked:SecurityError/)
      expect(await host.title()).toBe("a host page")
      expect(await host.evaluate(() => (window as { pwned?: unknown }).pwned)).toBeUndefined()
      expect(host.url()).toBe(hostUrl)
      const forged = (await frameOf(host, ".sagews-embed iframe.out-html")).locator("b")
      expect(await forged.innerText()).toBe("forged")
      // stdout, the LaTeX fallback, the interact label and the traceback are text
      const out = host.locator(".sagews-embed .cell-output")
      for (const part of [".out-stdout", ".out-text", ".control-label", ".out-error"]) expect(await out.locator(part).innerText(), part).toContain(TEXT_ATTACK)
      expect(await host.locator(".sagews-embed img").count()).toBe(0)
    } finally {
      await host.close()
    }
  })
})
