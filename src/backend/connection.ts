// One browser's SockJS connection: every message validated; a bad one gets an `error` and the connection stays up.
// Dispatches hello / run / open / execute / resume / ... and owns the connection's single running stateless run.
// A session message is served only for a session attached to this connection and of a kind that takes it; else the
// error says which of these it is not (unknown, ended, not attached, wrong kind).
// Admission counts the connection by a server-issued identity (a fresh one, or the one a hello's token proves), or
// by the account a hello's ticket proves, and by its source address; nothing the client writes names who it is.
// Sessions belong to whom they were opened for: a connection of anyone else is answered as for an unknown id.
// An account's connection may open a kernel with its workspace's files in the home, and save files from it.
import { randomUUID } from "node:crypto"
import {
  ACCEPTS,
  BROWSER_PROTOCOL_VERSION,
  ClientMessage,
  describeIssue,
  formatCount,
  MAX_ID_BYTES,
  MAX_OPEN_FILES,
  MAX_OPEN_FILES_BYTES,
  MAX_MESSAGE_BYTES,
  utf8Bytes,
  type ErrorMessage,
  type ServerMessage,
  type SessionKind,
  type SessionRequest,
} from "../protocol/browser.ts"
import { MAX_SESSION_FILE_BYTES } from "../protocol/worker.ts"
import { pathProblem } from "../workspace/validate.ts"
import { filePathProblem, type WorksheetsError } from "../worksheets/service.ts"
import type { Refusal, Requester } from "./admission.ts"
import type { BackendContext } from "./context.ts"
import type { Identity } from "./identity.ts"
import type { SessionRecord } from "./registry.ts"
import { endedError, SessionRoute, type Attachment } from "./session.ts"
import { startRun, type RunHandle } from "./stateless.ts"
import type { WorkerClient } from "../wire/client.ts"

export interface Transport {
  readonly id: string
  /** the source address (src/backend/address.ts) */
  readonly address: string
  write(text: string): void
}

type Msg<T extends ClientMessage["type"]> = Extract<ClientMessage, { type: T }>

/** what the registry says of an end this backend did not hear */
const recordedEnd = (record: SessionRecord): string =>
  record.endReason !== undefined ? `its end was recorded with the reason ${record.endReason}` : "its end was recorded, but not why"

const NEEDS_ACCOUNT = "sign in and send hello with the socket ticket of GET /api/v1/me, then open the session again"

/** what the worksheets service's failure means for a files request */
const storeProblem = (e: WorksheetsError, what: string): string =>
  e.reason === "NoDatabase"
    ? `${what}: this backend runs without PostgreSQL, so it keeps no workspaces`
    : e.reason === "Unavailable" ? `${what}: the workspace store cannot be reached for a moment; try again` : `${what}: ${e.message}`

/** what to do instead, for a `wrong_kind` error */
const INSTEAD: Record<SessionKind, string> = {
  sage: "open a terminal session for a terminal",
  python: "open a terminal session for a terminal",
  terminal: "open a sage or python session to run code",
}

export class Connection implements Attachment {
  readonly id: string
  private identity: Identity
  /** the account a hello's ticket proved: this connection's sessions belong to it */
  private account: string | undefined
  private readonly address: string
  private readonly sessions = new Set<SessionRoute>()
  /** sessions another connection resumed from this one (they were `detached` here) */
  private readonly taken = new Set<string>()
  private run: { id: string; code: string; kernel: string; language: string | undefined; handle: RunHandle } | undefined
  private closed = false
  /** messages are handled one after another: a resume (a registry look-up) completes before what follows it */
  private chain: Promise<void> = Promise.resolve()
  private readonly transport: Transport
  private readonly ctx: BackendContext

  constructor(ctx: BackendContext, transport: Transport) {
    this.ctx = ctx
    this.transport = transport
    this.id = transport.id
    this.address = transport.address
    this.identity = ctx.identities.issue()
    this.send({ type: "welcome", backend: ctx.options.id, version: BROWSER_PROTOCOL_VERSION, kernels: ctx.links.kernels() })
  }

  /** what admission counts this connection's requests by */
  private get who(): Requester {
    return { client: this.account !== undefined ? `acct:${this.account}` : `id:${this.identity.client}`, address: this.address }
  }

  send(message: ServerMessage): void {
    if (message.type === "detached") this.taken.add(message.session)
    if (!this.closed) this.transport.write(JSON.stringify(message))
  }

