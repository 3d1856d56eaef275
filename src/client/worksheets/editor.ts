// The worksheet editor: opens a worksheet (or a version of it, read-only) into the page's cells, keeps the URL on it
// (/?w=<id>, &v=<version>), autosaves it and shows the save state, keeps both sides of a conflict (the tab's copy as
// a new worksheet "<title> (conflict copy)", said so in a notice), restores an old version, and goes back to the
// scratch page. The title is the notebook's metadata.title, edited in the bar above the cells.
import type { Api } from "../api.ts"
import { button, byId } from "../dom.ts"
import { fromNotebook, toNotebookText, type Sheet } from "../notebook.ts"
import type { CellList } from "../sheet.ts"
import type { KernelKind } from "../types.ts"
import { Autosave, RETRY_FIRST_MS, RETRY_MAX_MS, type SaveState } from "./autosave.ts"
import { HistoryDialog } from "./history.ts"
import { ShareDialog } from "./share.ts"

export type Notify = (text: string, kind?: "info" | "limit" | "warning", action?: { label: string; run: () => void }) => void

export interface EditorOptions {
  readonly api: Api
  readonly cells: CellList
  readonly kernel: () => KernelKind
  readonly setKernel: (kernel: KernelKind) => void
  readonly notify: Notify
  /** the cells are the scratch page's again */
  readonly onScratch: () => void
  /** another worksheet (or the scratch page) is on the page: its cells run in a fresh session */
  readonly onSwitched: () => void
  /** the account's list changed (a save, a new worksheet), or the open one did */
  readonly onListChanged: (openId: string | undefined) => void
}

/** what is on the page: a worksheet at its latest version (editable), or one of its versions (read-only) */
interface Open {
  readonly id: string
  /** set when an old version is shown */
  readonly version?: { readonly id: string; readonly time: number; readonly text: string }
  readonly sheet: Sheet
}

const MAX_TITLE = 200
const STATE_TEXT: Record<SaveState["state"], string> = { saved: "saved", saving: "saving…", unsaved: "unsaved changes", offline: "offline, will retry", conflict: "conflict: see the note" }

export class WorksheetEditor {
  open: Open | undefined
  private autosave: Autosave | undefined
  private readonly options: EditorOptions
  private readonly title = byId<HTMLInputElement>("title")
  private readonly state = byId<HTMLElement>("save-state")
  private readonly banner = byId<HTMLElement>("banner")
  private readonly history: HistoryDialog
  private readonly share: ShareDialog

  constructor(options: EditorOptions) {
    this.options = options
    this.history = new HistoryDialog(options.api, (version, time, latest) => {
      if (this.open === undefined) return
      void this.load(this.open.id, latest ? {} : { version, time })
    })
    this.share = new ShareDialog(options.api, () => this.flush())
    this.title.addEventListener("input", () => this.changed())
    byId("history-button").addEventListener("click", () => void this.flush().then(() => {
      if (this.open !== undefined) void this.history.show(this.open.id)
    }))
    byId("share-button").addEventListener("click", () => this.open !== undefined && this.share.show({ id: this.open.id, title: this.sheetTitle() }))
    window.addEventListener("beforeunload", (event) => {
      if (this.autosave?.dirty === true) event.preventDefault() // the browser asks whether to leave
    })
  }

  get openId(): string | undefined {
    return this.open?.id
  }

  /** The page's worksheet now, as the notebook text a save sends. */
  snapshot(): string {
    const base = this.open?.sheet ?? { metadata: {} }
    return toNotebookText({ title: this.sheetTitle(), kernel: this.options.kernel(), cells: this.options.cells.contents, metadata: base.metadata })
  }

  private sheetTitle(): string {
    return this.title.value.trim().slice(0, MAX_TITLE) || "Untitled"
  }

  /** An edit of the cells, the title or the kernel. */
  changed(): void {
    this.autosave?.changed()
  }

  /** A run ended: save now (its outputs are part of the worksheet). */
  ran(): void {
    if (this.autosave?.dirty === true) void this.autosave.flush()
  }

  /** Saves what the page has before it is left or shown elsewhere. */
  async flush(): Promise<void> {
    await this.autosave?.flush()
  }

  /** Opens worksheet `id` (its latest version, or `at` read-only) and puts it in the URL (`push`: a new history entry). */
  async load(id: string, at: { version?: string; time?: number } = {}, push = true): Promise<boolean> {
    await this.flush()
    const r = await this.options.api.read(id, at.version)
    if (!r.ok) {
      this.options.notify(`The worksheet could not be opened: ${r.problem.message}`, "warning")
      return false
    }
    const switched = this.open?.id !== id
    this.stopAutosave()
    const sheet = fromNotebook(r.value.notebook, "Untitled")
    this.open = { id, sheet, ...(at.version !== undefined ? { version: { id: at.version, time: at.time ?? 0, text: r.value.text } } : {}) }
    this.title.value = sheet.title
    this.options.setKernel(sheet.kernel)
    this.options.cells.replace(sheet.cells)
    const readOnly = at.version !== undefined
    this.options.cells.setReadOnly(readOnly)
    this.title.disabled = readOnly
    document.body.dataset["mode"] = readOnly ? "version" : "worksheet"
    byId("docbar").hidden = false
    const url = `/?w=${encodeURIComponent(id)}${readOnly ? `&v=${encodeURIComponent(at.version ?? "")}` : ""}`
    if (push && location.pathname + location.search !== url) history.pushState({}, "", url)
    document.title = `${sheet.title} · sagews`
    if (readOnly) this.showVersionBanner(id, at.version ?? "", at.time ?? 0, r.value.text)
    else {
      this.banner.hidden = true
      // as the page writes it (an uploaded file may be laid out otherwise): a page that changes nothing saves nothing
      this.startAutosave(id, r.value.version, this.snapshot())
    }
    if (switched) this.options.onSwitched()
    this.options.onListChanged(id)
    return true
  }

