// One cell: a CodeMirror 6 editor (shift-enter runs; Tab completes and Shift-Tab shows help, from the session's
// kernel: assist.ts), a run button, a language menu, a running mark that follows the kernel's real state (set when
// sent, cleared at the kernel's `done` or the session's end), and its streamed output, which it keeps (`outputs`) so a
// worksheet can save it, with its language in its metadata. Markdown and raw cells of a notebook are kept as text, not run.
import { python } from "@codemirror/lang-python"
import { Compartment, EditorState, Prec } from "@codemirror/state"
import { keymap } from "@codemirror/view"
import { basicSetup, EditorView } from "codemirror"
import { assist, type Assistant, type TabMode } from "./assist.ts"
import { HelpPanel } from "./help.ts"
import { fillMenu, kernelReads, LANGUAGES, languageMenu, languageOf, withLanguage } from "./language.ts"
import { newCellId, type CellContent, type CellType } from "./notebook.ts"
import { OutputArea, type OnInteract } from "./render.ts"
import type { KernelKind, Language, OutputMsg } from "./types.ts"

export interface CellRunner {
  /**
   * Runs the code, streaming each output message to `onMessage`; resolves when the run is over, with `limit` set
   * when a limit ended it (the cell then reads as that limit reached, not as interrupted). `onRestart`: the run
   * starts over (its worker was lost), so what `onMessage` was given is void. `language`: the cell's, when it is not
   * the kernel's own.
   */
  run(code: string, onMessage: (msg: OutputMsg) => void, onRestart?: () => void, language?: Language): Promise<{ status: string; note?: string; limit?: string }>
}

export interface CellOptions {
  readonly code?: string
  /** the language of a new cell of `code`, when not the kernel's own */
  readonly language?: Language
  /** a saved cell: its id, type, metadata and outputs (a new cell is an empty code cell) */
  readonly content?: CellContent
  readonly runner: CellRunner
  readonly onInteract: OnInteract
  /** shift-enter: after running, e.g. focus or add the next cell */
  readonly onShiftEnter?: (cell: Cell) => void
  /** the code was edited */
  readonly onChange?: () => void
  /** a run ended (its outputs are all in) */
  readonly onRan?: (cell: Cell) => void
  /** shows a remove button that calls this */
  readonly onRemove?: (cell: Cell) => void
  /** shows a "Permalink" button (code cells) that calls this */
  readonly onPermalink?: (cell: Cell) => void
  /** Tab and Shift-Tab ask it (the page's session); without one Tab indents */
  readonly assistant?: Assistant
  /** the page's kernel: shows the language menu (code cells), whose default is the kernel's own language */
  readonly kernel?: () => KernelKind
}

/** Python's highlighting, for the languages that are Python underneath (Sage's too); one for every cell. */
const PYTHON = python()

/** A cell with no session to ask: Tab indents (tabMode), so this is never asked. */
const NO_ASSISTANT: Assistant = {
  complete: () => Promise.resolve({ error: "this cell has no session to ask" }),
  inspect: () => Promise.resolve({ error: "this cell has no session to ask" }),
}

export class Cell {
  readonly root: HTMLElement
  readonly editor: EditorView
  readonly output: OutputArea
  readonly id: string
  readonly type: CellType
  /** the notebook metadata the cell keeps (its language among it) */
  metadata: Record<string, unknown>
  /** what the last run printed and showed, in order (what a worksheet saves) */
  outputs: Array<OutputMsg> = []
  /** what Shift-Tab showed */
  readonly help = new HelpPanel()
  private readonly status: HTMLElement
  private readonly runButton: HTMLButtonElement
  private readonly languageSelect: HTMLSelectElement | undefined
  private readonly options: CellOptions
  private readonly editable = new Compartment()
  private readonly highlighting = new Compartment()
  /** whether the editor highlights the code as Python now */
  private highlighted: boolean
  private readOnly = false
  private runs = 0

