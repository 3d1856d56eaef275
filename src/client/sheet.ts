// The cells of the page, in order: add after a cell, remove, replace them all with a worksheet's, read them back as
// a worksheet keeps them, make them read-only (an old version on show), and tell them when the page's kernel changes. Edits and finished runs are reported,
// so the page can save (the scratch page to this browser's storage, a worksheet to the server).
import type { Assistant } from "./assist.ts"
import { Cell, type CellRunner } from "./cell.ts"
import type { CellContent } from "./notebook.ts"
import type { OnInteract } from "./render.ts"
import { namedLanguage } from "./language.ts"
import type { KernelKind, Language } from "./types.ts"

export interface SheetOptions {
  readonly root: HTMLElement
  readonly runner: CellRunner
  readonly onInteract: OnInteract
  /** a cell's code was edited, or a cell added or removed */
  readonly onChange: () => void
  /** a cell's run (or an interact's re-run) ended */
  readonly onRan: (cell: Cell) => void
  /** a cell's "Permalink" button was pressed */
  readonly onPermalink: (cell: Cell) => void
  /** what Tab and Shift-Tab in a cell ask (the page's session) */
  readonly assistant: Assistant
  /** the page's kernel: a cell's language is its own unless the cell's menu says otherwise */
  readonly kernel: () => KernelKind
}

export class CellList {
  readonly cells: Array<Cell> = []
  private readonly options: SheetOptions
  private readOnly = false
  /** set while `replace` fills the list: loading is not an edit */
  private loading = false

  constructor(options: SheetOptions) {
    this.options = options
  }

  add(from: { code?: string; language?: Language; content?: CellContent } = {}, after?: Cell): Cell {
    const cell = new Cell({
      ...from,
      runner: this.options.runner,
      assistant: this.options.assistant,
      kernel: this.options.kernel,
      onInteract: this.options.onInteract,
      onChange: () => this.options.onChange(),
      onRan: (c) => this.options.onRan(c),
      onRemove: (current) => this.remove(current),
      onPermalink: (current) => this.options.onPermalink(current),
      onShiftEnter: (current) => {
        const next = this.cells[this.cells.indexOf(current) + 1]
        if (next !== undefined) next.focus()
        else this.add({}, current).focus()
      },
    })
    const index = after !== undefined ? this.cells.indexOf(after) + 1 : this.cells.length
    this.cells.splice(index, 0, cell)
    const before = this.options.root.children[index]
    if (before !== undefined) this.options.root.insertBefore(cell.root, before)
    else this.options.root.append(cell.root)
    if (this.readOnly) cell.setReadOnly(true)
    if (!this.loading) this.options.onChange()
    return cell
  }

  private remove(cell: Cell): void {
    if (this.readOnly) return
    if (this.cells.length === 1) {
      cell.editor.dispatch({ changes: { from: 0, to: cell.code.length, insert: "" } })
      return
    }
    this.cells.splice(this.cells.indexOf(cell), 1)
    cell.root.remove()
    this.options.onChange()
  }

  /** Replaces every cell (an empty list leaves one empty cell, so there is always somewhere to type). */
  replace(contents: ReadonlyArray<CellContent | string>): void {
    for (const cell of this.cells.splice(0)) {
      cell.editor.destroy()
      cell.root.remove()
    }
    this.loading = true
    try {
      // code kept as text alone (the scratch page, a permalink) may name its language in a first line
      for (const c of contents) this.add(typeof c === "string" ? namedLanguage(c, this.options.kernel()) : { content: c })
      if (this.cells.length === 0) this.add()
    } finally {
      this.loading = false
    }
  }

  get contents(): ReadonlyArray<CellContent> {
    return this.cells.map((c) => c.content)
  }

  /** The page's kernel changed: cells in its own language follow it. */
  kernelChanged(): void {
    for (const cell of this.cells) cell.kernelChanged()
  }

  setReadOnly(readOnly: boolean): void {
    this.readOnly = readOnly
    for (const cell of this.cells) cell.setReadOnly(readOnly)
  }

  interactRerun(interact: string): { cell: Cell; sink: Parameters<CellRunner["run"]>[1] } | undefined {
    for (const cell of this.cells) {
      const sink = cell.interactRerun(interact)
      if (sink !== undefined) return { cell, sink }
    }
    return undefined
  }
}
