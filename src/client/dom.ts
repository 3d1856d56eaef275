// Building the page's DOM: an element with its class, text, attributes and children, and a real <button> (keyboard,
// focus, screen readers) that runs a handler. Text always goes in as text.
type Child = Node | string | undefined | false

export const el = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; attrs?: Record<string, string> } = {},
  ...children: ReadonlyArray<Child>
): HTMLElementTagNameMap[K] => {
  const node = document.createElement(tag)
  if (props.class !== undefined) node.className = props.class
  if (props.text !== undefined) node.textContent = props.text
  for (const [name, value] of Object.entries(props.attrs ?? {})) node.setAttribute(name, value)
  for (const child of children) if (child !== undefined && child !== false) node.append(child)
  return node
}

export const button = (text: string, onClick: (event: MouseEvent) => void, props: { class?: string; attrs?: Record<string, string> } = {}): HTMLButtonElement => {
  const node = el("button", { ...props, text, attrs: { type: "button", ...props.attrs } })
  node.addEventListener("click", onClick)
  return node
}

export const byId = <T extends HTMLElement>(id: string): T => {
  const node = document.getElementById(id)
  if (node === null) throw new Error(`the page has no #${id}`)
  return node as T
}

/** "3 minutes ago", or the date and time past a day */
export const when = (time: number, now = Date.now()): string => {
  const s = Math.round((now - time) / 1000)
  if (s < 45) return "just now"
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`
  return new Date(time).toLocaleString()
}

/** "8 bytes", "3.2 KiB", "1.5 MiB" */
export const bytes = (n: number): string => {
  if (n < 1024) return `${n} byte${n === 1 ? "" : "s"}`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}
