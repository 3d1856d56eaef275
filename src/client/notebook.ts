// The page's cells as an nbformat-4 notebook and back: sources, outputs as nbformat outputs (stream, display_data,
// error; an interact as the text of its last state), the kernel as kernelspec "sagemath" or "python3", the title as
// metadata.title. What the page does not show (markdown and raw cells, other metadata) is kept as it came.
import type { Notebook } from "../protocol/notebook.ts"
import type { KernelKind, OutputMsg } from "./types.ts"

export type CellType = "code" | "markdown" | "raw"

/** One cell as the page keeps it. */
export interface CellContent {
  readonly id: string
  readonly type: CellType
  readonly source: string
  readonly outputs: ReadonlyArray<OutputMsg>
  readonly metadata: Record<string, unknown>
}

export interface Sheet {
  readonly title: string
  readonly kernel: KernelKind
  readonly cells: ReadonlyArray<CellContent>
  /** the notebook's other metadata, kept as it came (language_info, what Jupyter or CoCalc wrote) */
  readonly metadata: Record<string, unknown>
}

const KERNELSPECS = {
  sage: { name: "sagemath", display_name: "SageMath", language: "sage" },
  python: { name: "python3", display_name: "Python 3", language: "python" },
} as const satisfies Record<KernelKind, { name: string; display_name: string; language: string }>

/** the text shown for an interact in a saved worksheet: its controls need the session that declared them */
export const INTERACT_TEXT = "[interact: run the cell again to use its controls]"

/** nbformat 4.5's cell id: 1-64 letters, digits, - and _ */
export const newCellId = (): string =>
  // getRandomValues, not randomUUID: the latter exists only in secure contexts, and a page may be served over http
  Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("")

type NbOutput = Record<string, unknown>

const joined = (value: unknown): string => (Array.isArray(value) ? value.join("") : typeof value === "string" ? value : "")

const toOutputs = (messages: ReadonlyArray<OutputMsg>): Array<NbOutput> => {
  const outputs: Array<NbOutput> = []
  for (const msg of messages) {
    const last = outputs.at(-1)
    switch (msg.kind) {
      case "stdout":
      case "stderr":
        if (last?.["output_type"] === "stream" && last["name"] === msg.kind) last["text"] = `${String(last["text"])}${msg.text}`
        else outputs.push({ output_type: "stream", name: msg.kind, text: msg.text })
        break
      case "display":
        outputs.push({ output_type: "display_data", data: { ...msg.data }, metadata: {} })
        break
      case "error":
        outputs.push({ output_type: "error", ename: msg.ename, evalue: msg.evalue, traceback: [...msg.traceback] })
        break
      case "interact":
        outputs.push({ output_type: "display_data", data: { "text/plain": INTERACT_TEXT }, metadata: { sagews: { interact: msg.interact, controls: msg.controls } } })
        break
      case "terminal":
      case "done":
        break
    }
  }
  return outputs
}

const fromOutput = (output: NbOutput): OutputMsg => {
  switch (output["output_type"]) {
    case "stream":
      return { kind: output["name"] === "stderr" ? "stderr" : "stdout", text: joined(output["text"]) }
    case "display_data":
    case "execute_result": {
      const data: Record<string, string> = {}
      const raw = output["data"]
      if (typeof raw === "object" && raw !== null) {
        for (const [mime, value] of Object.entries(raw)) {
          const text = joined(value)
          // base64 images may be wrapped over lines
          if (text !== "" || typeof value === "string") data[mime] = mime.startsWith("image/") ? text.replace(/\s+/g, "") : text
        }
      }
      return { kind: "display", data }
    }
    case "error":
      return {
        kind: "error",
        ename: String(output["ename"] ?? "Error"),
        evalue: String(output["evalue"] ?? ""),
        traceback: Array.isArray(output["traceback"]) ? output["traceback"].map((line) => (String(line).endsWith("\n") ? String(line) : `${String(line)}\n`)) : [],
      }
    default:
      return { kind: "display", data: { "text/plain": `[an output of type ${String(output["output_type"])} is not shown here]` } }
  }
}

/** The notebook of `sheet`, as the text the server stores (nbformat 4.5, Jupyter's one-space indent). */
export const toNotebookText = (sheet: Sheet): string => {
  const notebook: Notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { ...sheet.metadata, title: sheet.title, kernelspec: KERNELSPECS[sheet.kernel] },
    cells: sheet.cells.map((cell) =>
      cell.type === "code"
        ? { id: cell.id, cell_type: "code", metadata: cell.metadata, source: cell.source, outputs: toOutputs(cell.outputs).map((o) => ({ ...o, output_type: o["output_type"] as "stream" })), execution_count: null }
        : { id: cell.id, cell_type: cell.type, metadata: cell.metadata, source: cell.source }
    ),
  }
  return `${JSON.stringify(notebook, null, 1)}\n`
}

const kernelOf = (metadata: Record<string, unknown>): KernelKind => {
  const spec = metadata["kernelspec"]
  const name = typeof spec === "object" && spec !== null ? String((spec as Record<string, unknown>)["name"] ?? "") : ""
  return /^python/i.test(name) ? "python" : "sage"
}

/** The page's sheet of a notebook (as the server gave it; uploads are checked there). */
export const fromNotebook = (notebook: Notebook, fallbackTitle: string): Sheet => {
  const { title, kernelspec: _kernelspec, ...metadata } = notebook.metadata
  const ids = new Set<string>()
  return {
    title: title ?? fallbackTitle,
    kernel: kernelOf(notebook.metadata),
    metadata,
    cells: notebook.cells.map((cell) => {
      // ids must be unique within a notebook; an older notebook has none
      const id = cell.id !== undefined && !ids.has(cell.id) ? cell.id : newCellId()
      ids.add(id)
      return {
        id,
        type: cell.cell_type,
        source: joined(cell.source),
        metadata: cell.metadata,
        outputs: cell.cell_type === "code" ? cell.outputs.map((o) => fromOutput(o as NbOutput)) : [],
      }
    }),
  }
}

/** A file name for downloading `title` (what a file system accepts everywhere). */
export const fileNameOf = (title: string): string => `${title.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").trim() || "worksheet"}.ipynb`
