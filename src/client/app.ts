// The sagews page: cells on one session (opened on the first run, reopened after it ends), the connection state,
// a kernel choice, a terminal panel, and a notice that names the limit when one ends a session.
import "./jitless.ts"
import "./cell.css"
import { Cell, type CellRunner } from "./cell.ts"
import { SagewsClient } from "./connection.ts"
import type { ClientSession } from "./session.ts"
import type { TerminalPanel } from "./terminal.ts"
import type { KernelKind, Limits, OutputMsg } from "./types.ts"

const STATE_TEXT = { connecting: "connecting…", open: "connected", reconnecting: "reconnecting…", closed: "closed" } as const
const FIRST_CELL = "# shift-enter runs a cell\nfactor(x^2 - 1)"

const byId = <T extends HTMLElement>(id: string): T => {
  const node = document.getElementById(id)
  if (node === null) throw new Error(`the page has no #${id}`)
  return node as T
}

// The identity the server issued this tab is kept across a reload too, so a reload is not a new client.
const IDENTITY_KEY = "sagews.identity"
const storedIdentity = (): string | undefined => {
  try {
    return sessionStorage.getItem(IDENTITY_KEY) ?? undefined
  } catch {
    return undefined // storage disabled: every load is a new client
  }
}
const keepIdentity = (token: string): void => {
  try {
    sessionStorage.setItem(IDENTITY_KEY, token)
  } catch {
    // storage disabled
  }
}
const token = storedIdentity()
const client = new SagewsClient(`${location.origin}/sockjs`, { ...(token !== undefined ? { token } : {}), onIdentity: keepIdentity })
const cells: Array<Cell> = []
const notice = byId<HTMLElement>("notice")
const kernelSelect = byId<HTMLSelectElement>("kernel")
let session: Promise<ClientSession> | undefined
/** limits asked for when the page opens its next session (tests and power users set them from the console) */
const settings: { limits?: Limits } = {}

const showNotice = (text: string, kind: "info" | "limit" = "info"): void => {
  notice.textContent = text
  notice.className = `notice ${kind}`
  notice.hidden = false
}

client.onState((state, backend) => {
  const badge = byId<HTMLElement>("connection")
  badge.textContent = state === "open" ? `${STATE_TEXT[state]} · ${backend}` : STATE_TEXT[state]
  badge.dataset["state"] = state
})

// The session survives a reload of this tab: its id and last seq are kept in sessionStorage and it is resumed.
const SESSION_KEY = "sagews:session"
const remember = (s: ClientSession | undefined): void => {
  try {
    if (s === undefined) sessionStorage.removeItem(SESSION_KEY)
    else sessionStorage.setItem(SESSION_KEY, JSON.stringify({ id: s.id, kernel: s.kernel, lastSeq: s.lastSeq }))
  } catch {
    // storage disabled: a reload starts a new session
  }
}

const adopt = (opening: Promise<ClientSession>): Promise<ClientSession> => {
  session = opening
  opening.then(
    (s) => {
      document.body.dataset["session"] = s.id
      remember(s)
      let gone = false
      s.onOutput(() => remember(s))
      s.onGap = (missing) => showNotice(`${missing} output message(s) produced while you were away were no longer kept by the server; the rest is shown.`)
      s.onError((error) => (gone ||= error.code === "unknown_session"))
      s.onEnded((ended) => {
        if (session === opening) session = undefined
        remember(undefined)
        if (gone) return // a session from before a reload that no longer exists: the next run quietly opens a new one
        const what = ended.limit !== undefined ? `limit "${ended.limit}" reached` : ended.reason._tag
        showNotice(`Your ${s.kernel} session ended (${what}): ${ended.message} The next run starts a new session; variables are gone.`, ended.limit !== undefined ? "limit" : "info")
      })
    },
    () => {
      if (session === opening) session = undefined
    },
  )
  return opening
}

const currentSession = (): Promise<ClientSession> => {
  if (session !== undefined) return session
  const kernel: KernelKind = kernelSelect.value === "python" ? "python" : "sage"
  return adopt(client.open(kernel, settings.limits !== undefined ? { limits: settings.limits } : {}))
}

