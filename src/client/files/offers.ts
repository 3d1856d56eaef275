// After a run in a workspace session, what the run wrote into the session's home (the `files` request: new or changed
// since the open, and not shown after an earlier run as it is now), offered under the cell with "Save to workspace"
// (`saveFile`), which says "saved" once the server answers `saved`, or the server's error as it comes.
import type { Cell } from "../cell.ts"
import { button, bytes, el } from "../dom.ts"
import type { ClientSession } from "../session.ts"
import type { FileListReply } from "../types.ts"

type Listed = FileListReply["files"][number]

const signature = (file: Listed): string => `${file.size}:${file.mtime}`

export class FileOffers {
  /** per session, each file as its last listing had it: a file is offered again only once it changed */
  private readonly seen = new WeakMap<ClientSession, Map<string, string>>()
  private readonly onSaved: (path: string) => void

  constructor(onSaved: (path: string) => void) {
    this.onSaved = onSaved
  }

  /** Asks `session` what is new in its home since the last run, and offers it under `cell`. */
  async afterRun(session: ClientSession, cell: Cell): Promise<void> {
    if (!session.workspace || session.ended !== undefined || session.detached !== undefined) return
    const reply = await session.files()
    // the cell ran again meanwhile: its output is another run's
    if (cell.running) return
    if (reply.type === "error") {
      if (reply.code === "session_ended" || reply.code === "unknown_session") return
      cell.output.root.append(el("p", { class: "file-offers failed", text: `The files this run wrote could not be listed: ${reply.message}` }))
      return
    }
    const before = this.seen.get(session) ?? new Map<string, string>()
    const fresh = reply.files.filter((f) => before.get(f.path) !== signature(f))
    this.seen.set(session, new Map(reply.files.map((f) => [f.path, signature(f)])))
    if (fresh.length === 0) return
    cell.output.root.append(this.offer(session, fresh, reply.truncated === true))
  }

  private offer(session: ClientSession, files: ReadonlyArray<Listed>, truncated: boolean): HTMLElement {
    return el("div", { class: "file-offers", attrs: { role: "group", "aria-label": "Files this run wrote" } },
      el("p", { text: "Written by this run, in the session's home (gone when the session ends):" }),
      el("ul", {}, ...files.map((file) => this.item(session, file))),
      truncated && el("p", { text: "The home has more files than a list holds (1,000): only the first are shown." }),
    )
  }

  private item(session: ClientSession, file: Listed): HTMLElement {
    const state = el("span", { class: "file-state", attrs: { role: "status" } })
    const save = button("Save to workspace", () => {
      save.disabled = true
      state.textContent = "saving…"
      void session.saveFile(file.path).then((reply) => {
        if (reply.type === "saved") {
          state.textContent = "saved"
          this.onSaved(reply.path)
        } else {
          save.disabled = false
          state.textContent = `not saved: ${reply.message}`
        }
      })
    }, { attrs: { "aria-label": `Save ${file.path} to workspace`, "data-path": file.path } })
    return el("li", {}, el("code", { text: file.path }), " ", el("span", { class: "file-size", text: bytes(file.size) }), " ", save, " ", state)
  }
}