  constructor(options: CellOptions) {
    this.options = options
    this.id = options.content?.id ?? newCellId()
    this.type = options.content?.type ?? "code"
    this.metadata = options.content !== undefined ? { ...options.content.metadata } : withLanguage({}, options.language)
    this.highlighted = kernelReads(this.writtenIn)
    this.root = document.createElement("section")
    this.root.className = this.type === "code" ? "cell" : `cell cell-${this.type}`
    const input = document.createElement("div")
    input.className = "cell-input"
    const bar = document.createElement("div")
    bar.className = "cell-bar"
    this.runButton = document.createElement("button")
    this.runButton.type = "button"
    this.runButton.className = "run"
    this.runButton.textContent = "Run"
    this.runButton.title = "Run (shift-enter)"
    this.runButton.addEventListener("click", () => void this.run())
    this.status = document.createElement("span")
    this.status.className = "cell-status"
    if (this.type === "code" && options.kernel !== undefined) {
      const menu = languageMenu(options.kernel())
      this.languageSelect = menu
      menu.addEventListener("change", () => this.chooseLanguage(menu.value))
      bar.append(this.runButton, menu, this.status)
    } else if (this.type === "code") bar.append(this.runButton, this.status)
    else {
      this.status.textContent = `${this.type} cell (kept as text, not run)`
      bar.append(this.status)
    }
    if (options.onPermalink !== undefined && this.type === "code") {
      const permalink = document.createElement("button")
      permalink.type = "button"
      permalink.className = "permalink"
      permalink.textContent = "Permalink"
      permalink.title = "A link to this cell's code"
      permalink.addEventListener("click", () => options.onPermalink?.(this))
      bar.append(permalink)
    }
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
    this.root.append(input, this.help.root, bar, out)
    this.output = new OutputArea(out, options.onInteract)
    this.editor = new EditorView({
      doc: options.content?.source ?? options.code ?? "",
      parent: input,
      extensions: [
        Prec.highest(keymap.of([{
          key: "Shift-Enter",
          run: () => {
            if (this.readOnly) return true
            void this.run()
            options.onShiftEnter?.(this)
            return true
          },
        }])),
        basicSetup,
        ...(this.type === "code" ? [this.highlighting.of(this.highlighted ? PYTHON : []), assist(options.assistant ?? NO_ASSISTANT, this.help, () => this.tabMode())] : []),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": `${this.type} cell` }),
        this.editable.of([]),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) options.onChange?.()
        }),
      ],
    })
    for (const msg of options.content?.outputs ?? []) this.show(msg)
    this.showLanguage()
  }

  /** The language the cell is written in when it is not the kernel's own (none: the kernel's). */
  get language(): Language | undefined {
    return languageOf(this.metadata)
  }

  /** The language its code is in: its own, else the page kernel's. */
  private get writtenIn(): Language {
    return this.language ?? this.options.kernel?.() ?? "sage"
  }

  /** The menu's choice: the kernel's own language is kept as none, so the cell follows the page's kernel. */
  private chooseLanguage(value: string): void {
    const chosen = LANGUAGES.find((l) => l === value)
    this.metadata = withLanguage(this.metadata, chosen === undefined || chosen === this.options.kernel?.() ? undefined : chosen)
    this.showLanguage()
    this.options.onChange?.()
  }

  /** The page's kernel changed: a cell in the kernel's own language follows it. */
  kernelChanged(): void {
    if (this.languageSelect !== undefined && this.options.kernel !== undefined) fillMenu(this.languageSelect, this.options.kernel())
    this.showLanguage()
  }

  private showLanguage(): void {
    if (this.languageSelect !== undefined) this.languageSelect.value = this.writtenIn
    this.root.dataset["language"] = this.writtenIn
    const python = kernelReads(this.writtenIn)
    if (this.type !== "code" || python === this.highlighted) return
    this.highlighted = python
    this.editor.dispatch({ effects: this.highlighting.reconfigure(python ? PYTHON : []) })
  }

  private tabMode(): TabMode {
    if (this.readOnly) return "off"
    return this.options.assistant !== undefined && kernelReads(this.writtenIn) ? "assist" : "indent"
  }

  get code(): string {
    return this.editor.state.doc.toString()
  }

  /** The cell as a worksheet keeps it. */
  get content(): CellContent {
    return { id: this.id, type: this.type, source: this.code, outputs: this.outputs, metadata: this.metadata }
  }

  focus(): void {
    this.editor.focus()
  }

  get running(): boolean {
    return this.root.classList.contains("running")
  }

  /** A read-only cell (an old version of a worksheet) cannot be edited, run or removed. */
  setReadOnly(readOnly: boolean): void {
    this.readOnly = readOnly
    this.runButton.disabled = readOnly
    if (this.languageSelect !== undefined) this.languageSelect.disabled = readOnly
    if (readOnly) this.help.hide()
    this.root.classList.toggle("read-only", readOnly)
    this.editor.dispatch({ effects: this.editable.reconfigure(readOnly ? [EditorState.readOnly.of(true), EditorView.editable.of(false)] : []) })
  }

  private show(msg: OutputMsg): void {
    this.outputs.push(msg)
    this.output.append(msg)
  }

  private clearOutputs(): void {
    this.outputs = []
    this.output.clear()
  }

  /** An interact of this cell re-ran: its output replaces what followed the interact (in the area and in `outputs`). */
  interactRerun(interact: string): ((msg: OutputMsg) => void) | undefined {
    const area = this.output.interactArea(interact)
    if (area === undefined) return undefined
    const at = this.outputs.findIndex((m) => m.kind === "interact" && m.interact === interact)
    let first = true
    return (msg) => {
      if (first) {
        area.clear()
        if (at >= 0) this.outputs.splice(at + 1)
      }
      first = false
      area.append(msg)
      if (at >= 0) this.outputs.push(msg)
      if (msg.kind === "done") this.options.onRan?.(this)
    }
  }

  async run(): Promise<void> {
    if (this.type !== "code" || this.readOnly) return
    const run = ++this.runs
    this.clearOutputs()
    this.root.classList.add("running")
    this.root.classList.remove("failed")
    this.status.textContent = "running…"
    const started = performance.now()
    const result = await this.options.runner.run(this.code, (msg) => {
      if (run === this.runs) this.show(msg)
    }, () => {
      if (run === this.runs) this.clearOutputs()
    }, this.language)
    if (run !== this.runs) return
    this.root.classList.remove("running")
    const ms = Math.round(performance.now() - started)
    if (result.status !== "ok") this.root.classList.add("failed")
    const what = result.limit !== undefined ? `limit "${result.limit}" reached` : result.status
    this.status.textContent = result.status === "ok" ? `${ms} ms${result.note ? ` · ${result.note}` : ""}` : `${what}${result.note ? `: ${result.note}` : ""}`
    this.options.onRan?.(this)
  }
}
