// Completion, help and a cell's language on the page (issue 11, docs/PAGE.md "Completion and help", "A cell's
// language"), in real headless Chromium through haproxy (nginx for static/, a backend, a Sage worker, PostgreSQL):
// Tab after `facto` lists `factorial` (from the session's kernel) and Enter takes it; Shift-Tab on `factorial` shows
// its docstring under the cell as text, again its source; a cell of `factorial?` prints it; Tab completes while
// another cell runs; Tab at a line's start indents; a cell switched to GP sends `language: "gp"` with its execute,
// and keeps it in the worksheet it is saved in (there again after a reload), on the scratch page and in its permalink;
// a first line %gap runs GAP.
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
const EMAIL = "complete@example.org"

let stack: WebStack
let browser: Browser
let page: Page
/** every message the page sent over its SockJS connection, parsed */
const sent: Array<Record<string, unknown>> = []
const { addUser } = users(() => stack)

beforeAll(async () => {
  await buildClient()
  stack = await startWebStack({ kernels: ["sage"], postgres: true, haproxy: true, nginx: true })
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
  page.on("websocket", (ws) => {
    ws.on("framesent", ({ payload }) => {
      // SockJS frames a batch of messages as a JSON array of JSON strings
      try {
        const batch: unknown = JSON.parse(String(payload))
        for (const text of Array.isArray(batch) ? batch : [payload]) sent.push(JSON.parse(String(text)) as Record<string, unknown>)
      } catch {
        // not a message of ours
      }
    })
  })
  await addUser(EMAIL)
  await page.goto(stack.frontUrl())
  await page.waitForSelector("#connection[data-state=open]")
}, 240_000)

afterAll(() => closeAll(browser, stack))


const cell = (index: number) => page.locator(".cell").nth(index)
const codeOf = (index: number): Promise<string> => page.evaluate((i) => (window as unknown as { sagews: { cells: Array<{ code: string }> } }).sagews.cells[i]?.code ?? "", index)
/** puts the cursor at the end of the cell's code, in its editor */
const typeAtEnd = async (index: number, code: string): Promise<void> => {
  await setCode(page, index, code)
  await cell(index).locator(".cm-content").click()
  await page.keyboard.press("Control+End")
}
const completionList = () => page.locator(".cm-tooltip-autocomplete")

describe("completion and help on the page", () => {
  it("Tab after facto lists factorial from the kernel, and a click takes it", async () => {
    await typeAtEnd(0, "facto")
    await page.keyboard.press("Tab")
    await completionList().waitFor({ timeout: 90_000 }) // the first Tab opens the session
    const labels = await completionList().locator("li").allTextContents()
    expect(labels).toContain("factorial")
    expect(labels).toContain("factor")
    expect(sent.find((m) => m["type"] === "complete")).toMatchObject({ code: "facto", cursor: 5 })
    await completionList().locator("li", { hasText: /^factorial$/ }).click()
    await expect.poll(() => codeOf(0)).toBe("factorial")
  })

  it("Shift-Tab on factorial shows its docstring under the cell, as text; again, its source; Escape closes it", async () => {
    await typeAtEnd(0, "factorial")
    await page.keyboard.press("Shift+Tab")
    const help = cell(0).locator(".cell-help")
    await expect.poll(() => help.locator(".cell-help-title").textContent(), { timeout: 30_000 }).toBe("Help: factorial")
    expect(await help.locator(".cell-help-text").textContent()).toMatch(/Returns the factorial of n\./)
    // text, never markup: the docstring's <, > and & are shown as they are
    expect(await help.locator(".cell-help-text *").count()).toBe(0)
    expect(sent.filter((m) => m["type"] === "inspect").at(-1)).toMatchObject({ code: "factorial", cursor: 9, detail: 0 })
    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: join(SCREENSHOTS, "help-desktop.png") })

    await page.keyboard.press("Shift+Tab")
    await expect.poll(() => help.locator(".cell-help-title").textContent(), { timeout: 30_000 }).toBe("Source: factorial")
    expect(await help.locator(".cell-help-text").textContent()).toMatch(/class Function_factorial\(GinacFunction\):/)
    await help.getByRole("button", { name: "Help", exact: true }).click()
    await expect.poll(() => help.locator(".cell-help-title").textContent()).toBe("Help: factorial")

    await cell(0).locator(".cm-content").click()
    await page.keyboard.press("Escape")
    expect(await help.isVisible()).toBe(false)
    // a name nothing defines: said so, in the same place
    await typeAtEnd(0, "no_such_function_here")
    await page.keyboard.press("Shift+Tab")
    await expect.poll(() => help.locator(".cell-help-title").textContent(), { timeout: 30_000 }).toMatch(/^Nothing is known about no_such_function_here in this session/)
  })

  it("a cell of factorial? shows its docstring as the cell's output, as Sage's shell does", async () => {
    await setCode(page, 0, "factorial?")
    await runCell(page, 0)
    expect(await cellOutput(page, 0)).toMatch(/Returns the factorial of n\./)
    expect(await cellOutput(page, 0)).not.toMatch(/SyntaxError/)
  })

  it("completes while another cell runs; Tab at a line's start indents", async () => {
    await setCode(page, 0, "print('start')\nsleep(5)\nprint('end')")
    await cell(0).locator("button.run").click()
    await page.click("#add-cell")
    await typeAtEnd(1, "ZZ.random_el")
    await page.keyboard.press("Tab")
    await completionList().waitFor({ timeout: 3_000 })
    expect(await completionList().locator("li").allTextContents()).toEqual(["random_element"])
    // as a person: CodeMirror takes no key in a list's first 75 ms (its interactionDelay), so a key then is not a slip
    await page.waitForTimeout(150)
    await page.keyboard.press("Enter")
    await expect.poll(() => codeOf(1)).toBe("ZZ.random_element")
    expect(await cell(0).getAttribute("class")).toMatch(/running/)
    await page.waitForFunction(() => !document.querySelectorAll(".cell")[0]?.classList.contains("running"), undefined, { timeout: 30_000 })
    expect(await cellOutput(page, 0)).toMatch(/^start\s+end\s*$/)

    await typeAtEnd(1, "for i in range(2):\n")
    await page.keyboard.press("Tab")
    await page.keyboard.type("i")
    await expect.poll(() => codeOf(1)).toMatch(/^for i in range\(2\):\n\s+i$/)
  })
})