  private error(id: string | null, code: ErrorMessage["code"], message: string, extra: Partial<ErrorMessage> = {}): void {
    this.send({ type: "error", id, code, message, ...extra })
  }

  private refuse(id: string, refusal: Refusal, session?: string): void {
    this.error(id, "limit", refusal.message, { limit: refusal.limit, max: refusal.max, retryAfterMs: refusal.retryAfterMs, ...(session !== undefined ? { session } : {}) })
  }

  receive(text: string): void {
    const bytes = text.length > MAX_MESSAGE_BYTES / 3 ? Buffer.byteLength(text) : 0
    if (bytes > MAX_MESSAGE_BYTES) {
      return this.error(null, "invalid", `a message of ${formatCount(bytes)} bytes (UTF-8) is larger than the limit of ${formatCount(MAX_MESSAGE_BYTES)} bytes; it was dropped: send less in one message`)
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (e) {
      return this.error(null, "invalid", `message is not JSON: ${e instanceof Error ? e.message : String(e)}`)
    }
    const parsed = ClientMessage.safeParse(raw)
    if (!parsed.success) {
      const id = typeof raw === "object" && raw !== null && "id" in raw && typeof raw.id === "string" && raw.id !== "" && utf8Bytes(raw.id) <= MAX_ID_BYTES ? raw.id : null
      return this.error(id, "invalid", `invalid message: ${describeIssue(parsed.error)}`)
    }
    const message = parsed.data
    this.chain = this.chain.then(() => this.dispatch(message)).catch((e: unknown) => {
      this.ctx.log.error(`handling ${message.type} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
      this.error(message.id, "failed", `the backend failed to handle this ${message.type}`)
    })
  }

  private dispatch(m: ClientMessage): void | Promise<void> {
    switch (m.type) {
      case "hello":
        return this.hello(m)
      case "ping":
        return this.send({ type: "pong", id: m.id, backend: this.ctx.options.id })
      case "run":
        return this.startRun(m)
      case "open":
        return this.open(m)
      case "resume":
        return this.resume(m)
      default:
        return this.onSession(m)
    }
  }

  /**
   * Without a token: the connection's identity. With one: the identity it proves. With an account ticket: the account
   * it names, too. A token or ticket that does not hold gets an error saying what is wrong, and changes nothing.
   */
  private hello(m: Msg<"hello">): void {
    const verified = m.token !== undefined ? this.ctx.identities.verify(m.token) : undefined
    if (verified?.ok === false) return this.error(m.id, "identity", verified.message)
    const ticket = m.account !== undefined ? this.ctx.identities.verifyTicket(m.account) : undefined
    if (ticket?.ok === false) return this.error(m.id, "identity", ticket.message)
    if (verified !== undefined) this.identity = verified.identity
    if (ticket !== undefined) this.account = ticket.account
    const { client, token, issuedAt, expiresAt } = this.identity
    this.send({ type: "identity", id: m.id, client, token, issuedAt, expiresAt, ...(this.account !== undefined ? { account: this.account } : {}) })
  }

  private startRun(m: Msg<"run">): void {
    // the same run sent again on this connection (a client that thought its link was lost): its answer is coming
    if (this.run !== undefined && this.run.id === m.id && this.run.code === m.code && this.run.kernel === m.kernel && this.run.language === m.language) return
    if (this.run !== undefined) this.run.handle.cancel(`replaced by the newer run ${m.id} on this connection`)
    // keyed by the run's id: the client library sends an unanswered run again after a reconnect, through any backend,
    // and if its backend died the run is still on its worker, to be attached to rather than run twice
    const key = { scope: this.who.client, id: m.id }
    const handle = startRun(
      this.ctx,
      { kernel: m.kernel, code: m.code, language: m.language, cache: m.cache, limits: m.limits, who: this.who, key },
      (seq, msg) => this.send({ type: "runOutput", id: m.id, seq, msg }),
      (reason) => this.send({ type: "runRestarted", id: m.id, reason }),
    )
    const current = { id: m.id, code: m.code, kernel: m.kernel, language: m.language, handle }
    this.run = current
    void handle.done.then((result) => {
      if (this.run === current) this.run = undefined
      if (result.refusal !== undefined) return this.refuse(m.id, result.refusal)
      if (result.noWorker === true) return this.error(m.id, "no_worker", result.message ?? "no worker", { retryAfterMs: 1_000 })
      const { outputs: _outputs, noWorker: _noWorker, refusal: _refusal, ...rest } = result
      this.send({ type: "runDone", id: m.id, ...rest })
    })
  }

  /**
   * Admission, then the registry row, then the worker's open: the row exists before `opened` goes out, so a resume
   * through any backend finds the session as soon as the client can name it.
   */
  private async open(m: Msg<"open">): Promise<void> {
    const who = this.who
    let files: ReadonlyArray<{ readonly path: string; readonly content: Uint8Array }> = []
    if (m.workspace === true) {
      if (m.kernel === "terminal") return this.error(m.id, "invalid", "invalid message: workspace: a terminal session takes no workspace files; open a sage or python session with workspace: true")
      if (this.account === undefined) return this.error(m.id, "account", `a session with the workspace's files needs a signed-in account, and this connection's sessions are an anonymous identity's: ${NEEDS_ACCOUNT}`)
      const got = await this.ctx.worksheets.filesForSession(this.account)
      if (got._tag === "Failure") return this.error(m.id, "failed", storeProblem(got.failure, "the workspace's files could not be read"))
      const found = got.success
      if (found.type === "tooMany") {
        return this.error(m.id, "file", `your workspace has ${formatCount(found.count)} files of ${formatCount(found.bytes)} bytes; a session's home takes at most ${formatCount(MAX_OPEN_FILES)} files and ${formatCount(MAX_OPEN_FILES_BYTES)} bytes (64 MiB): remove files you do not need (DELETE /api/v1/files/{path}), or open without workspace`)
      }
      files = found.files
    }
    const worker = this.ctx.links.pick(m.kernel)
    if (worker === undefined) return this.error(m.id, "no_worker", `no worker with the ${m.kernel} kernel is connected; try again in a few seconds`)
    const id = randomUUID()
    const grant = await this.ctx.sessions.open(who, { id, workerId: worker.worker, kernel: m.kernel })
    if (!grant.ok) return this.refuse(m.id, grant.refusal)
    if (this.ctx.links.client(worker.worker) !== worker) {
      // the link went down while the registry was asked: nothing was opened
      grant.release()
      this.ctx.registry.ended(id, "OpenFailed")
      return this.error(m.id, "no_worker", `the ${worker.worker} worker was lost while the session was being opened; try again in a few seconds`)
    }
    const route = new SessionRoute(this.ctx, { id, workerId: worker.worker, kernel: m.kernel, client: who.client, release: grant.release })
    route.opening = {
      opened: () => this.send({ type: "opened", id: m.id, session: id, kernel: m.kernel }),
      refused: (message) => this.error(m.id, "failed", `the worker could not open a ${m.kernel} session: ${message}`),
    }
    this.track(route)
    this.ctx.router.set(id, route)
    route.attach(this)
    // the files go first, in frames of their own: the worker keeps them for the open that names how many
    worker.stageFiles(id, files)
    worker.send({ type: "open", session: id, kernel: m.kernel, user: who.client, ...(m.limits ? { limits: m.limits } : {}), ...(m.cols ? { cols: m.cols } : {}), ...(m.rows ? { rows: m.rows } : {}), ...(files.length > 0 ? { files: files.length } : {}) })
  }

  private track(route: SessionRoute): void {
    this.sessions.add(route)
    route.onDrop = (r) => this.sessions.delete(r)
  }

  private async resume(m: Msg<"resume">): Promise<void> {
    const known = this.ctx.router.get(m.session)
    let route: SessionRoute
    if (known instanceof SessionRoute) {
      if (known.client !== this.who.client) return this.unknown(m)
      route = known
    } else {
      const record = await this.ctx.registry.find(m.session)
      if (record === undefined || record.client !== this.who.client) return this.unknown(m)
      if (this.ctx.links.client(record.workerId) === undefined) {
        // an ended session's worker replays its end for a minute; with the worker away there is nothing to replay
        if (record.ended) return this.send(endedError(m.id, m.session, this.ctx.ends.get(m.session), { what: recordedEnd(record) }))
        return this.error(m.id, "no_worker", `the worker holding session ${m.session} (${record.workerId}) is not connected to this server; try again in a few seconds`, { session: m.session, retryAfterMs: 1_000 })
      }
      const who = this.who
      route = new SessionRoute(this.ctx, { id: m.session, workerId: record.workerId, kernel: record.kernel, client: who.client, release: this.ctx.sessions.route(who), endedBefore: record.ended })
      this.ctx.router.set(m.session, route)
    }
    this.track(route)
    this.taken.delete(m.session)
    if (!route.resume(this, m.id, m.fromSeq)) this.error(m.id, "no_worker", `the worker holding session ${m.session} is not connected; try again in a few seconds`, { session: m.session, retryAfterMs: 1_000 })
  }

  private unknown(m: Msg<"resume" | SessionRequest>): void {
    this.error(m.id, "unknown_session", `no session ${m.session} exists: the session registry has no record of that id; check it, or open a new session`, { session: m.session })
  }

  /** Why a session message is not served here: the session is unknown, ended, or live but attached elsewhere (or nowhere). */
  private async notAttached(m: Msg<SessionRequest>, route: SessionRoute | undefined): Promise<void> {
    if (route !== undefined && route.client !== this.who.client) return this.unknown(m)
    const record = route === undefined || route.ended ? await this.ctx.registry.find(m.session) : undefined
    if (route === undefined && record?.client !== this.who.client) return this.unknown(m)
    const heard = this.ctx.ends.get(m.session)
    if (heard !== undefined) return this.send(endedError(m.id, m.session, heard, { what: "" }))
    if (route === undefined || route.ended) {
      if (record === undefined) return this.unknown(m)
      if (record.ended) return this.send(endedError(m.id, m.session, this.ctx.ends.get(m.session), { what: recordedEnd(record) }))
    }
    const why = this.taken.has(m.session) ? "another connection resumed it from this one" : "this connection has not opened or resumed it"
    this.error(m.id, "not_attached", `session ${m.session} is live but not attached to this connection (${why}); send {"type":"resume","session":"${m.session}","fromSeq":<the highest seq you saw + 1>} first, then this ${m.type} again`, { session: m.session })
  }

  private async onSession(m: Msg<SessionRequest>): Promise<void> {
    const known = this.ctx.router.get(m.session)
    const route = known instanceof SessionRoute ? known : undefined
    if (route === undefined || route.ended || route.attached !== this) return this.notAttached(m, route)
    if (!ACCEPTS[route.kernel].includes(m.type)) {
      const takes = ACCEPTS[route.kernel].join(", ")
      return this.error(m.id, "wrong_kind", `session ${m.session} is a ${route.kernel} session: it takes ${takes} (and resume), not ${m.type}; ${INSTEAD[route.kernel]}`, { session: m.session, kernel: route.kernel })
    }
    const worker = this.ctx.links.client(route.workerId)
    if (worker === undefined) return this.error(m.id, "no_worker", `the worker of session ${m.session} is not connected right now; try again in a few seconds`, { session: m.session, retryAfterMs: 1_000 })
    switch (m.type) {
      case "execute": {
        const grant = this.ctx.admission.execution(this.who)
        if (!grant.ok) return this.refuse(m.id, grant.refusal, m.session)
        route.addExec(m.id, grant.release)
        worker.send({ type: "execute", session: m.session, id: m.id, code: m.code, ...(m.language !== undefined ? { language: m.language } : {}) })
        break
      }
      case "interrupt":
        worker.send({ type: "interrupt", session: m.session })
        break
      case "close":
        worker.send({ type: "close", session: m.session })
        break
      case "interact":
        worker.send({ type: "interactChange", session: m.session, interact: m.interact, control: m.control, value: m.value })
        break
      case "terminalInput":
        worker.send({ type: "terminalInput", session: m.session, data: m.data })
        break
      case "terminalResize":
        worker.send({ type: "terminalResize", session: m.session, cols: m.cols, rows: m.rows })
        break
      case "files":
        return this.listFiles(m, route, worker)
      case "saveFile":
        return this.saveFile(m, route, worker)
      // answered when the kernel answers, holding up nothing after them (an interrupt must not wait behind a Tab)
      case "complete":
        return void this.aside(m, this.complete(m, route, worker))
      case "inspect":
        return void this.aside(m, this.inspect(m, route, worker))
    }
    this.send({ type: "ack", id: m.id })
  }

  /** The home's regular files new or changed since the open (or all), as the session's kernel lists them. */
  private async listFiles(m: Msg<"files">, route: SessionRoute, worker: WorkerClient): Promise<void> {
    const listed = await route.ask(
      (id) => worker.send({ type: "listFiles", session: m.session, id, ...(m.all === true ? { all: true } : {}) }),
      (frame) => (frame.type === "fileList" ? frame : undefined),
    )
    if ("error" in listed) return this.error(m.id, listed.worker ? "file" : "failed", `the files of session ${m.session} could not be listed: ${listed.error}`, { session: m.session })
    this.send({ type: "fileList", id: m.id, session: m.session, files: listed.files, ...(listed.truncated === true ? { truncated: true } : {}) })
  }

  /** A request answered out of the connection's order: its failure is reported as the chain's are. */
  private aside(m: ClientMessage, answered: Promise<void>): void {
    answered.catch((e: unknown) => {
      this.ctx.log.error(`handling ${m.type} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
      this.error(m.id, "failed", `the backend failed to handle this ${m.type}`)
    })
  }

  /** The names that can stand at the cursor, as the session's kernel completes them (also while a cell runs). */
  private async complete(m: Msg<"complete">, route: SessionRoute, worker: WorkerClient): Promise<void> {
    const got = await route.ask(
      (id) => worker.send({ type: "complete", session: m.session, id, code: m.code, cursor: m.cursor }),
      (frame) => (frame.type === "completions" ? frame : undefined),
    )
    if ("error" in got) return this.error(m.id, "failed", `session ${m.session} could not complete the code: ${got.error}`, { session: m.session })
    this.send({ type: "completions", id: m.id, session: m.session, matches: got.matches, cursorStart: got.cursorStart, cursorEnd: got.cursorEnd })
  }

  /** The help or source of the object named at the cursor, as the session's kernel finds it (also while a cell runs). */
  private async inspect(m: Msg<"inspect">, route: SessionRoute, worker: WorkerClient): Promise<void> {
    const got = await route.ask(
      (id) => worker.send({ type: "inspect", session: m.session, id, code: m.code, cursor: m.cursor, detail: m.detail }),
      (frame) => (frame.type === "inspection" ? frame : undefined),
    )
    if ("error" in got) return this.error(m.id, "failed", `session ${m.session} could not inspect the code: ${got.error}`, { session: m.session })
    this.send({ type: "inspection", id: m.id, session: m.session, found: got.found, name: got.name, text: got.text })
  }

  /** Reads a file of the home through the session's kernel and commits it into the account's workspace. */
  private async saveFile(m: Msg<"saveFile">, route: SessionRoute, worker: WorkerClient): Promise<void> {
    const account = this.account
    if (account === undefined) return this.error(m.id, "account", `saving a file into a workspace needs a signed-in account, and this connection's sessions are an anonymous identity's: ${NEEDS_ACCOUNT}`, { session: m.session })
    const to = m.to ?? m.path
    const problem = pathProblem(m.path) !== undefined ? `the path ${JSON.stringify(m.path)}: ${pathProblem(m.path)}` : filePathProblem(to) !== undefined ? `the workspace path ${JSON.stringify(to)}: ${filePathProblem(to)}` : undefined
    if (problem !== undefined) return this.error(m.id, "invalid", `invalid message: refused ${problem}; name a file relative to the home, such as results/out.csv`, { session: m.session })
    const chunks: Array<Buffer> = []
    let size = 0
    const read = await route.ask(
      (id) => worker.send({ type: "readFile", session: m.session, id, path: m.path }),
      (frame) => {
        if (frame.type !== "fileData") return undefined
        const chunk = Buffer.from(frame.data, "base64")
        size += chunk.length
        chunks.push(chunk)
        if (size > MAX_SESSION_FILE_BYTES) return { tooLarge: true }
        return frame.more === true ? undefined : { tooLarge: false }
      },
    )
    if ("error" in read) return this.error(m.id, read.worker ? "file" : "failed", `${m.path} could not be read from session ${m.session}: ${read.error}`, { session: m.session })
    if (read.tooLarge) return this.error(m.id, "file", `${m.path} is larger than ${formatCount(MAX_SESSION_FILE_BYTES)} bytes (10 MiB), the most a file saved from a session may have`, { session: m.session })
    const saved = await this.ctx.worksheets.saveSessionFile(account, to, Buffer.concat(chunks))
    if (saved._tag === "Failure") return this.error(m.id, "failed", storeProblem(saved.failure, `${to} could not be saved`), { session: m.session })
    this.send({ type: "saved", id: m.id, session: m.session, path: to, version: saved.success })
  }

  /** The browser went away: its stateless run is killed; its sessions keep running, detached, resumable. */
  close(): void {
    this.closed = true
    this.run?.handle.cancel("the connection closed")
    for (const route of this.sessions) route.detach(this)
    this.sessions.clear()
  }
}
