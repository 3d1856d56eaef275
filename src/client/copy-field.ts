// A link the page hands out (a share link, a permalink): a read-only field holding its absolute URL, selected on
// focus, and a Copy button that says whether the copy worked.
import { button, el } from "./dom.ts"

export interface CopyField {
  readonly root: HTMLElement
  /** shows `url` (absolute) in the field, or hides the field for undefined */
  set(url: string | undefined): void
}

/** the clipboard API exists only in secure contexts (https, localhost): elsewhere the old selection copy */
const copy = async (input: HTMLInputElement): Promise<boolean> => {
  try {
    await navigator.clipboard.writeText(input.value)
    return true
  } catch {
    input.select()
    return document.execCommand("copy")
  }
}

/** `id` is the field's; its Copy button is `<id>-copy`, labelled "Copy <label>". */
export const copyField = (id: string, label: string): CopyField => {
  const input = el("input", { class: "link-field", attrs: { id, type: "text", readonly: "", spellcheck: "false", "aria-label": label } })
  input.addEventListener("focus", () => input.select())
  const said = el("span", { class: "copy-state", attrs: { role: "status" } })
  const copyButton = button("Copy", () => void copy(input).then((done) => {
    said.textContent = done ? "copied" : "select the link and copy it: this browser refused"
  }), { attrs: { id: `${id}-copy`, "aria-label": `Copy ${label}` } })
  const root = el("div", { class: "copy-field", attrs: { hidden: "" } }, input, copyButton, said)
  return {
    root,
    set: (url) => {
      input.value = url ?? ""
      said.textContent = ""
      root.hidden = url === undefined
    },
  }
}
