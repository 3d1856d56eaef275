// Markdown cells and text/markdown outputs as HTML, as Jupyter shows them: CommonMark with tables and strikethrough
// (markdown-it), and TeX between `$…$` (inline) and `$$…$$` (display) through KaTeX. Raw HTML in the text is shown
// as text, not markup (markdown-it's `html: false`), and links are only http(s), mailto and relative ones, so a
// worksheet's text cannot put markup or scripts into a page; the published page's CSP forbids scripts besides.
import katex from "katex"
import MarkdownIt, { type StateInline } from "markdown-it"

const tex = (source: string, display: boolean): string =>
  katex.renderToString(source, { displayMode: display, throwOnError: false, trust: false, output: "htmlAndMathml" })

/** `$…$` and `$$…$$`, not `\$`, not inside code (code spans are their own rule, taken first), not empty */
const math = (state: StateInline, silent: boolean): boolean => {
  const start = state.pos
  const src = state.src
  if (src.charCodeAt(start) !== 0x24 /* $ */) return false
  const display = src.charCodeAt(start + 1) === 0x24
  const open = display ? 2 : 1
  // "$5 and $6" is money, not math: an inline opener is not followed by a space (as in pandoc's rule)
  if (!display && /\s/.test(src[start + open] ?? " ")) return false
  let end = start + open
  for (;;) {
    end = src.indexOf(display ? "$$" : "$", end)
    if (end < 0) return false
    if (src.charCodeAt(end - 1) !== 0x5c /* \ */) break
    end += 1
  }
  const body = src.slice(start + open, end)
  if (body.trim() === "" || (!display && /\s$/.test(body))) return false
  if (!silent) {
    const token = state.push(display ? "math_display" : "math_inline", "", 0)
    token.content = body
  }
  state.pos = end + open
  return true
}

const SAFE_LINK = /^(https?:|mailto:|#|\/|\.{0,2}\/|[^:]*$)/i

const md = new MarkdownIt({ html: false, linkify: true, typographer: false })
md.inline.ruler.after("escape", "math", math)
md.renderer.rules["math_inline"] = (tokens, i) => tex(tokens[i]?.content ?? "", false)
md.renderer.rules["math_display"] = (tokens, i) => `<span class="math-display">${tex(tokens[i]?.content ?? "", true)}</span>`
md.validateLink = (url) => SAFE_LINK.test(url.trim())

/** The markdown source as HTML (a fragment: block elements). */
export const renderMarkdown = (source: string): string => md.render(source)
