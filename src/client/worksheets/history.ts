// The history dialog: the worksheet's saves (GET /api/v1/worksheets/{id}/history), newest first, each to open
// read-only; restoring one is done from that view (the page's banner), so it is seen before it is restored.
import type { Api } from "../api.ts"
import { button, el, when } from "../dom.ts"

export class HistoryDialog {
  private readonly dialog: HTMLDialogElement
  private readonly list: HTMLElement
  private readonly status: HTMLElement
  private readonly api: Api
  private readonly onOpen: (version: string, time: number, latest: boolean) => void

  constructor(api: Api, onOpen: (version: string, time: number, latest: boolean) => void) {
    this.api = api
    this.onOpen = onOpen
    this.list = el("ol", { class: "history-items", attrs: { id: "history-items" } })
    this.status = el("p", { attrs: { role: "status" } })
    this.dialog = el("dialog", { class: "history", attrs: { "aria-labelledby": "history-title" } },
      el("h2", { text: "History", attrs: { id: "history-title" } }),
      el("p", { class: "hint", text: "Every save is a version. Open one to read it; restoring it makes it the latest (the versions after it stay in the history)." }),
      this.status,
      this.list,
      el("div", { class: "dialog-buttons" }, button("Close", () => this.dialog.close())),
    )
    document.body.append(this.dialog)
  }

  async show(id: string): Promise<void> {
    this.list.replaceChildren()
    this.status.textContent = "loading…"
    this.dialog.showModal()
    const r = await this.api.history(id)
    if (!r.ok) {
      this.status.textContent = `The history could not be read: ${r.problem.message}`
      return
    }
    this.status.textContent = `${r.value.length} version${r.value.length === 1 ? "" : "s"}`
    this.list.replaceChildren(...r.value.map((entry, i) =>
      el("li", { class: "history-item", attrs: { "data-version": entry.version } },
        el("span", { class: "history-when", text: `${new Date(entry.time).toLocaleString()} (${when(entry.time)})${i === 0 ? " · latest" : ""}` }),
        el("code", { class: "history-version", text: entry.version.slice(0, 8) }),
        button("Open", () => {
          this.dialog.close()
          this.onOpen(entry.version, entry.time, i === 0)
        }, { attrs: { "aria-label": `Open the version of ${new Date(entry.time).toLocaleString()}` } }),
      )
    ))
  }
}
