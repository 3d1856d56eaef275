// One cell: a CodeMirror 6 editor (shift-enter runs), a run button, a running mark that follows the kernel's real
// state (set when sent, cleared at the kernel's `done` or the session's end), and its streamed output.
import { python } from "@codemirror/lang-python"
import { Prec } from "@codemirror/state"
import { keymap } from "@codemirror/view"
import { basicSetup, EditorView } from "codemirror"
import { OutputArea, type OnInteract } from "./render.ts"
import type { OutputMsg } from "./types.ts"

export interface CellRunner {
  /** runs the code, streaming each output message to `onMessage`; resolves when the run is over */
  run(code: string, onMessage: (msg: OutputMsg) => void): Promise<{ status: string; note?: string }>
}

export interface CellOptions {
  readonly code?: string
  readonly runner: CellRunner
  readonly onInteract: OnInteract
  /** shift-enter: after running, e.g. focus or add the next cell */
  readonly onShiftEnter?: (cell: Cell) => void
  /** the code was edited */
  readonly onChange?: () => void
  /** shows a remove button that calls this */
  readonly onRemove?: (cell: Cell) => void
}

export class Cell {
  readonly root: HTMLElement
  readonly editor: EditorView
  readonly output: OutputArea
  private readonly status: HTMLElement
  private readonly options: CellOptions
  private runs = 0

  constructor(options: CellOptions) {
    this.options = options
    this.root = document.createElement("section")
    this.root.className = "cell"
    const input = document.createElement("div")
    input.className = "cell-input"
    const bar = document.createElement("div")
    bar.className = "cell-bar"
    const button = document.createElement("button")
    button.type = "button"
    button.className = "run"
    button.textContent = "Run"
    button.title = "Run (shift-enter)"
    button.addEventListener("click", () => void this.run())
    this.status = document.createElement("span")
    this.status.className = "cell-status"
    bar.append(button, this.status)
    if (options.onRemove !== undefined) {
      const remove = document.createElement("button")
      remove.type = "button"
      remove.className = "remove"
      remove.textContent = "×"
      remove.title = "Remove this cell"
      remove.setAttribute("aria-label", "Remove this cell")
      remove.addEventListener("click", () => options.onRemove?.(this))
      bar.append(remove)
    }
    const out = document.createElement("div")
    out.className = "cell-output"
    out.setAttribute("aria-live", "polite")
    this.root.append(input, bar, out)
    this.output = new OutputArea(out, options.onInteract)
    this.editor = new EditorView({
      doc: options.code ?? "",
      parent: input,
      extensions: [
        Prec.highest(keymap.of([{
          key: "Shift-Enter",
          run: () => {
            void this.run()
            options.onShiftEnter?.(this)
            return true
          },
        }])),
        basicSetup,
        python(),
        EditorView.lineWrapping,
        EditorView.updateListener.of((update) => {
          if (update.docChanged) options.onChange?.()
        }),
      ],
    })
  }

  get code(): string {
    return this.editor.state.doc.toString()
  }

  focus(): void {
    this.editor.focus()
  }

  get running(): boolean {
    return this.root.classList.contains("running")
  }

  async run(): Promise<void> {
    const run = ++this.runs
    this.output.clear()
    this.root.classList.add("running")
    this.root.classList.remove("failed")
    this.status.textContent = "running…"
    const started = performance.now()
    const result = await this.options.runner.run(this.code, (msg) => {
      if (run === this.runs) this.output.append(msg)
    })
    if (run !== this.runs) return
    this.root.classList.remove("running")
    const ms = Math.round(performance.now() - started)
    if (result.status !== "ok") this.root.classList.add("failed")
    this.status.textContent = result.status === "ok" ? `${ms} ms${result.note ? ` · ${result.note}` : ""}` : `${result.status}${result.note ? `: ${result.note}` : ""}`
  }
}
