// Tab and Shift-Tab in a code cell, as at a Sage or IPython prompt (docs/PAGE.md "Completion and help"): Tab completes
// the name before the cursor from the session's kernel (CodeMirror's completion list; Tab or Enter takes the one
// picked), Shift-Tab shows the help of the name at the cursor under the cell, and again (or its Source button) its
// source. Tab after only blanks indents, as does Tab in a cell the kernel does not read (GAP, GP, ...). Escape closes
// the help; Escape then Tab leaves the editor (CodeMirror's rule), so the keyboard is never trapped.
import { acceptCompletion, completionStatus, startCompletion, type CompletionContext, type CompletionResult } from "@codemirror/autocomplete"
import { EditorSelection, EditorState, Prec, type Extension } from "@codemirror/state"
import { keymap, type EditorView } from "@codemirror/view"
import type { HelpPanel, HelpRequest } from "./help.ts"

/** A kernel's answer, or why there is none (for a person). */
export type Answer<T> = T | { readonly error: string }

/** What a cell asks the session's kernel; positions are string indices into `code` (CodeMirror's). */
export interface Assistant {
  complete(code: string, cursor: number): Promise<Answer<{ readonly matches: ReadonlyArray<string>; readonly from: number; readonly to: number }>>
  inspect(code: string, cursor: number, detail: 0 | 1): Promise<Answer<{ readonly found: boolean; readonly name: string; readonly text: string }>>
}

/**
 * What Tab does in a cell now: `assist` asks the kernel, `indent` only indents (a language the kernel does not read),
 * `off` leaves Tab to the browser (a read-only cell).
 */
export type TabMode = "assist" | "indent" | "off"

const INDENT = "    "
/** typed on after the list came, a name still fits the kernel's answer; anything else asks again */
const NAME_SO_FAR = /^[\p{L}\p{N}_]*$/u

/** Four spaces at the cursor, or at the start of every line a selection touches. */
const indent = (view: EditorView): boolean => {
  const { state } = view
  const changes = state.changeByRange((range) => {
    if (range.empty) return { changes: { from: range.from, insert: INDENT }, range: EditorSelection.cursor(range.from + INDENT.length) }
    const lines: Array<{ from: number; insert: string }> = []
    for (let at = state.doc.lineAt(range.from).number; at <= state.doc.lineAt(range.to).number; at++) lines.push({ from: state.doc.line(at).from, insert: INDENT })
    const moved = state.changes(lines)
    return { changes: lines, range: EditorSelection.range(moved.mapPos(range.anchor, 1), moved.mapPos(range.head, 1)) }
  })
  view.dispatch(state.update(changes, { scrollIntoView: true, userEvent: "input.indent" }))
  return true
}

/** Only blanks before the cursor on its line (or a selection): Tab indents there rather than completes. */
const atIndentation = (state: EditorState): boolean => {
  const { main } = state.selection
  if (!main.empty) return true
  const line = state.doc.lineAt(main.head)
  return /^\s*$/.test(line.text.slice(0, main.head - line.from))
}

/** The extensions of a cell's editor for Tab and Shift-Tab; `help` is the cell's panel, `mode` asked at each key. */
export const assist = (assistant: Assistant, help: HelpPanel, mode: () => TabMode): Extension => {
  const source = async (context: CompletionContext): Promise<CompletionResult | null> => {
    // only Tab (startCompletion) asks the kernel; typing keeps CodeMirror's own, local suggestions
    if (!context.explicit || mode() !== "assist") return null
    const got = await assistant.complete(context.state.doc.toString(), context.pos)
    if (context.aborted) return null
    if ("error" in got) {
      help.note(`No completions: ${got.error}`)
      return null
    }
    if (got.matches.length === 0) return null
    return { from: got.from, to: got.to, options: got.matches.map((label) => ({ label })), validFor: NAME_SO_FAR }
  }

  const ask = async (request: HelpRequest): Promise<void> => {
    help.note("Asking the kernel…")
    const got = await assistant.inspect(request.code, request.cursor, request.detail)
    if ("error" in got) return help.note(`No help: ${got.error}`)
    help.show(request, got)
  }
  help.onAsk = (request) => void ask(request)

  const tab = (view: EditorView): boolean => {
    const now = mode()
    if (now === "off") return false
    if (completionStatus(view.state) === "active") {
      // refused in the list's first 75 ms (CodeMirror's interactionDelay): the Tab is still the editor's, not the page's
      acceptCompletion(view)
      return true
    }
    if (now === "indent" || atIndentation(view.state)) return indent(view)
    return startCompletion(view)
  }
  const shiftTab = (view: EditorView): boolean => {
    if (mode() !== "assist") return false
    const code = view.state.doc.toString()
    const cursor = view.state.selection.main.head
    // pressed again on the same spot: the source of what it showed
    void ask({ code, cursor, detail: help.shows({ code, cursor, detail: 0 }) ? 1 : 0 })
    return true
  }
  const escape = (): boolean => {
    if (help.open) help.hide()
    return false // and on: Escape still closes a completion list and frees Tab to leave the editor
  }
  return [
    EditorState.languageData.of(() => [{ autocomplete: source }]),
    Prec.highest(keymap.of([{ key: "Tab", run: tab, shift: shiftTab }, { key: "Escape", run: escape }])),
  ]
}
