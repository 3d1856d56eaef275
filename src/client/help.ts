// The help panel under a cell: what Shift-Tab asked the session's kernel about the name at the cursor, its docstring
// or its source, as text (it comes from the session's objects, which its code makes: never markup), with a button for
// the other one and Close. Errors and "nothing known" are said in the same place.
import { button, el } from "./dom.ts"

/** Where an inspection was asked, and for what: the help (0) or the source (1). */
export interface HelpRequest {
  readonly code: string
  readonly cursor: number
  readonly detail: 0 | 1
}

export class HelpPanel {
  readonly root: HTMLElement
  private readonly title: HTMLElement
  private readonly body: HTMLPreElement
  private readonly other: HTMLButtonElement
  private shown: HelpRequest | undefined
  /** asks for `request` (the Source / Help button: the other detail of what is shown) */
  onAsk: (request: HelpRequest) => void = () => undefined

  constructor() {
    this.title = el("span", { class: "cell-help-title" })
    this.other = button("Source", () => {
      if (this.shown !== undefined) this.onAsk({ ...this.shown, detail: this.shown.detail === 0 ? 1 : 0 })
    }, { class: "cell-help-other" })
    const close = button("×", () => this.hide(), { class: "cell-help-close", attrs: { "aria-label": "Close the help", title: "Close (Escape)" } })
    this.body = el("pre", { class: "cell-help-text" })
    this.root = el("div", { class: "cell-help", attrs: { role: "region", "aria-label": "Help", "aria-live": "polite" } }, el("div", { class: "cell-help-bar" }, this.title, this.other, close), this.body)
    this.root.hidden = true
  }

  get open(): boolean {
    return !this.root.hidden
  }

  /** Is `request`'s help (same code, cursor and detail) what the panel shows? */
  shows(request: HelpRequest): boolean {
    const shown = this.shown
    return this.open && shown !== undefined && shown.code === request.code && shown.cursor === request.cursor && shown.detail === request.detail
  }

  /** The kernel's answer to `request`. */
  show(request: HelpRequest, answer: { readonly found: boolean; readonly name: string; readonly text: string }): void {
    if (!answer.found) {
      return this.note(answer.name === "" ? "Put the cursor on a name (or inside a call's parentheses) to see its help." : `Nothing is known about ${answer.name} in this session: run the cell that defines it first, or check the name.`)
    }
    this.shown = request
    this.title.textContent = `${request.detail === 0 ? "Help" : "Source"}: ${answer.name}`
    this.body.textContent = answer.text
    this.other.hidden = false
    this.other.textContent = request.detail === 0 ? "Source" : "Help"
    this.other.title = request.detail === 0 ? "Its source (Shift-Tab again)" : "Its docstring"
    this.root.hidden = false
  }

  /** A line instead of help: waiting, nothing found, or why there is none. */
  note(text: string): void {
    this.shown = undefined
    this.title.textContent = text
    this.body.textContent = ""
    this.other.hidden = true
    this.root.hidden = false
  }

  hide(): void {
    this.shown = undefined
    this.root.hidden = true
  }
}
