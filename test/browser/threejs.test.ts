// A Sage 3-D plot in real headless Chromium through haproxy and nginx: the page shows it in the sandboxed 3-D viewer
// (static/three/, three.js from Debian's libjs-three), drawn with WebGL, turned by a drag and zoomed by the wheel; the
// viewer cannot reach the page, fetches nothing, ignores malformed scenes, and works in an embed on another site.
import { mkdirSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Browser, Frame, Locator, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startWebStack, type WebStack } from "../web/harness.ts"
import { buildClient, closeAll, launchChromium, runCell, setCode } from "./chromium.ts"

/** where the screenshots go (look at them): $SAGEWS_SCREENSHOTS, else a directory under the system temp dir */
const SCREENSHOTS = process.env["SAGEWS_SCREENSHOTS"] ?? join(tmpdir(), "sagews-screenshots")
/** y is not one of Sage's predefined variables */
const PLOT = "x, y = var('x y')\nplot3d(sin(x*y), (x,-2,2), (y,-2,2))"

let stack: WebStack
let browser: Browser
let page: Page

beforeAll(async () => {
  await buildClient()
  stack = await startWebStack({ backends: 1, kernels: ["sage"], haproxy: true, nginx: true })
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
  await page.goto(stack.frontUrl())
  await page.waitForSelector("#connection[data-state=open]")
}, 240_000)

afterAll(() => closeAll(browser, stack))

/** The viewer frame under `frameLocator`, once it has drawn its scene. */
const drawnViewer = async (frameLocator: Locator): Promise<Frame> => {
  await frameLocator.waitFor({ timeout: 90_000 })
  const frame = await frameLocator.elementHandle().then((h) => h?.contentFrame())
  if (frame === null || frame === undefined) throw new Error("the 3-D output has no frame")
  await frame.waitForSelector("html[data-state=drawn]", { timeout: 30_000 })
  return frame
}

/**
 * The canvas's pixels read back inside the frame (three.js keeps its drawing buffer for that): a 64 × 64 sample of
 * RGB values, and how many of them are not the white background.
 */
const sample = (frame: Frame): Promise<{ pixels: Array<number>; drawn: number; webgl: boolean }> =>
  frame.evaluate(() => {
    const canvas = document.querySelector("canvas")
    if (canvas === null) return { pixels: [], drawn: 0, webgl: false }
    const webgl = canvas.getContext("webgl") !== null || canvas.getContext("webgl2") !== null
    const small = document.createElement("canvas")
    small.width = 64
    small.height = 64
    const context = small.getContext("2d")
    context?.drawImage(canvas, 0, 0, 64, 64)
    const data = context?.getImageData(0, 0, 64, 64).data ?? new Uint8ClampedArray()
    const pixels: Array<number> = []
    let drawn = 0
    for (let i = 0; i < data.length; i += 4) {
      pixels.push(data[i] ?? 0, data[i + 1] ?? 0, data[i + 2] ?? 0)
      if ((data[i] ?? 0) < 240 || (data[i + 1] ?? 0) < 240 || (data[i + 2] ?? 0) < 240) drawn++
    }
    return { pixels, drawn, webgl }
  })

/** How many of the sampled values differ by more than a little (antialiasing may move a few by one or two). */
const differing = (a: Array<number>, b: Array<number>): number => a.filter((v, i) => Math.abs(v - (b[i] ?? 0)) > 8).length

