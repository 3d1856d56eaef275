// What the worksheet list's buttons do: new, upload (the file as the body, titled by its name when it has no
// title), rename, duplicate, download (the latest save as .ipynb) and delete, through the API and the editor.
import type { Api } from "../api.ts"
import { fileNameOf, newCellId, toNotebookText } from "../notebook.ts"
import type { KernelKind } from "../types.ts"
import type { Notify, WorksheetEditor } from "./editor.ts"
import type { ListActions } from "./list.ts"

const retitled = (text: string, title: string): string => {
  const notebook = JSON.parse(text) as { metadata?: Record<string, unknown> }
  notebook.metadata = { ...notebook.metadata, title }
  return `${JSON.stringify(notebook, null, 1)}\n`
}

export const listActions = (api: Api, editor: WorksheetEditor, notify: Notify, kernel: () => KernelKind, refresh: () => void): ListActions => ({
  open: (id) => void editor.load(id),

  create: () => {
    const text = toNotebookText({ title: "Untitled", kernel: kernel(), metadata: {}, cells: [{ id: newCellId(), type: "code", source: "", outputs: [], metadata: {} }] })
    void editor.create(text).then((made) => {
      if (!made) return
      const title = document.getElementById("title")
      if (title instanceof HTMLInputElement) {
        title.focus()
        title.select()
      }
    })
  },

  upload: (file) => void (async () => {
    let text = await file.text()
    let parsed: { metadata?: { title?: unknown } }
    try {
      parsed = JSON.parse(text) as typeof parsed
    } catch (e) {
      return notify(`${file.name} is not a Jupyter notebook (.ipynb): it is not JSON (${e instanceof Error ? e.message : String(e)}).`, "warning")
    }
    // the file as it is, unless it has no title: then its name is the title
    if (typeof parsed.metadata?.title !== "string") text = retitled(text, file.name.replace(/\.ipynb$/i, "").slice(0, 200) || "Uploaded")
    if (await editor.create(text)) notify(`Uploaded ${file.name}.`)
  })(),

  rename: (entry) => void (async () => {
    const title = prompt(`New title for “${entry.title}”`, entry.title)?.trim()
    if (title === undefined || title === "" || title === entry.title) return
    if (editor.openId === entry.id && editor.open?.version === undefined) return editor.rename(title)
    const read = await api.read(entry.id)
    if (!read.ok) return notify(`Not renamed: ${read.problem.message}`, "warning")
    const saved = await api.save(entry.id, read.value.version, retitled(read.value.text, title.slice(0, 200)))
    if (!saved.ok) return notify(`Not renamed: ${saved.problem.message}`, "warning")
    refresh()
  })(),

  duplicate: (entry) => void (async () => {
    if (editor.openId === entry.id) await editor.flush()
    const read = await api.read(entry.id)
    if (!read.ok) return notify(`Not duplicated: ${read.problem.message}`, "warning")
    if (await editor.create(retitled(read.value.text, `${entry.title.slice(0, 193)} (copy)`))) notify(`Duplicated “${entry.title}”: this is the copy.`)
  })(),

  download: (entry) => void (async () => {
    if (editor.openId === entry.id) await editor.flush()
    const read = await api.read(entry.id)
    if (!read.ok) return notify(`Not downloaded: ${read.problem.message}`, "warning")
    const url = URL.createObjectURL(new Blob([read.value.text], { type: "application/x-ipynb+json" }))
    const link = document.createElement("a")
    link.href = url
    link.download = fileNameOf(read.value.notebook.metadata.title ?? entry.title)
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(url), 60_000)
  })(),

  remove: (entry) => void (async () => {
    if (!confirm(`Delete “${entry.title}”? It is no longer listed or shown anywhere, and its published page goes too.`)) return
    const removed = await api.remove(entry.id)
    if (!removed.ok) return notify(`Not deleted: ${removed.problem.message}`, "warning")
    if (editor.openId === entry.id) await editor.close(true, false)
    refresh()
    notify(`Deleted “${entry.title}”.`)
  })(),
})
