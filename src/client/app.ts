// The sagews page: cells on one session (opened on the first run, reopened after it ends), the connection state,
// a kernel choice, a terminal panel, and a notice that names the limit when one ends a session. Signed in, the cells
// are a worksheet of the account (src/client/worksheets/); signed out, or with no worksheet open, they are the
// scratch page, kept in this browser only. A permalink (/?z=, /?q=) opens its code in the scratch page's first
// cell; a share link (/?s=) shows a worksheet read-only (worksheets/shared.ts). Signed in, sessions start with the
// account's files and offer what a run wrote to save back; the Files panel lists them (src/client/files/).
import "./jitless.ts"
import "./cell.css"
import { AccountArea } from "./account.ts"
import { Api, type Account } from "./api.ts"
import type { Assistant } from "./assist.ts"
import type { CellRunner } from "./cell.ts"
import { SagewsClient } from "./connection.ts"
import { button, byId } from "./dom.ts"
import { drawer } from "./drawer.ts"
import { FileOffers } from "./files/offers.ts"
import { openKernel } from "./files/open.ts"
import { FilesPanel } from "./files/panel.ts"
import { selfNaming } from "./language.ts"
import { codeOfLink } from "./link-code.ts"
import { readPageLink } from "./permalink.ts"
import { PermalinkDialog } from "./permalink-dialog.ts"
import { ScratchStore } from "./scratch.ts"
import type { ClientSession } from "./session.ts"
import { CellList } from "./sheet.ts"
import type { TerminalPanel } from "./terminal.ts"
import type { KernelKind, Limits, OutputMsg } from "./types.ts"
import { listActions } from "./worksheets/actions.ts"
import { WorksheetEditor, type Notify } from "./worksheets/editor.ts"
import { WorksheetList } from "./worksheets/list.ts"
import { SharedView } from "./worksheets/shared.ts"

const STATE_TEXT = { connecting: "connecting…", open: "connected", reconnecting: "reconnecting…", closed: "closed" } as const

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

const api = new Api()
// who is signed in decides what the connection's hello carries, so it is asked first
const me = await api.me()
let account: Account | undefined = me?.account
const token = storedIdentity()
const client = new SagewsClient(`${location.origin}/sockjs`, {
  ...(token !== undefined ? { token } : {}),
  ...(me?.socket !== undefined ? { account: me.socket } : {}),
  onIdentity: keepIdentity,
  renewAccount: async () => (await api.me())?.socket,
})
const notice = byId<HTMLElement>("notice")
const kernelSelect = byId<HTMLSelectElement>("kernel")
let session: Promise<ClientSession> | undefined
/** sessions the page closed itself: their end is not news */
const letGo = new WeakSet<ClientSession>()
/** limits asked for when the page opens its next session (tests and power users set them from the console) */
const settings: { limits?: Limits } = {}