describe("a 3-D plot on the page", () => {
  let frame: Frame
  const viewer = (): Locator => page.locator(".cell").first().locator("iframe.out-threejs")

  it("is drawn with WebGL in the sandboxed viewer, at a fixed size", async () => {
    await setCode(page, 0, PLOT)
    await runCell(page, 0)
    frame = await drawnViewer(viewer())
    expect(await viewer().getAttribute("sandbox")).toBe("allow-scripts")
    expect(await viewer().getAttribute("src")).toBe("/three/viewer.html")
    const box = await viewer().boundingBox()
    expect(box?.height).toBe(400)
    expect(box?.width).toBeGreaterThan(500)
    const { webgl, drawn } = await sample(frame)
    expect(webgl).toBe(true)
    // the surface and its frame cover a good part of the canvas, not a few stray pixels
    expect(drawn).toBeGreaterThan(400)
    const canvas = await frame.locator("canvas").boundingBox()
    expect(canvas?.height).toBe(400)
  })

  it("turns when dragged and zooms with the wheel", async () => {
    mkdirSync(SCREENSHOTS, { recursive: true })
    const canvas = frame.locator("canvas")
    const before = await canvas.screenshot({ path: join(SCREENSHOTS, "threejs-before.png") })
    const first = await sample(frame)
    const box = await viewer().boundingBox()
    if (box === null) throw new Error("the viewer has no box")
    const cx = box.x + box.width / 2
    const cy = box.y + box.height / 2
    await page.mouse.move(cx - 150, cy)
    await page.mouse.down()
    await page.mouse.move(cx + 150, cy + 40, { steps: 15 })
    await page.mouse.up()
    const after = await canvas.screenshot({ path: join(SCREENSHOTS, "threejs-after-drag.png") })
    expect(after.equals(before)).toBe(false)
    const turned = await sample(frame)
    // a rotation moves most of the surface: far more than antialiasing noise
    expect(differing(first.pixels, turned.pixels)).toBeGreaterThan(300)
    expect(turned.drawn).toBeGreaterThan(400)
    await page.mouse.move(cx, cy)
    await page.mouse.wheel(0, -600)
    await expect.poll(async () => differing(turned.pixels, (await sample(frame)).pixels), { timeout: 10_000 }).toBeGreaterThan(300)
    await canvas.screenshot({ path: join(SCREENSHOTS, "threejs-after-wheel.png") })
  })

  it("cannot reach the page, its cookies or the network", async () => {
    expect(await frame.evaluate(() => origin)).toBe("null")
    expect(await frame.evaluate(() => {
      try {
        return parent.document.title
      } catch (error) {
        return `blocked: ${error instanceof Error ? error.name : String(error)}`
      }
    })).toBe("blocked: SecurityError")
    expect(await frame.evaluate(() => {
      try {
        return document.cookie
      } catch (error) {
        return `blocked: ${error instanceof Error ? error.name : String(error)}`
      }
    })).toBe("blocked: SecurityError")
    // connect-src 'none': not even its own server
    expect(await frame.evaluate(() => fetch("/sockjs/info").then(() => "fetched", (error: unknown) => `refused: ${String(error)}`))).toMatch(/^refused/)
  })

  it("is served with its own strict CSP, and three.js from Debian's files", async () => {
    const viewerPage = await fetch(`${stack.frontUrl()}/three/viewer.html`)
    expect(viewerPage.status).toBe(200)
    const csp = viewerPage.headers.get("content-security-policy") ?? ""
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'none'", "object-src 'none'", "base-uri 'none'"]) expect(csp).toContain(directive)
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/)
    for (const lib of ["three.min.js", "examples/js/controls/OrbitControls.js", "examples/js/lines/LineSegments2.js"]) {
      const script = await fetch(`${stack.frontUrl()}/three/lib/${lib}`)
      expect(script.status, lib).toBe(200)
      expect(script.headers.get("content-type"), lib).toMatch(/javascript/)
    }
    expect(await (await fetch(`${stack.frontUrl()}/three/lib/three.min.js`)).text()).toContain("REVISION=\"111\"")
    // the page's own policy is still its own: scripts from its files and the frames' size reporter, nothing inline
    const front = (await fetch(stack.frontUrl())).headers.get("content-security-policy") ?? ""
    expect(front).toMatch(/script-src 'self' 'sha256-[^']+'/)
    expect(front).not.toMatch(/unsafe-inline|unsafe-eval/)
  })
})

