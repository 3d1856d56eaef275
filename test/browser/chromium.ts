// Browser test helpers: the client build, Debian's Chromium through playwright-core (no browser download), and
// cell helpers that drive the page the way a person does (CodeMirror content, the Run button, the output text).
import { execFile } from "node:child_process"
import { join } from "node:path"
import { chromium, type Browser, type Page } from "playwright-core"
import { expect } from "vitest"
import { processesOf, ROOT, type WebStack } from "../web/harness.ts"

export const buildClient = (): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile(process.execPath, [join(ROOT, "src/setup/build-client.ts")], (error, _stdout, stderr) => (error ? reject(new Error(`client build failed: ${stderr}`)) : resolve()))
  })

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
      // playwright gives every launch a fresh temporary profile (no --user-data-dir needed)
    ],
  })

/** How every browser test file ends: Chromium closed, the stack stopped, and none of its processes left. */
export const closeAll = async (browser: Browser | undefined, stack: WebStack | undefined): Promise<void> => {
  await browser?.close()
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
}

type PageWindow = { sagews: { cells: Array<{ editor: { state: { doc: { length: number } }; dispatch(t: object): void }; run(): Promise<void> }> } }

export const setCode = (page: Page, index: number, code: string): Promise<void> =>
  page.evaluate(([i, c]) => {
    const cell = (window as unknown as PageWindow).sagews.cells[i as number]
    cell?.editor.dispatch({ changes: { from: 0, to: cell.editor.state.doc.length, insert: c } })
  }, [index, code] as const)

/** Clicks the cell's Run button and resolves when the cell is no longer running. */
export const runCell = async (page: Page, index: number, timeout = 90_000): Promise<void> => {
  const cell = page.locator(".cell").nth(index)
  await cell.locator("button.run").click()
  await page.waitForFunction((i) => !document.querySelectorAll(".cell")[i]?.classList.contains("running"), index, { timeout })
}

export const cellOutput = (page: Page, index: number): Promise<string> => page.locator(".cell").nth(index).locator(".cell-output").innerText()
