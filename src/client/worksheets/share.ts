// The share dialog: publish the worksheet's latest save as a static page anyone with its address can read
// (POST /api/v1/worksheets/{id}/publish → its URL, shown as a link), publish again after edits, and unpublish; and
// the worksheet's read-only share link (share-links.ts).
import type { Api } from "../api.ts"
import { button, el } from "../dom.ts"
import { addShareLinks, type SharedWorksheet } from "./share-links.ts"

export class ShareDialog {
  private readonly dialog: HTMLDialogElement
  private readonly result: HTMLElement
  private readonly links: HTMLElement
  private readonly api: Api
  private worksheet: SharedWorksheet | undefined
  /** saves the page's edits first, so what is published is what the person sees */
  private readonly beforePublish: () => Promise<void>

  constructor(api: Api, beforePublish: () => Promise<void>) {
    this.api = api
    this.beforePublish = beforePublish
    this.result = el("div", { class: "publish-result", attrs: { role: "status", id: "publish-result" } })
    this.links = el("section", { class: "share-links" })
    this.dialog = el("dialog", { class: "share", attrs: { "aria-labelledby": "share-title" } },
      el("h2", { text: "Share", attrs: { id: "share-title" } }),
      el("section", { class: "publish" },
        el("h3", { text: "Publish" }),
        el("p", { class: "hint", text: "A static page of the latest save (code, outputs, formulas, plots) that anyone with its address can read, without an account. It shows what was published until you publish again." }),
        el("div", { class: "dialog-buttons start" },
          button("Publish", () => void this.publish(), { class: "primary", attrs: { id: "publish" } }),
          button("Unpublish", () => void this.unpublish(), { attrs: { id: "unpublish" } }),
        ),
        this.result,
      ),
      this.links,
      el("div", { class: "dialog-buttons" }, button("Close", () => this.dialog.close())),
    )
    document.body.append(this.dialog)
  }

  show(worksheet: SharedWorksheet): void {
    this.worksheet = worksheet
    this.result.replaceChildren()
    this.links.replaceChildren()
    addShareLinks(this.links, worksheet, { csrf: () => this.api.csrfToken })
    this.dialog.showModal()
  }

  private async publish(): Promise<void> {
    const w = this.worksheet
    if (w === undefined) return
    this.result.textContent = "publishing…"
    await this.beforePublish()
    const r = await this.api.publish(w.id)
    if (!r.ok) {
      this.result.textContent = `Not published: ${r.problem.message}`
      return
    }
    const url = new URL(r.value.url, location.origin).href
    this.result.replaceChildren("Published at ", el("a", { text: url, attrs: { href: url, target: "_blank", rel: "noopener", id: "published-link" } }))
  }

  private async unpublish(): Promise<void> {
    const w = this.worksheet
    if (w === undefined) return
    const r = await this.api.unpublish(w.id)
    this.result.textContent = r.ok ? "Unpublished: its page is gone (publishing again brings it back at the same address)." : `Not unpublished: ${r.problem.message}`
  }
}
