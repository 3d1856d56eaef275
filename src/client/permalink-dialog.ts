// A cell's "Permalink" dialog (docs/PROTOCOL.md "Permalinks"): the self-contained /?z=…&kernel=… link, made in the
// browser, which opens on any sagews or sagecell server, and the short /?q=… link this server stores
// (POST /api/v1/permalinks, no account needed), each with a Copy button.
import { copyField } from "./copy-field.ts"
import { button, el } from "./dom.ts"
import { createPermalink, zLink } from "./permalink.ts"
import type { KernelKind } from "./types.ts"

/** nginx, which serves the page, refuses a request line past its 8 KiB default: a longer z link would not open */
export const MAX_Z_LINK_CHARS = 8_000

export class PermalinkDialog {
  private readonly dialog: HTMLDialogElement
  private readonly z = copyField("permalink-z", "the self-contained link")
  private readonly q = copyField("permalink-q", "the short link")
  private readonly zStatus = el("p", { class: "hint", attrs: { role: "status", id: "permalink-z-status" } })
  private readonly qStatus = el("p", { class: "hint", attrs: { role: "status", id: "permalink-q-status" } })
  /** the code shown now: an answer for code shown before is dropped */
  private shown = 0

  constructor() {
    this.dialog = el("dialog", { class: "permalink", attrs: { "aria-labelledby": "permalink-title" } },
      el("h2", { text: "Permalink", attrs: { id: "permalink-title" } }),
      el("p", { class: "hint", text: "A link that opens this cell's code (not its output) in a new cell; the code runs when the person who opens it presses Run." }),
      el("h3", { text: "Self-contained link" }),
      el("p", { class: "hint", text: "The code is in the address itself: it opens on any sagews server and on sagecell, and nothing is stored." }),
      this.z.root,
      this.zStatus,
      el("h3", { text: "Short link" }),
      el("p", { class: "hint", text: "The code is stored on this server under a short address, which never changes." }),
      this.q.root,
      this.qStatus,
      el("div", { class: "dialog-buttons" }, button("Close", () => this.dialog.close())),
    )
    document.body.append(this.dialog)
  }

  async show(code: string, kernel: KernelKind): Promise<void> {
    const shown = ++this.shown
    this.z.set(undefined)
    this.q.set(undefined)
    this.zStatus.textContent = "making the link…"
    this.qStatus.textContent = "storing the code…"
    this.dialog.showModal()
    const [z, q] = await Promise.all([zLink(code, kernel), createPermalink(code, kernel)])
    if (shown !== this.shown) return
    const zUrl = new URL(z, location.origin).href
    this.z.set(zUrl)
    this.zStatus.textContent = zUrl.length > MAX_Z_LINK_CHARS
      ? `This link is ${zUrl.length} characters, more than the ${MAX_Z_LINK_CHARS} a server accepts in an address: use the short link.`
      : ""
    if (q.ok) {
      this.q.set(new URL(q.value.url, location.origin).href)
      this.qStatus.textContent = ""
    } else this.qStatus.textContent = `No short link: ${q.message}`
  }
}
