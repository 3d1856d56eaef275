// A worksheet rendered to one self-contained, script-free HTML page for /pub/<slug>/: code as escaped <pre>, markdown
// cells as HTML with their TeX (markdown.ts: no raw HTML, safe links only), LaTeX through KaTeX (its CSS from the shared assets beside the pages), PNG/JPEG/SVG as data: images, and
// text/html outputs inside a sandboxed frame that may not run scripts, under a CSP that forbids every script.
import katex from "katex"
import type { Notebook } from "../protocol/notebook.ts"
import { renderMarkdown } from "./markdown.ts"

/** The page's policy, as a meta tag here and as nginx's header on /pub/ (conf/nginx.conf.template keeps the same text). */
export const PAGE_CSP = "default-src 'none'; script-src 'none'; object-src 'none'; style-src 'self' 'unsafe-inline'; font-src 'self'; img-src data:; frame-src 'self'; base-uri 'none'; form-action 'none'"
/** The directory of KaTeX's CSS and fonts beside the pages (write.ts installs it): one per KaTeX version. */
export const KATEX_ASSETS = `katex-${katex.version}`
/** A frame of a text/html output cannot size itself without a script: this tall, resizable by the reader. */
const FRAME_HEIGHT = "16em"

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c)

/** nbformat's multiline strings: one string or lines to join */
const joined = (value: unknown): string | undefined =>
  typeof value === "string" ? value : Array.isArray(value) && value.every((v) => typeof v === "string") ? value.join("") : undefined

/** Terminal colour codes in tracebacks: shown as plain text. */
const stripAnsi = (text: string): string => text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "")

const pre = (cls: string, text: string): string => `<pre class="${cls}">${escapeHtml(text)}</pre>`
const note = (text: string): string => `<p class="note">${escapeHtml(text)}</p>`

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const image = (mime: string, data: string): string => {
  const b64 = data.replace(/\s+/g, "")
  return BASE64.test(b64) ? `<img alt="" src="data:${mime};base64,${b64}">` : note(`an ${mime} output that is not base64 was left out`)
}

const latex = (tex: string): string =>
  `<div class="latex">${katex.renderToString(tex.trim().replace(/^\$+|\$+$/g, ""), { displayMode: true, throwOnError: false, trust: false })}</div>`

/** An HTML output in a frame with an opaque origin and no scripts (sandbox without allow-scripts), under the page's CSP too. */
const htmlFrame = (html: string): string =>
  `<iframe class="html" sandbox="" referrerpolicy="no-referrer" title="HTML output" style="height:${FRAME_HEIGHT}" srcdoc="${escapeHtml(html)}"></iframe>`

/** A rich output's MIME bundle, by the first type this page shows, safest and richest first. */
const RICH: ReadonlyArray<readonly [string, (data: string) => string]> = [
  ["image/png", (d) => image("image/png", d)],
  ["image/gif", (d) => image("image/gif", d)],
  ["image/jpeg", (d) => image("image/jpeg", d)],
  // an SVG as an <img> is a picture: no script in it runs
  ["image/svg+xml", (d) => `<img alt="" src="data:image/svg+xml;base64,${Buffer.from(d, "utf8").toString("base64")}">`],
  ["text/latex", latex],
  ["text/html", htmlFrame],
  ["text/markdown", (d) => `<div class="markdown">${renderMarkdown(d)}</div>`],
  ["text/plain", (d) => pre("result", d)],
]

const rich = (data: unknown): string => {
  if (typeof data !== "object" || data === null) return note("an output without data was left out")
  const bundle = data as Record<string, unknown>
  for (const [mime, show] of RICH) {
    const value = joined(bundle[mime])
    if (value !== undefined) return show(value)
  }
  return note(`an output of type ${Object.keys(bundle).join(", ") || "none"} was left out: this page shows images, LaTeX, HTML and text`)
}

type Output = { readonly output_type: string } & Record<string, unknown>

const output = (o: Output): string => {
  switch (o.output_type) {
    case "stream":
      return pre(o.name === "stderr" ? "stderr" : "stdout", joined(o.text) ?? "")
    case "error": {
      const trace = Array.isArray(o.traceback) ? o.traceback.filter((l): l is string => typeof l === "string").join("\n") : ""
      return pre("error", stripAnsi(trace !== "" ? trace : `${String(o.ename ?? "Error")}: ${String(o.evalue ?? "")}`))
    }
    default:
      return rich(o.data)
  }
}

type Cell = Notebook["cells"][number]

const cell = (c: Cell): string => {
  const source = joined(c.source) ?? ""
  switch (c.cell_type) {
    case "code": {
      const count = c.execution_count === null ? " " : String(c.execution_count)
      const outputs = c.outputs.map(output).join("\n")
      return `<section class="cell code"><div class="prompt">In [${escapeHtml(count)}]:</div><pre class="source"><code>${escapeHtml(source)}</code></pre>${outputs === "" ? "" : `\n<div class="outputs">${outputs}</div>`}</section>`
    }
    case "markdown":
      return `<section class="cell markdown">${renderMarkdown(source)}</section>`
    case "raw":
      return `<section class="cell raw"><pre class="text">${escapeHtml(source)}</pre></section>`
  }
}

const STYLE = `
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
.cell { margin: 1rem 0; }
.prompt { color: #888; font: 0.8rem monospace; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.25rem 0; }
pre.source { background: #f6f6f6; border: 1px solid #e4e4e4; padding: 0.5rem; }
pre.text { font-family: inherit; }
pre.stderr, pre.error { color: #a00; }
.outputs img { max-width: 100%; }
iframe.html { width: 100%; border: 1px solid #e4e4e4; resize: vertical; }
.note { color: #888; font-style: italic; }
.markdown table { border-collapse: collapse; } .markdown th, .markdown td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; }
.markdown code { background: #f6f6f6; padding: 0 0.2rem; } .math-display { display: block; text-align: center; margin: 0.5rem 0; }
footer { color: #888; font-size: 0.8rem; border-top: 1px solid #ddd; margin-top: 2rem; }`

export interface PageInfo {
  readonly title: string
  /** the worksheet's version this page shows */
  readonly version: string
  /** when it was published, ms since the epoch */
  readonly publishedAt: number
}

/** The whole page, linking KaTeX's CSS at ../KATEX_ASSETS/ (the page lives at /pub/<slug>/index.html). */
export const renderPage = (notebook: Notebook, info: PageInfo): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${PAGE_CSP}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sagews">
<title>${escapeHtml(info.title)}</title>
<link rel="stylesheet" href="../${KATEX_ASSETS}/katex.min.css">
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(info.title)}</h1></header>
<main>
${notebook.cells.map(cell).join("\n")}
</main>
<footer>Published with sagews on ${new Date(info.publishedAt).toISOString()} from version ${escapeHtml(info.version)}.</footer>
</body>
</html>
`