const resumeSaved = (): void => {
  try {
    const saved: unknown = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null")
    if (typeof saved !== "object" || saved === null) return
    const { id, kernel, lastSeq } = saved as { id?: unknown; kernel?: unknown; lastSeq?: unknown }
    if (typeof id !== "string" || (kernel !== "sage" && kernel !== "python") || typeof lastSeq !== "number") return
    kernelSelect.value = kernel
    // Output produced before the reload has no cell to go to any more: resume after it.
    void adopt(Promise.resolve(client.attach(id, kernel, lastSeq + 1)))
  } catch {
    // nothing usable saved
  }
}
resumeSaved()

const runner: CellRunner = {
  run: async (code, onMessage) => {
    let s: ClientSession
    try {
      s = await currentSession()
    } catch (error) {
      const reply = (error as { reply?: { code?: string; limit?: string } }).reply
      const message = error instanceof Error ? error.message : String(error)
      if (reply?.code === "limit") showNotice(message, "limit")
      return { status: "refused", note: message }
    }
    const result = await s.execute(code, onMessage)
    if (result.status === "ended") return { status: "ended", note: result.ended?.message ?? "the session ended" }
    const refused = result.outputs.find((m): m is Extract<OutputMsg, { kind: "error" }> => m.kind === "error" && m.ename === "limit")
    if (refused !== undefined) showNotice(refused.evalue, "limit")
    return { status: result.status }
  },
}

const onInteract = (interact: string, control: string, value: string | number | boolean): void => {
  const area = cells.map((c) => c.output.interactArea(interact)).find((a) => a !== undefined)
  void currentSession().then((s) => {
    let first = true
    void s.interact(interact, control, value, (msg) => {
      if (first) area?.clear()
      first = false
      area?.append(msg)
    })
  })
}

const addCell = (code = "", after?: Cell): Cell => {
  const cell = new Cell({
    code,
    runner,
    onInteract,
    onChange: () => save(),
    onRemove: (current) => {
      if (cells.length === 1) return current.editor.dispatch({ changes: { from: 0, to: current.code.length, insert: "" } })
      cells.splice(cells.indexOf(current), 1)
      current.root.remove()
      save()
    },
    onShiftEnter: (current) => {
      const next = cells[cells.indexOf(current) + 1]
      if (next !== undefined) next.focus()
      else addCell("", current).focus()
    },
  })
  const index = after !== undefined ? cells.indexOf(after) + 1 : cells.length
  cells.splice(index, 0, cell)
  const list = byId<HTMLElement>("cells")
  const before = list.children[index]
  if (before !== undefined) list.insertBefore(cell.root, before)
  else list.append(cell.root)
  save()
  return cell
}

byId<HTMLButtonElement>("add-cell").addEventListener("click", () => addCell("", cells.at(-1)).focus())
kernelSelect.addEventListener("change", () => {
  const old = session
  session = undefined
  void old?.then((s) => s.close())
  showNotice(`New cells run in a fresh ${kernelSelect.value} session.`)
})
let terminal: TerminalPanel | undefined
const terminalButton = byId<HTMLButtonElement>("toggle-terminal")
terminalButton.addEventListener("click", async () => {
  // xterm.js is a third of the bundle: it loads when the terminal is first opened
  const { TerminalPanel: Panel } = await import("./terminal.ts")
  terminal ??= new Panel(client, byId("terminal-panel"), (text) => showNotice(text, "limit"))
  const visible = terminalButton.getAttribute("aria-pressed") !== "true"
  terminalButton.setAttribute("aria-pressed", String(visible))
  byId("terminal-panel").hidden = !visible
  terminal.show(visible)
})
notice.addEventListener("click", () => (notice.hidden = true))

// The cells' code survives a reload (this browser only): nothing typed is lost to a closed tab.
const STORAGE_KEY = "sagews:cells"
let saveTimer: ReturnType<typeof setTimeout> | undefined
const save = (): void => {
  clearTimeout(saveTimer)
  saveTimer = setTimeout(() => {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(cells.map((c) => c.code)))
    } catch {
      // storage full or disabled: the page still works
    }
  }, 300)
}
const restore = (): Array<string> => {
  try {
    const saved: unknown = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null")
    return Array.isArray(saved) && saved.length > 0 && saved.every((c) => typeof c === "string") ? saved : [FIRST_CELL]
  } catch {
    return [FIRST_CELL]
  }
}
const fromUrl = new URLSearchParams(location.search).get("code")
for (const code of fromUrl !== null ? [fromUrl] : restore()) addCell(code)
cells[0]?.focus()
Object.assign(window, { sagews: { client, cells, addCell, settings, SagewsClient } })
