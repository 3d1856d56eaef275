// A side panel that a phone shows behind a header button (the worksheet list, the files): the button's aria-expanded
// and the panel's `open` class go together, and opening moves focus into the panel. A desktop shows the panel always.
export const drawer = (toggle: HTMLButtonElement, panel: HTMLElement): void => {
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true"
    toggle.setAttribute("aria-expanded", String(open))
    panel.classList.toggle("open", open)
    if (open) panel.querySelector<HTMLElement>("button, a")?.focus()
  })
}
