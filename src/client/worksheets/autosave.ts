// Autosave of the open worksheet: a PUT naming the version the tab has (If-Match), a second after the last edit or
// at once after a run, one at a time, and again while what is on the page differs from what was saved. The state it
// reports is "saved" only once a PUT answered 200 (PostgreSQL committed it); a failure is "unsaved" or "offline"
// with retries on a backoff; a 409 (saved elsewhere since) stops it and hands the tab's text to `onConflict`.
import type { Api, Problem } from "../api.ts"

/** ms after the last edit before the save: a burst of typing is one commit */
export const SAVE_DEBOUNCE_MS = 1_000
/** first retry after a failed save (ms), doubled each time up to RETRY_MAX_MS */
export const RETRY_FIRST_MS = 1_000
/** longest wait between retries (ms): a long outage is still retried often enough to notice its end */
export const RETRY_MAX_MS = 15_000

export type SaveState =
  | { readonly state: "saved"; readonly version: string }
  | { readonly state: "saving" }
  | { readonly state: "unsaved"; readonly problem?: string }
  | { readonly state: "offline"; readonly problem: string; readonly retryInMs: number }
  | { readonly state: "conflict"; readonly problem: string }

export interface AutosaveOptions {
  readonly api: Api
  readonly id: string
  /** the version the page was loaded at, and its text */
  readonly version: string
  readonly text: string
  /** the page's worksheet as the notebook text to save */
  readonly snapshot: () => string
  readonly onState: (state: SaveState) => void
  /** another tab or device saved since `version`: the tab's `text` was not written (the latest is `latest`) */
  readonly onConflict: (text: string, latest: string) => void
}

export class Autosave {
  /** the version the server has from this tab (the next PUT names it) */
  version: string
  private savedText: string
  private readonly options: AutosaveOptions
  private timer: ReturnType<typeof setTimeout> | undefined
  private inFlight: Promise<void> | undefined
  private again = false
  private retryMs = RETRY_FIRST_MS
  private stopped = false
  /** a retry is due after a failure: edits wait for it rather than push it back */
  private retrying = false
  private readonly onOnline = (): void => {
    if (this.retrying) this.saveSoon(0)
  }

  constructor(options: AutosaveOptions) {
    this.options = options
    this.version = options.version
    this.savedText = options.text
    window.addEventListener("online", this.onOnline)
    options.onState({ state: "saved", version: this.version })
  }

  /** true while the page has edits the server has not acknowledged */
  get dirty(): boolean {
    return !this.stopped && this.options.snapshot() !== this.savedText
  }

  /** An edit: save a second after the last one. */
  changed(): void {
    if (this.stopped || this.retrying) return
    if (this.inFlight === undefined) this.options.onState({ state: "unsaved" })
    this.saveSoon(SAVE_DEBOUNCE_MS)
  }

  /** Save now (a run ended, the page is being left). Resolves once what is on the page now is saved, or failed to be. */
  async flush(): Promise<void> {
    clearTimeout(this.timer)
    await this.save()
    while (this.inFlight !== undefined) await this.inFlight
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    window.removeEventListener("online", this.onOnline)
  }

  private saveSoon(ms: number): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.save(), ms)
  }

  private async save(): Promise<void> {
    if (this.stopped) return
    this.retrying = false
    if (this.inFlight !== undefined) {
      this.again = true
      return this.inFlight
    }
    const text = this.options.snapshot()
    if (text === this.savedText) return this.options.onState({ state: "saved", version: this.version })
    this.options.onState({ state: "saving" })
    this.inFlight = this.put(text)
    try {
      await this.inFlight
    } finally {
      this.inFlight = undefined
    }
    if (this.again && !this.stopped) {
      this.again = false
      await this.save()
    }
  }

  private async put(text: string): Promise<void> {
    const r = await this.options.api.save(this.options.id, this.version, text)
    if (this.stopped) return
    if (r.ok) {
      this.version = r.value.version
      this.savedText = text
      this.retryMs = RETRY_FIRST_MS
      if (this.options.snapshot() === text) this.options.onState({ state: "saved", version: this.version })
      else {
        this.options.onState({ state: "unsaved" })
        this.again = true
      }
      return
    }
    this.failed(r.problem, text)
  }

  private failed(problem: Problem, text: string): void {
    this.again = false
    switch (problem.kind) {
      case "conflict":
        this.stop()
        this.options.onState({ state: "conflict", problem: problem.message })
        return this.options.onConflict(text, problem.latest)
      case "offline": {
        const wait = Math.max(problem.retryAfterMs ?? 0, this.retryMs)
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS)
        this.options.onState({ state: "offline", problem: problem.message, retryInMs: wait })
        this.saveSoon(wait)
        this.retrying = true
        return
      }
      case "signedOut":
        return this.options.onState({ state: "unsaved", problem: "you are signed out: sign in again (in another tab, so this one keeps your edits) and edit to save" })
      case "refused":
        // not worth repeating as it is (too large, refused as invalid): the next edit tries again
        return this.options.onState({ state: "unsaved", problem: problem.message })
    }
  }
}