describe("a cell's language", () => {
  it("a cell switched to GP sends language: gp with its execute; one left alone sends none", async () => {
    await setCode(page, 1, "factorint(2^64 - 1)")
    await cell(1).locator("select.cell-language").selectOption("gp")
    expect(await cell(1).getAttribute("data-language")).toBe("gp")
    await runCell(page, 1)
    const execute = sent.filter((m) => m["type"] === "execute").at(-1)
    expect(execute).toMatchObject({ type: "execute", code: "factorint(2^64 - 1)", language: "gp" })
    // and the kernel ran it in PARI/GP (factorint is GP's: Sage has no such name)
    expect(await cellOutput(page, 1)).toMatch(/6700417/)
    expect(await cellOutput(page, 1)).not.toMatch(/NameError/)
    // the first cell is in the kernel's own language: its executes carry none
    await setCode(page, 0, "1 + 1")
    await runCell(page, 0)
    expect(sent.filter((m) => m["type"] === "execute").at(-1)).not.toHaveProperty("language")
    expect(await cell(0).locator("select.cell-language").inputValue()).toBe("sage")
  })

  it("the scratch page keeps a GP cell's language across a reload, and so does its permalink in a fresh browser", async () => {
    await page.reload()
    await page.waitForSelector("#connection[data-state=open]")
    await expect.poll(() => cell(1).locator("select.cell-language").inputValue(), { timeout: 15_000 }).toBe("gp")
    expect(await codeOf(1)).toBe("factorint(2^64 - 1)")
    expect(await cell(0).locator("select.cell-language").inputValue()).toBe("sage")
    await cell(1).getByRole("button", { name: "Permalink" }).click()
    const z = page.locator("#permalink-z")
    await expect.poll(() => z.inputValue(), { timeout: 15_000 }).toMatch(/\?z=/)
    const link = await z.inputValue()
    await page.keyboard.press("Escape")
    const context = await browser.newContext()
    try {
      const fresh = await context.newPage()
      await fresh.goto(link)
      await fresh.waitForSelector("#connection[data-state=open]")
      const first = fresh.locator(".cell").first()
      await expect.poll(() => first.locator("select.cell-language").inputValue(), { timeout: 15_000 }).toBe("gp")
      await runCell(fresh, 0)
      expect(await cellOutput(fresh, 0)).toMatch(/6700417/)
    } finally {
      await context.close()
    }
  })

  it("a cell whose first line is %gap runs in GAP, in the same session", async () => {
    await setCode(page, 0, "%gap\nList([1..5], i -> i^2);")
    await runCell(page, 0)
    // GAP's own list syntax and printing: Sage would reject `i -> i^2`
    expect(await cellOutput(page, 0)).toMatch(/\[ 1, 4, 9, 16, 25 \]/)
    await setCode(page, 0, "1 + 1")
    await runCell(page, 0)
    expect(await cellOutput(page, 0)).toMatch(/^2\s*$/)
  })

  it("keeps the language in the worksheet the cell is saved in, there again after a reload", async () => {
    await page.click("#sign-in-button")
    await page.fill("#sign-in-email", EMAIL)
    await page.fill("#sign-in-password", PASSWORD)
    await page.press("#sign-in-password", "Enter")
    await page.waitForSelector("#account-email")
    await page.click("#save-scratch")
    await expect.poll(() => new URL(page.url()).searchParams.get("w"), { timeout: 15_000 }).not.toBeNull()
    // the scratch page's GP cell is a GP cell of the worksheet it is saved as
    await expect.poll(() => page.locator("#save-state").textContent(), { timeout: 15_000 }).toBe("saved")
    const id = new URL(page.url()).searchParams.get("w") ?? ""
    const notebook = await page.evaluate(async (w) => (await (await fetch(`/api/v1/worksheets/${w}`)).json()) as { cells: Array<{ metadata: Record<string, unknown> }> }, id)
    expect(notebook.cells.map((c) => c.metadata)).toEqual([{}, { sagews: { language: "gp" } }])
    await page.reload()
    await page.waitForSelector("#connection[data-state=open]")
    await expect.poll(() => cell(1).locator("select.cell-language").inputValue(), { timeout: 15_000 }).toBe("gp")
    expect(await cell(0).locator("select.cell-language").inputValue()).toBe("sage")
  })
})
