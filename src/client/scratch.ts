// The scratch page's code, kept in this browser's localStorage (nothing typed is lost to a closed tab): saved a
// moment after an edit and when the page is left, read back at a load, with a permalink's code put first when one is opened.
/** what a browser that kept nothing shows */
export const FIRST_CELL = "# shift-enter runs a cell; show() typesets\nshow(factor(x^2 - 1))"
const STORAGE_KEY = "sagews:cells"
/** ms after an edit the cells are written (with every edit made since): typing does not write on every key */
export const SCRATCH_SAVE_MS = 300

export class ScratchStore {
  private timer: ReturnType<typeof setTimeout> | undefined
  private readonly codes: () => ReadonlyArray<string>

  /** `codes`: the page's cells now */
  constructor(codes: () => ReadonlyArray<string>) {
    this.codes = codes
  }

  save(): void {
    // written once a moment after the first edit not yet written, whatever follows: a stream of edits still saves
    if (this.timer !== undefined) return
    this.timer = setTimeout(() => this.write(), SCRATCH_SAVE_MS)
    // a tab closed or reloaded within the moment still keeps the last edit
    addEventListener("pagehide", this.flush)
  }

  private readonly flush = (): void => {
    if (this.timer !== undefined) this.write()
  }

  private write(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    removeEventListener("pagehide", this.flush)
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(this.codes()))
    } catch {
      // storage full or disabled: the page still works
    }
  }

  restore(): Array<string> {
    try {
      const saved: unknown = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null")
      return Array.isArray(saved) && saved.length > 0 && saved.every((c) => typeof c === "string") ? saved : [FIRST_CELL]
    } catch {
      return [FIRST_CELL]
    }
  }

  /** A permalink's code as the first cell, what this browser kept after it (not the code twice, not the example). */
  restoreWith(code: string): Array<string> {
    return [code, ...this.restore().filter((c) => c !== code && c !== FIRST_CELL)]
  }
}
