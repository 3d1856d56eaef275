// The embed bundle behind /embed.js: turns every `<div data-sagews>code</div>` on any page into a cell that
// evaluates in place (stateless, cached), in `data-language` when it names one. Cells run one at a time: a new run on
// a connection cancels the running one.
import "./jitless.ts"
import "./cell.css"
import { Cell, type CellRunner } from "./cell.ts"
import { SagewsClient } from "./connection.ts"
import { setViewerOrigin } from "./frame.ts"
import { LANGUAGES } from "./language.ts"
import type { KernelKind, Language } from "./types.ts"

const origin = (document.currentScript as HTMLScriptElement | null)?.dataset["origin"] ?? (window as { SAGEWS_ORIGIN?: string }).SAGEWS_ORIGIN ?? location.origin
const client = new SagewsClient(`${origin}/sockjs`)
// 3-D plots are drawn by the sagews server's viewer page, not this site's
setViewerOrigin(origin)
let queue: Promise<unknown> = Promise.resolve()

const runnerFor = (kernel: KernelKind, cache: boolean, language: Language | undefined): CellRunner => ({
  run: (code, onMessage, onRestart) => {
    const next = queue.then(async () => {
      const { reply } = await client.run(code, { kernel, language, cache, onOutput: onMessage, ...(onRestart !== undefined ? { onRestart } : {}) })
      if (reply.type === "runDone") {
        const limit = reply.status === "limit" && reply.limit !== undefined ? { limit: reply.limit } : {}
        return { status: reply.status, ...limit, ...(reply.cached ? { note: "cached" } : reply.message ? { note: reply.message } : {}) }
      }
      return { status: "failed", note: reply.type === "error" ? reply.message : reply.type }
    })
    queue = next.catch(() => undefined)
    return next
  },
})

const mount = (): void => {
  for (const node of Array.from(document.querySelectorAll<HTMLElement>("[data-sagews]"))) {
    if (node.dataset["sagewsMounted"] === "1") continue
    node.dataset["sagewsMounted"] = "1"
    const kernel: KernelKind = node.dataset["kernel"] === "python" ? "python" : "sage"
    const language = LANGUAGES.find((l) => l === node.dataset["language"])
    const cell = new Cell({ code: (node.textContent ?? "").trim(), runner: runnerFor(kernel, node.dataset["cache"] !== "false", language), onInteract: () => undefined })
    cell.root.classList.add("sagews-embed")
    node.replaceChildren(cell.root)
    if (node.dataset["autorun"] !== "false") void cell.run()
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount)
else mount()
Object.assign(window, { sagewsEmbed: { client, mount } })