const showNotice: Notify = (text, kind = "info", action) => {
  notice.replaceChildren(text)
  if (action !== undefined) {
    notice.append(" ", button(action.label, () => {
      notice.hidden = true
      action.run()
    }))
  }
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
    else sessionStorage.setItem(SESSION_KEY, JSON.stringify({ id: s.id, kernel: s.kernel, lastSeq: s.lastSeq, workspace: s.workspace }))
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
      s.onError((error) => (gone ||= error.code === "unknown_session" || error.code === "session_ended"))
      s.onDetached(() => {
        if (session === opening) session = undefined
        remember(undefined)
        showNotice(`Your ${s.kernel} session was resumed by another tab or window, which gets its output now. The next run here starts a new session.`)
      })
      s.onEnded((ended) => {
        if (session === opening) session = undefined
        remember(undefined)
        if (gone) return // a session from before a reload that no longer exists: the next run quietly opens a new one
        if (s.detached !== undefined) return // another tab has it: the page said so when it went
        if (letGo.has(s)) return // the page let it go (another worksheet, another kernel, sign-out)
        const what = ended.limit !== undefined ? `limit "${ended.limit}" reached` : ended.reason._tag
        showNotice(`Your ${s.kernel} session ended (${what}): ${ended.message}. The next run starts a new session; variables are gone.`, ended.limit !== undefined ? "limit" : "info")
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
  return adopt(openKernel(client, kernel, settings.limits !== undefined ? { limits: settings.limits } : {}, account !== undefined, showNotice))
}

/** Lets the session go: the next run opens a fresh one (another worksheet, kernel or account). */
const dropSession = (): void => {
  const old = session
  session = undefined
  remember(undefined)
  void old?.then((s) => {
    letGo.add(s)
    s.close()
  })
}

const resumeSaved = (): void => {
  try {
    const saved: unknown = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null")
    if (typeof saved !== "object" || saved === null) return
    const { id, kernel, lastSeq, workspace } = saved as { id?: unknown; kernel?: unknown; lastSeq?: unknown; workspace?: unknown }
    if (typeof id !== "string" || (kernel !== "sage" && kernel !== "python") || typeof lastSeq !== "number") return
    kernelSelect.value = kernel
    // Output produced before the reload has no cell to go to any more: resume after it.
    const resumed = client.attach(id, kernel, lastSeq + 1)
    resumed.workspace = workspace === true
    void adopt(Promise.resolve(resumed))
  } catch {
    // nothing usable saved
  }
}
resumeSaved()

/** The page's session, or why it could not be opened (the notice says so when a limit refused it). */
const sessionOrWhy = async (): Promise<ClientSession | { readonly refused: string }> => {
  try {
    return await currentSession()
  } catch (error) {
    const reply = (error as { reply?: { code?: string; limit?: string } }).reply
    const message = error instanceof Error ? error.message : String(error)
    if (reply?.code === "limit") showNotice(message, "limit")
    return { refused: message }
  }
}

const runner: CellRunner = {
  run: async (code, onMessage, _onRestart, language) => {
    const s = await sessionOrWhy()
    if ("refused" in s) return { status: "refused", note: s.refused }
    const result = await s.execute(code, onMessage, { language })
    if (result.status === "ended") return { status: "ended", note: result.ended?.message ?? "the session ended" }
    if (result.status === "detached") return { status: "detached", note: "the session was resumed by another tab or window; run the cell again to start a new session" }
    const refused = result.outputs.find((m): m is Extract<OutputMsg, { kind: "error" }> => m.kind === "error" && m.ename === "limit")
    if (refused !== undefined) showNotice(refused.evalue, "limit")
    return { status: result.status, ...(result.limit !== undefined ? { limit: result.limit } : {}) }
  },
}

// Tab and Shift-Tab in a cell ask the page's session (opening it, as a run does, when there is none yet)
const assistant: Assistant = {
  complete: async (code, cursor) => {
    const s = await sessionOrWhy()
    if ("refused" in s) return { error: s.refused }
    const reply = await s.complete(code, cursor)
    return reply.type === "error" ? { error: reply.message } : { matches: reply.matches, from: reply.cursorStart, to: reply.cursorEnd }
  },
  inspect: async (code, cursor, detail) => {
    const s = await sessionOrWhy()
    if ("refused" in s) return { error: s.refused }
    const reply = await s.inspect(code, cursor, detail)
    return reply.type === "error" ? { error: reply.message } : reply
  },
}

const pageKernel = (): KernelKind => (kernelSelect.value === "python" ? "python" : "sage")
// the scratch page keeps code only: a cell in another language is kept with the first line that names it
const scratch = new ScratchStore(() => cells.cells.map((c) => selfNaming(c.code, c.language, pageKernel())))
const permalinks = new PermalinkDialog()
const setPageKernel = (kernel: KernelKind): void => {
  if (kernelSelect.value !== kernel) dropSession()
  kernelSelect.value = kernel
  cells.kernelChanged()
}

const cells: CellList = new CellList({
  root: byId("cells"),
  runner,
  assistant,
  kernel: () => pageKernel(),
  onInteract: (interact, control, value) => {
    const target = cells.interactRerun(interact)
    void currentSession().then((s) => void s.interact(interact, control, value, target?.sink))
  },
  // a shared worksheet on show is nobody's to save, not even into the scratch page's storage
  onChange: () => (editor.openId !== undefined ? editor.changed() : shared.active ? undefined : scratch.save()),
  onRan: (cell) => {
    editor.ran()
    void session?.then((s) => offers.afterRun(s, cell), () => undefined)
  },
  onPermalink: (cell) => void permalinks.show(selfNaming(cell.code, cell.language, pageKernel()), pageKernel()),
})

/** the scratch page's note: what is kept where, and how to keep more */
const scratchBanner = (): void => {
  const banner = byId("banner")
  if (editor.openId !== undefined || shared.active) return
  banner.hidden = false
  banner.dataset["kind"] = "scratch"
  if (account === undefined) {
    banner.replaceChildren("Scratch page: these cells are kept in this browser only. ", button("Sign in", () => accountArea.openDialog(), { class: "link" }), " to save worksheets to your account.")
  } else {
    banner.replaceChildren("Scratch page: these cells are kept in this browser only. ", button("Save as a worksheet", () => void editor.create(editor.snapshot()), { class: "link", attrs: { id: "save-scratch" } }), " or open one of your worksheets.")
  }
}

let started = false
const editor: WorksheetEditor = new WorksheetEditor({
  api,
  cells,
  kernel: pageKernel,
  setKernel: setPageKernel,
  notify: showNotice,
  onScratch: () => {
    cells.replace(scratch.restore())
    scratchBanner()
  },
  onSwitched: () => {
    if (started) dropSession()
  },
  onListChanged: (id) => {
    list.setCurrent(id)
    if (account !== undefined) void Promise.all([list.refresh(), files.refresh()])
  },
})

const shared: SharedView = new SharedView({
  cells,
  setKernel: setPageKernel,
  notify: showNotice,
  signedIn: () => account !== undefined,
  signIn: () => accountArea.openDialog(),
  copy: (text) => editor.create(text),
})

const filesRoot = byId("files")
const files = new FilesPanel({
  root: filesRoot,
  api,
  sessionOpen: () => session !== undefined,
  restartSession: () => dropSession(),
})
const offers = new FileOffers(() => void files.refresh())

const listRoot = byId("worksheets")
const list: WorksheetList = new WorksheetList(listRoot, api, listActions(api, editor, showNotice, pageKernel, () => void list.refresh()))

const accountArea: AccountArea = new AccountArea({
  root: byId("account"),
  api,
  onSignedIn: (signedIn) => void signedInNow(signedIn),
  onSignOut: () => void signOut(),
})

const showAccount = (): void => {
  accountArea.render(account)
  document.body.dataset["signedIn"] = String(account !== undefined)
  listRoot.hidden = account === undefined
  byId("toggle-worksheets").hidden = account === undefined
  filesRoot.hidden = account === undefined
  byId("toggle-files").hidden = account === undefined
  scratchBanner()
}

const signedInNow = async (signedIn: Account): Promise<void> => {
  account = signedIn
  const now = await api.me()
  // the sessions opened from now on belong to the account
  client.setAccount(now?.socket)
  dropSession()
  showAccount()
  await Promise.all([list.refresh(), files.refresh()])
  await openFromUrl()
  showNotice(`Signed in as ${signedIn.email}.`)
}

const signOut = async (): Promise<void> => {
  await editor.flush()
  const r = await api.logout()
  if (!r.ok && r.problem.kind !== "signedOut") return showNotice(`Not signed out: ${r.problem.message}`, "warning")
  account = undefined
  dropSession()
  client.setAccount(undefined)
  files.clear()
  // a worksheet of the account goes; a shared one or a permalink's code stays, as anyone may see them
  if (editor.openId !== undefined) await editor.close()
  else await openFromUrl()
  showAccount()
  showNotice("Signed out. The scratch page still works; sign in again to see your worksheets.")
}

/** the address whose permalink code the scratch page has: opened again (a sign-in), its cells are left as they are */
let linkOpened: string | undefined

/**
 * What the URL names: a shared worksheet (?s=), a permalink's code (?q=, ?z=) as the scratch page's first cell (not
 * run), a worksheet (?w=, at version &v=), else the scratch page (with ?code= as its one cell).
 */
const openFromUrl = async (): Promise<void> => {
  const params = new URLSearchParams(location.search)
  const link = readPageLink(params)
  if (link?.type === "s") {
    if (editor.openId !== undefined) await editor.close(false)
    if (await shared.show(link.token)) return
  }
  shared.leave()
  const codeLink = link?.type === "s" ? undefined : link
  const id = link === undefined ? params.get("w") : null
  if (id !== null && account !== undefined) {
    const version = params.get("v")
    if (await editor.load(id, version !== null ? { version } : {}, false)) return
  }
  if (id !== null && account === undefined) showNotice("Sign in to open this worksheet.", "info", { label: "Sign in", run: () => accountArea.openDialog() })
  if (codeLink !== undefined && linkOpened === location.search && editor.openId === undefined) return scratchBanner()
  if (editor.openId !== undefined) {
    await editor.close(false)
    if (codeLink === undefined) return
  }
  const code = params.get("code")
  if (codeLink === undefined) cells.replace(code !== null ? [code] : scratch.restore())
  else {
    const opened = await codeOfLink(codeLink)
    if (opened.ok) {
      // the link's code first; what this browser kept follows it, so opening a link loses nothing
      setPageKernel(opened.kernel)
      cells.replace(scratch.restoreWith(opened.code))
      linkOpened = location.search
    } else {
      cells.replace(scratch.restore())
      showNotice(`This permalink could not be opened: ${opened.message}`, "warning")
    }
  }
  scratchBanner()
}

byId<HTMLButtonElement>("add-cell").addEventListener("click", () => cells.add({}, cells.cells.at(-1)).focus())
kernelSelect.addEventListener("change", () => {
  dropSession()
  cells.kernelChanged()
  editor.changed()
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
drawer(byId("toggle-worksheets"), listRoot)
drawer(byId("toggle-files"), filesRoot)
notice.addEventListener("click", (event) => {
  if (!(event.target instanceof HTMLButtonElement)) notice.hidden = true
})
window.addEventListener("popstate", () => void openFromUrl())

showAccount()
void api.providers().then((providers) => accountArea.showProviders(providers))
if (account !== undefined) void list.refresh()
Object.assign(window, { sagews: { client, cells: cells.cells, addCell: (code = "") => cells.add({ code }), settings, SagewsClient, editor, api } })
await openFromUrl()
started = true
cells.cells[0]?.focus()