  /** Back to the scratch page (no worksheet open); `save`: what is unsaved is saved first (not for a deleted one). */
  async close(push = true, save = true): Promise<void> {
    if (save) await this.flush()
    this.stopAutosave()
    const wasOpen = this.open !== undefined
    this.open = undefined
    this.title.value = "" // "Save as a worksheet" of the scratch page is Untitled, not the last worksheet's title
    this.options.cells.setReadOnly(false)
    byId("docbar").hidden = true
    document.body.dataset["mode"] = "scratch"
    document.title = "sagews"
    if (push && location.search !== "") history.pushState({}, "", "/")
    this.options.onScratch()
    if (wasOpen) this.options.onSwitched()
    this.options.onListChanged(undefined)
  }

  /** A new worksheet from `text` (a notebook), opened. */
  async create(text: string): Promise<boolean> {
    const r = await this.options.api.create(text)
    if (!r.ok) {
      this.options.notify(`The worksheet was not made: ${r.problem.message}`, "warning")
      return false
    }
    return this.load(r.value.id)
  }

  /** Sets the open worksheet's title (a rename): saved as any edit is. */
  rename(title: string): void {
    this.title.value = title.slice(0, MAX_TITLE)
    this.changed()
  }

  private startAutosave(id: string, version: string, text: string): void {
    this.autosave = new Autosave({
      api: this.options.api,
      id,
      version,
      text,
      snapshot: () => this.snapshot(),
      onState: (s) => this.showState(s),
      onConflict: (mine) => void this.keepBoth(id, mine),
    })
  }

  private stopAutosave(): void {
    this.autosave?.stop()
    this.autosave = undefined
  }

  private showState(s: SaveState): void {
    this.state.dataset["state"] = s.state
    this.state.textContent = s.state === "unsaved" && s.problem !== undefined ? "not saved" : STATE_TEXT[s.state]
    this.state.title = "problem" in s && s.problem !== undefined ? s.problem : s.state === "saved" ? `version ${s.version.slice(0, 8)}, committed` : ""
    if (s.state === "unsaved" && s.problem !== undefined) this.options.notify(`Not saved: ${s.problem}`, "warning")
    if (s.state === "saved") this.options.onListChanged(this.open?.id)
  }

  /**
   * A 409: another tab or device saved the worksheet since this tab loaded it. Its save stays as it is; this tab's
   * copy becomes a new worksheet "<title> (conflict copy)", which the tab goes on editing. Neither side is lost.
   */
  private async keepBoth(id: string, _mine: string): Promise<void> {
    const original = this.sheetTitle()
    const copyTitle = `${original.slice(0, MAX_TITLE - 16)} (conflict copy)`
    this.title.value = copyTitle
    // what the tab has now, the edits made since the refused save included
    const text = this.snapshot()
    for (let wait = RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
      if (this.open?.id !== id) return
      const made = await this.options.api.create(text)
      if (made.ok) {
        this.open = { id: made.value.id, sheet: this.open.sheet }
        history.replaceState({}, "", `/?w=${encodeURIComponent(made.value.id)}`)
        document.title = `${copyTitle} · sagews`
        this.startAutosave(made.value.id, made.value.version, text)
        this.autosave?.changed() // edits made while the copy was being made
        this.options.onListChanged(made.value.id)
        this.options.notify(
          `“${original}” was changed in another tab or on another device after this tab opened it, so your edits were not saved over it. Nothing is lost: your version is saved as “${copyTitle}” (open here), and the other version is still “${original}”.`,
          "warning",
          { label: `Open “${original}”`, run: () => void this.load(id) },
        )
        return
      }
      if (made.problem.kind !== "offline") {
        this.options.notify(`“${original}” was changed elsewhere, and your copy could not be saved as a new worksheet (${made.problem.message}). Download it from the list of your worksheets so it is not lost.`, "warning")
        return
      }
      this.showState({ state: "offline", problem: `saving your copy as “${copyTitle}”: ${made.problem.message}`, retryInMs: wait })
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }

  private showVersionBanner(id: string, version: string, time: number, text: string): void {
    this.state.dataset["state"] = "version"
    this.state.textContent = "read-only version"
    this.state.title = version
    const restore = button("Restore this version", () => void this.restore(id, text, time), { class: "primary", attrs: { id: "restore-version" } })
    const back = button("Back to the latest", () => void this.load(id), { attrs: { id: "latest-version" } })
    this.banner.replaceChildren(`You are reading the version of ${new Date(time).toLocaleString()} (read-only). `, restore, " ", back)
    this.banner.hidden = false
  }

  /** Makes an old version's text the latest save (a new version: the ones after it stay in the history). */
  private async restore(id: string, text: string, time: number): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const latest = await this.options.api.read(id)
      if (!latest.ok) break
      const saved = await this.options.api.save(id, latest.value.version, text)
      if (saved.ok) {
        await this.load(id)
        this.options.notify(`Restored the version of ${new Date(time).toLocaleString()}: it is the latest now.`)
        return
      }
      if (saved.problem.kind !== "conflict") return this.options.notify(`Not restored: ${saved.problem.message}`, "warning")
    }
    this.options.notify("Not restored: the worksheet could not be read or kept changing elsewhere; try again.", "warning")
  }
}
