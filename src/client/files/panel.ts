// The signed-in account's files panel (GET /api/v1/files): every file of the workspace but its worksheets, each a
// download link with Delete; "Upload files" PUTs each chosen file's bytes at its name, saying "saved" only on a 200.
// A session gets the files as they were when it opened, so the panel says how to give a running one the new files.
import { fileUrl, type Api, type FileEntry } from "../api.ts"
import { button, bytes, el } from "../dom.ts"
import { MAX_SESSION_FILE_BYTES } from "../../protocol/worker.ts"

export interface FilesPanelOptions {
  readonly root: HTMLElement
  readonly api: Api
  /** a kernel session with the workspace's files is open (it does not see what is uploaded now) */
  readonly sessionOpen: () => boolean
  /** lets the page's session go: the next run opens one with the workspace as it is now */
  readonly restartSession: () => void
}

const baseName = (path: string): string => path.slice(path.lastIndexOf("/") + 1)

export class FilesPanel {
  private readonly options: FilesPanelOptions
  private readonly items: HTMLElement
  private readonly status: HTMLElement
  private entries: ReadonlyArray<FileEntry> = []

  constructor(options: FilesPanelOptions) {
    this.options = options
    const input = el("input", { attrs: { type: "file", multiple: "", id: "files-input", hidden: "" } })
    input.addEventListener("change", () => {
      const chosen = [...(input.files ?? [])]
      input.value = ""
      void this.upload(chosen)
    })
    this.items = el("ul", { class: "ws-items", attrs: { id: "file-items" } })
    this.status = el("p", { class: "ws-status", attrs: { role: "status", id: "files-status" } })
    options.root.replaceChildren(
      el("h2", { text: "Your files" }),
      el("div", { class: "ws-tools" }, button("Upload files", () => input.click(), { attrs: { id: "upload-files" } }), input),
      el("p", { class: "hint", text: "A new session starts with these files in its home, so load(\"x.sage\") and open(\"data.csv\") find them. A session already running does not see files uploaded after it started: " },
        button("restart the session", () => this.restart(), { class: "link", attrs: { id: "restart-session" } }), " to load them (its variables are lost)."),
      this.status,
      this.items,
    )
  }

  get list(): ReadonlyArray<FileEntry> {
    return this.entries
  }

  async refresh(): Promise<void> {
    const r = await this.options.api.listFiles()
    if (!r.ok) {
      this.status.textContent = `Your files could not be listed: ${r.problem.message}`
      return
    }
    this.entries = r.value
    if (r.value.length === 0 && this.status.textContent === "") this.status.textContent = "No files yet: upload a .sage file to load, or data to open."
    this.items.replaceChildren(...r.value.map((entry) => this.item(entry)))
  }

  /** Signed out: nothing of the account stays on show. */
  clear(): void {
    this.entries = []
    this.status.textContent = ""
    this.items.replaceChildren()
  }

  private say(text: string, offerRestart = false): void {
    this.status.replaceChildren(text)
    if (offerRestart) this.status.append(" ", button("Restart session", () => this.restart(), { class: "link" }), " to load it: the session running started before it.")
  }

  private restart(): void {
    this.options.restartSession()
    this.say("The next run starts a new session, with your files as they are now.")
  }

  private async upload(files: ReadonlyArray<File>): Promise<void> {
    for (const file of files) {
      if (file.size > MAX_SESSION_FILE_BYTES) {
        this.say(`${file.name} not saved: it is ${bytes(file.size)}, and a file may be at most ${bytes(MAX_SESSION_FILE_BYTES)}.`)
        continue
      }
      if (this.entries.some((e) => e.path === file.name) && !confirm(`Replace ${file.name} in your workspace? The old one stays in its history.`)) continue
      this.say(`${file.name}: saving…`)
      const r = await this.options.api.putFile(file.name, file)
      if (!r.ok) this.say(`${file.name} not saved: ${r.problem.message}`)
      else this.say(`${file.name} saved.`, this.options.sessionOpen())
    }
    await this.refresh()
  }

  private async remove(entry: FileEntry): Promise<void> {
    if (!confirm(`Delete ${entry.path} from your workspace? It stays in the workspace's history.`)) return
    const r = await this.options.api.removeFile(entry.path)
    this.say(r.ok ? `${entry.path} deleted.` : `${entry.path} not deleted: ${r.problem.message}`)
    await this.refresh()
  }

  private item(entry: FileEntry): HTMLElement {
    return el("li", { class: "ws-item file-item", attrs: { "data-path": entry.path } },
      el("div", { class: "ws-head" },
        el("a", { class: "ws-open", text: entry.path, attrs: { href: fileUrl(entry.path), download: baseName(entry.path), "aria-label": `Download ${entry.path}` } }),
        el("span", { class: "ws-time", text: bytes(entry.size) }),
      ),
      el("div", { class: "ws-actions" }, button("Delete", () => void this.remove(entry), { class: "danger", attrs: { "aria-label": `Delete ${entry.path}` } })),
    )
  }
}
