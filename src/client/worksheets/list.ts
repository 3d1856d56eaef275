// The signed-in account's worksheets (GET /api/v1/worksheets), newest first: open one (a link to /?w=<id>), new,
// upload an .ipynb, and for each rename, duplicate, download and delete; what each does is the page's `actions`.
import type { Api, WorksheetEntry } from "../api.ts"
import { button, el, when } from "../dom.ts"

export interface ListActions {
  open(id: string): void
  create(): void
  upload(file: File): void
  rename(entry: WorksheetEntry): void
  duplicate(entry: WorksheetEntry): void
  download(entry: WorksheetEntry): void
  remove(entry: WorksheetEntry): void
}

export class WorksheetList {
  private readonly api: Api
  private readonly actions: ListActions
  private readonly items: HTMLElement
  private readonly status: HTMLElement
  private entries: ReadonlyArray<WorksheetEntry> = []
  private current: string | undefined

  constructor(root: HTMLElement, api: Api, actions: ListActions) {
    this.api = api
    this.actions = actions
    const file = el("input", { attrs: { type: "file", accept: ".ipynb,application/x-ipynb+json,application/json", id: "upload-file", hidden: "" } })
    file.addEventListener("change", () => {
      const chosen = file.files?.[0]
      file.value = ""
      if (chosen !== undefined) actions.upload(chosen)
    })
    this.items = el("ul", { class: "ws-items", attrs: { id: "worksheet-items" } })
    this.status = el("p", { class: "ws-status", attrs: { role: "status" } })
    root.replaceChildren(
      el("h2", { text: "Your worksheets" }),
      el("div", { class: "ws-tools" },
        button("New worksheet", () => actions.create(), { class: "primary", attrs: { id: "new-worksheet" } }),
        button("Upload .ipynb", () => file.click(), { attrs: { id: "upload-worksheet" } }),
        file,
      ),
      this.status,
      this.items,
    )
  }

  get list(): ReadonlyArray<WorksheetEntry> {
    return this.entries
  }

  /** Marks the open worksheet (aria-current). */
  setCurrent(id: string | undefined): void {
    this.current = id
    for (const item of this.items.children) {
      if (!(item instanceof HTMLElement)) continue
      if (item.dataset["id"] === id) item.querySelector("a")?.setAttribute("aria-current", "page")
      else item.querySelector("a")?.removeAttribute("aria-current")
    }
  }

  async refresh(): Promise<void> {
    const r = await this.api.list()
    if (!r.ok) {
      this.status.textContent = `Your worksheets could not be listed: ${r.problem.message}`
      return
    }
    this.status.textContent = r.value.length === 0 ? "No worksheets yet: make one, or upload a Jupyter notebook." : ""
    this.entries = r.value
    this.items.replaceChildren(...r.value.map((entry) => this.item(entry)))
    this.setCurrent(this.current)
  }

  private item(entry: WorksheetEntry): HTMLElement {
    const link = el("a", { class: "ws-open", text: entry.title, attrs: { href: `/?w=${encodeURIComponent(entry.id)}` } })
    link.addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return // a new tab, as links do
      event.preventDefault()
      this.actions.open(entry.id)
    })
    const named = (what: string): Record<string, string> => ({ "aria-label": `${what} “${entry.title}”` })
    return el("li", { class: "ws-item", attrs: { "data-id": entry.id } },
      el("div", { class: "ws-head" }, link, el("span", { class: "ws-time", text: when(entry.updated), attrs: { title: new Date(entry.updated).toLocaleString() } })),
      el("div", { class: "ws-actions" },
        button("Rename", () => this.actions.rename(entry), { attrs: named("Rename") }),
        button("Duplicate", () => this.actions.duplicate(entry), { attrs: named("Duplicate") }),
        button("Download", () => this.actions.download(entry), { attrs: named("Download") }),
        button("Delete", () => this.actions.remove(entry), { class: "danger", attrs: named("Delete") }),
      ),
    )
  }
}
