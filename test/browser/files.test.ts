// The account's files on the page (docs/PAGE.md "Files"), in real headless Chromium through haproxy (nginx for
// static/, a backend, a Sage worker, PostgreSQL) with a local account: x.sage uploaded through the Files panel is in
// the home of the next session, so load("x.sage") defines its function; a file a run writes is offered under the
// cell, saved into the workspace by "Save to workspace", listed by the panel and served by GET /api/v1/files/{path};
// a file uploaded while a session runs reaches it after "Restart session"; Delete removes one.
import { mkdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startWebStack, type WebStack } from "../web/harness.ts"
import { PASSWORD, users } from "../web/users.ts"
import { buildClient, cellOutput, closeAll, launchChromium, runCell, setCode } from "./chromium.ts"

/** where the screenshots go (look at them): $SAGEWS_SCREENSHOTS, else a directory under the system temp dir */
const SCREENSHOTS = process.env["SAGEWS_SCREENSHOTS"] ?? join(tmpdir(), "sagews-screenshots")
const EMAIL = "files@example.org"
// Sage's ^ is a power once preparsed: load() of a .sage file preparses it
const X_SAGE = "def f(n):\n    return n^2 + 1\n"

let stack: WebStack
let browser: Browser
let page: Page
const { addUser } = users(() => stack)

beforeAll(async () => {
  await buildClient()
  stack = await startWebStack({ kernels: ["sage"], postgres: true, haproxy: true, nginx: true })
  browser = await launchChromium()
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  page = await context.newPage()
  await addUser(EMAIL)
  await page.goto(stack.frontUrl())
  await page.waitForSelector("#connection[data-state=open]")
  await page.click("#sign-in-button")
  await page.fill("#sign-in-email", EMAIL)
  await page.fill("#sign-in-password", PASSWORD)
  await page.press("#sign-in-password", "Enter")
  await page.waitForSelector("#account-email")
}, 240_000)

afterAll(() => closeAll(browser, stack))

const listed = (): Promise<Array<string>> => page.locator("#file-items .ws-open").allTextContents()
const upload = (name: string, text: string): Promise<void> =>
  page.setInputFiles("#files-input", { name, mimeType: "text/plain", buffer: Buffer.from(text) })
/** GET /api/v1/files/{path} with the page's cookie: its status and text */
const served = (path: string): Promise<{ status: number; text: string }> =>
  page.evaluate(async (p) => {
    const r = await fetch(`/api/v1/files/${p}`)
    return { status: r.status, text: await r.text() }
  }, path)
const addCell = async (code: string): Promise<number> => {
  await page.click("#add-cell")
  const index = (await page.locator(".cell").count()) - 1
  await setCode(page, index, code)
  return index
}

describe("files on the page", () => {
  it("uploads x.sage through the Files panel, and a new session's load('x.sage') defines its function", async () => {
    await expect.poll(() => page.locator("#files-status").textContent()).toMatch(/No files yet/)
    await upload("x.sage", X_SAGE)
    await expect.poll(() => page.locator("#files-status").textContent()).toBe("x.sage saved.")
    await expect.poll(listed).toEqual(["x.sage"])
    expect(await page.locator('#file-items a[aria-label="Download x.sage"]').getAttribute("href")).toBe("/api/v1/files/x.sage")
    expect(await served("x.sage")).toEqual({ status: 200, text: X_SAGE })

    await setCode(page, 0, 'load("x.sage"); f(3)')
    await runCell(page, 0)
    // a Sage display: its text/latex in KaTeX (MathML and HTML, so the text is there twice)
    await expect.poll(() => cellOutput(page, 0)).toMatch(/^10(\n10)?$/)
  })

  it("offers what a run wrote; Save to workspace says saved, the panel lists it and GET serves it", async () => {
    const writer = await addCell('with open("out.txt", "w") as fh:\n    _ = fh.write("written by sage ✓\\n")')
    await runCell(page, writer)
    const offer = page.locator(".cell").nth(writer).locator(".file-offers")
    await expect.poll(() => offer.locator("li code").allTextContents()).toEqual(["out.txt"])
    await offer.getByRole("button", { name: "Save out.txt to workspace" }).click()
    await expect.poll(() => offer.locator(".file-state").textContent()).toBe("saved")
    await expect.poll(listed).toEqual(["out.txt", "x.sage"])
    expect(await served("out.txt")).toEqual({ status: 200, text: "written by sage ✓\n" })

    // the next run offers only what it wrote, not out.txt again
    const other = await addCell('_ = open("b.txt", "w").write("b")')
    await runCell(page, other)
    await expect.poll(() => page.locator(".cell").nth(other).locator(".file-offers li code").allTextContents()).toEqual(["b.txt"])
    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: join(SCREENSHOTS, "files-desktop.png") })
  })

  it("a file uploaded while a session runs reaches it after Restart session", async () => {
    await upload("y.sage", "def g(n):\n    return n^3\n")
    await expect.poll(() => page.locator("#files-status").textContent()).toMatch(/^y\.sage saved\. Restart session to load it/)
    const reader = await addCell('load("y.sage"); g(2)')
    await runCell(page, reader)
    await expect.poll(() => cellOutput(page, reader)).toMatch(/y\.sage/)
    expect(await page.locator(".cell").nth(reader).locator(".out-error").count()).toBe(1)
    await page.locator("#files-status").getByRole("button", { name: "Restart session" }).click()
    await runCell(page, reader)
    await expect.poll(() => cellOutput(page, reader)).toMatch(/^8(\n8)?$/)
  })

  it("on a phone, the panel is behind the Files button", async () => {
    await page.setViewportSize({ width: 390, height: 844 })
    try {
      expect(await page.locator("#files").isVisible()).toBe(false)
      await page.click("#toggle-files")
      expect(await page.locator("#toggle-files").getAttribute("aria-expanded")).toBe("true")
      expect(await page.locator("#file-items").isVisible()).toBe(true)
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      await page.screenshot({ path: join(SCREENSHOTS, "files-phone.png") })
      await page.click("#toggle-files")
      expect(await page.locator("#files").isVisible()).toBe(false)
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 })
    }
  })

  it("Delete removes a file from the workspace", async () => {
    page.once("dialog", (dialog) => void dialog.accept())
    await page.getByRole("button", { name: "Delete y.sage" }).click()
    await expect.poll(listed).toEqual(["out.txt", "x.sage"])
    expect((await served("y.sage")).status).toBe(404)
  })
})