describe("the viewer's one message", () => {
  it("is taken only as the JSON text of a scene: anything else leaves it waiting; a scene with bad parts draws the rest", async () => {
    const alone = await browser.newPage({ viewport: { width: 600, height: 400 } })
    try {
      // a viewer in a top-level tab is its own parent: this page may post to it as the cell's page would
      await alone.goto(`${stack.frontUrl()}/three/viewer.html`)
      await alone.waitForFunction(() => typeof (window as { sagewsReadScene?: unknown }).sagewsReadScene === "function")
      const state = (): Promise<string | undefined> => alone.evaluate(() => document.documentElement.dataset["state"])
      const surface = { vertices: [{ x: 0, y: 0, z: 0 }, { x: 1, y: 0, z: 0 }, { x: 0, y: 1, z: 1 }], faces: [[0, 1, 2]], color: "#ff0000", opacity: 1 }
      const scene = { options: {}, bounds: [{ x: 0, y: 0, z: 0 }, { x: 1, y: 1, z: 1 }], lights: [], ambient: { color: "#7f7f7f" }, texts: [], points: [], lines: [], surfaces: [surface] }
      const malformed: Array<unknown> = [
        "not json {",
        scene, // an object, not its JSON text
        JSON.stringify({ ...scene, surfaces: "many" }),
        JSON.stringify([scene]),
        JSON.stringify(null),
        42,
      ]
      for (const message of malformed) {
        await alone.evaluate((m) => window.postMessage(m, "*"), message)
      }
      // messages are delivered in order: once this one is seen, the malformed ones before it have been too
      await alone.evaluate(() => new Promise((resolve) => {
        window.addEventListener("message", resolve, { once: true })
        window.postMessage("probe", "*")
      }))
      expect(await state()).toBe("waiting")
      expect(await alone.locator("canvas").count()).toBe(0)
      // bad parts are dropped one by one: a face naming a missing vertex, a color that is CSS, a NaN-turned-null
      const rough = {
        ...scene,
        options: { frame: "yes", axesLabels: ["<b>x</b>", "y", "z"], aspectRatio: [1, "2", null] },
        surfaces: [surface, { ...surface, faces: [[0, 1, 99]] }, { ...surface, color: "red;background:url(//evil)" }],
        points: [{ point: [null, 0, 1], size: 5, color: "#000", opacity: 1 }],
        texts: [{ text: "<img src=x onerror=alert(1)>", x: 0, y: 0, z: 0, color: "#000000", fontSize: 1e9 }],
      }
      await alone.evaluate((m) => window.postMessage(m, "*"), JSON.stringify(rough))
      await alone.waitForSelector("html[data-state=drawn]", { timeout: 10_000 })
      expect(await alone.locator("canvas").count()).toBe(1)
      expect(await alone.locator("img").count()).toBe(0)
      // once drawn, a second scene is not looked at
      await alone.evaluate((m) => window.postMessage(m, "*"), JSON.stringify(scene))
      await alone.evaluate(() => new Promise((resolve) => {
        window.addEventListener("message", resolve, { once: true })
        window.postMessage("probe", "*")
      }))
      expect(await alone.locator("canvas").count()).toBe(1)
    } finally {
      await alone.close()
    }
  })
})

describe("a 3-D plot in an embed on another site", () => {
  it("loads the viewer from the sagews server", async () => {
    const site = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" })
      res.end(`<!doctype html><html><body><h1>A page about surfaces</h1>
        <div data-sagews data-cache="false">${PLOT}</div>
        <script src="${stack.frontUrl()}/embed.js"></script></body></html>`)
    })
    await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve))
    const other = await browser.newPage({ viewport: { width: 900, height: 800 } })
    try {
      await other.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`)
      const viewer = other.locator(".sagews-embed iframe.out-threejs")
      const frame = await drawnViewer(viewer)
      expect(await viewer.getAttribute("src")).toBe(`${stack.frontUrl()}/three/viewer.html`)
      expect((await sample(frame)).drawn).toBeGreaterThan(400)
    } finally {
      await other.close()
      site.close()
    }
  })
})
