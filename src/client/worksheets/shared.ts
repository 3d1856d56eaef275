// A worksheet opened by its read-only share link, /?s=<token> (GET /api/v1/shared/{token}, no account needed): its
// title, cells and outputs as last saved, not editable and not runnable (as an old version in the history is), with
// "Copy to my worksheets" when signed in (a new worksheet of the account) or "Sign in to copy". Nothing is saved
// anywhere while it is shown: not to the server, not to the scratch page's storage.
import { button, byId } from "../dom.ts"
import { fromNotebook, toNotebookText, type Sheet } from "../notebook.ts"
import { fetchShared } from "../permalink.ts"
import type { CellList } from "../sheet.ts"
import type { KernelKind } from "../types.ts"
import type { Notify } from "./editor.ts"

export interface SharedViewOptions {
  readonly cells: CellList
  readonly setKernel: (kernel: KernelKind) => void
  readonly notify: Notify
  readonly signedIn: () => boolean
  readonly signIn: () => void
  /** makes `text` (a notebook) a new worksheet of the account and opens it; false when it was refused (said so) */
  readonly copy: (text: string) => Promise<boolean>
}

export class SharedView {
  private readonly options: SharedViewOptions

  constructor(options: SharedViewOptions) {
    this.options = options
  }

  /** a shared worksheet is on the page (the editor's load and close set another mode) */
  get active(): boolean {
    return document.body.dataset["mode"] === "shared"
  }

  /** Shows the worksheet `token` shares; false (and a notice with the server's reason) when it shares none. */
  async show(token: string): Promise<boolean> {
    const r = await fetchShared(token)
    if (!r.ok) {
      this.options.notify(`This share link opens nothing: ${r.message}`, "warning")
      return false
    }
    const sheet = fromNotebook(r.value.notebook, "Untitled")
    document.body.dataset["mode"] = "shared"
    this.options.setKernel(sheet.kernel)
    this.options.cells.replace(sheet.cells)
    this.options.cells.setReadOnly(true)
    const title = byId<HTMLInputElement>("title")
    title.value = sheet.title
    title.disabled = true
    const state = byId<HTMLElement>("save-state")
    state.dataset["state"] = "version"
    state.textContent = "read-only, shared with you"
    state.title = r.value.version
    byId("docbar").hidden = false
    document.title = `${sheet.title} · sagews`
    this.showBanner(sheet)
    return true
  }

  /** Back to the page's other modes: the cells editable, no title, no banner (the caller fills the cells). */
  leave(): void {
    if (!this.active) return
    document.body.dataset["mode"] = "scratch"
    this.options.cells.setReadOnly(false)
    const title = byId<HTMLInputElement>("title")
    title.value = ""
    title.disabled = false
    byId("docbar").hidden = true
    byId("banner").hidden = true
    document.title = "sagews"
  }

  private showBanner(sheet: Sheet): void {
    const banner = byId<HTMLElement>("banner")
    const action = this.options.signedIn()
      ? button("Copy to my worksheets", () => void this.copy(sheet), { class: "primary", attrs: { id: "copy-shared" } })
      : button("Sign in to copy", () => this.options.signIn(), { class: "primary", attrs: { id: "sign-in-to-copy" } })
    banner.replaceChildren("A worksheet shared with you, as its owner last saved it (read-only: it cannot be changed or run here). ", action)
    banner.hidden = false
  }

  private async copy(sheet: Sheet): Promise<void> {
    if (await this.options.copy(toNotebookText(sheet))) this.options.notify(`Copied “${sheet.title}” to your worksheets: this is your copy, yours to edit and run.`)
  }
}
