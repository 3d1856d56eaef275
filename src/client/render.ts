// Renders execution output into the DOM as it streams: stdout/stderr text, rich display (image/png or /gif, text/html in a
// sandboxed frame, a Sage 3-D scene in the sandboxed 3-D viewer, text/latex through KaTeX, text/plain), errors with
// traceback, and interact controls with their own output area. Output is untrusted (a cell's, or a forged cached
// result): only text/html is markup, and it never enters this document; a 3-D scene is data for the viewer's frame;
// everything else goes in as text.
import katex from "katex"
import type { Control } from "../protocol/worker.ts"
import { htmlFrame, THREEJS_MIME, threejsFrame } from "./frame.ts"
import type { OutputMsg } from "./types.ts"

export type OnInteract = (interact: string, control: string, value: string | number | boolean) => void

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] => {
  const node = document.createElement(tag)
  if (className !== undefined) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

/** An output area: appends messages in order; consecutive stream text joins one block. */
export class OutputArea {
  readonly root: HTMLElement
  private target: HTMLElement
  private lastStream: { kind: string; node: HTMLElement } | undefined
  private readonly interacts = new Map<string, OutputArea>()
  private readonly onInteract: OnInteract

  constructor(root: HTMLElement, onInteract: OnInteract) {
    this.root = root
    this.target = root
    this.onInteract = onInteract
  }

  clear(): void {
    this.root.replaceChildren()
    this.target = this.root
    this.lastStream = undefined
    this.interacts.clear()
  }

  /** The output area of interact `id` (its re-runs' output replaces what was there). */
  interactArea(id: string): OutputArea | undefined {
    return this.interacts.get(id)
  }

  append(msg: OutputMsg): void {
    switch (msg.kind) {
      case "stdout":
      case "stderr": {
        if (this.lastStream?.kind === msg.kind && this.lastStream.node.parentElement === this.target) this.lastStream.node.textContent += msg.text
        else {
          const node = el("pre", `out-${msg.kind}`, msg.text)
          this.target.append(node)
          this.lastStream = { kind: msg.kind, node }
        }
        return
      }
      case "display":
        this.lastStream = undefined
        this.target.append(renderDisplay(msg.data))
        return
      case "error": {
        this.lastStream = undefined
        const box = el("pre", "out-error")
        box.append(el("strong", undefined, `${msg.ename}: ${msg.evalue}\n`), msg.traceback.join(""))
        this.target.append(box)
        return
      }
      case "interact": {
        this.lastStream = undefined
        const box = el("div", "interact")
        const controls = el("div", "interact-controls")
        for (const control of msg.controls) controls.append(renderControl(msg.interact, control, this.onInteract))
        const out = el("div", "interact-output")
        box.append(controls, out)
        this.target.append(box)
        const area = new OutputArea(out, this.onInteract)
        this.interacts.set(msg.interact, area)
        // The function's first run follows in the same execution: it belongs inside the interact.
        this.target = out
        return
      }
      case "terminal":
      case "done":
        return
    }
  }
}

/** base64 pictures a display may be, shown as an <img> (an animation is a GIF) */
const PICTURES = ["image/png", "image/gif", "image/jpeg"] as const

const renderDisplay = (data: Record<string, string>): HTMLElement => {
  const picture = PICTURES.find((mime) => data[mime] !== undefined)
  if (picture !== undefined) {
    const img = el("img", "out-image")
    img.src = `data:${picture};base64,${data[picture] ?? ""}`
    img.alt = data["text/plain"] ?? "plot"
    return img
  }
  const scene = data[THREEJS_MIME]
  if (scene !== undefined) return threejsFrame(scene, "out-threejs")
  const html = data["text/html"]
  if (html !== undefined) return htmlFrame(html, "out-html")
  const latex = data["text/latex"]
  if (latex !== undefined) {
    const box = el("div", "out-latex")
    try {
      // trust: false keeps \href, \url, \includegraphics and \html* (markup of the cell's choosing) out
      katex.render(latex.replace(/^\$+|\$+$/g, ""), box, { displayMode: true, throwOnError: true, trust: false })
      return box
    } catch {
      // KaTeX does not know every Sage macro: fall back to the plain text
    }
  }
  return el("pre", "out-text", data["text/plain"] ?? JSON.stringify(data))
}

const renderControl = (interact: string, control: Control, onInteract: OnInteract): HTMLElement => {
  const label = el("label", "control")
  const name = el("span", "control-label", control.label)
  const value = el("output", "control-value")
  label.append(name)
  const send = (v: string | number | boolean): void => onInteract(interact, control.name, v)
  switch (control.control) {
    case "slider": {
      const input = el("input")
      input.type = "range"
      input.min = String(control.min ?? 0)
      input.max = String(control.max ?? 100)
      input.step = String(control.step ?? 1)
      input.value = String(control.default ?? control.min ?? 0)
      input.dataset["control"] = control.name
      value.textContent = input.value
      input.addEventListener("input", () => (value.textContent = input.value))
      input.addEventListener("change", () => send(Number(input.value)))
      label.append(input, value)
      return label
    }
    case "checkbox": {
      const input = el("input")
      input.type = "checkbox"
      input.checked = control.default === true
      input.addEventListener("change", () => send(input.checked))
      label.append(input)
      return label
    }
    case "selector": {
      const select = el("select")
      for (const option of control.values ?? []) {
        const node = el("option", undefined, String(option))
        node.value = String(option)
        select.append(node)
      }
      select.value = String(control.default ?? "")
      select.addEventListener("change", () => send(select.value))
      label.append(select)
      return label
    }
    case "input_box": {
      const input = el("input")
      input.type = "text"
      input.value = String(control.default ?? "")
      input.addEventListener("change", () => send(input.value))
      label.append(input)
      return label
    }
  }
}
