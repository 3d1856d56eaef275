// One browser's SockJS connection: every message validated; a bad one gets an `error` and the connection stays up.
// Dispatches hello / run / open / execute / resume / ... and owns the connection's single running stateless run.
// Admission counts the connection by a server-issued identity (a fresh one, or the one a hello's token proves) and
// by its source address; nothing the client writes names who it is.
import { randomUUID } from "node:crypto"
import { BROWSER_PROTOCOL_VERSION, ClientMessage, describeIssue, MAX_MESSAGE_BYTES, type ErrorMessage, type ServerMessage } from "../protocol/browser.ts"
import type { Refusal, Requester } from "./admission.ts"
import type { BackendContext } from "./context.ts"
import type { Identity } from "./identity.ts"
import { SessionRoute, type Attachment } from "./session.ts"
import { startRun, type RunHandle } from "./stateless.ts"

export interface Transport {
  readonly id: string
  /** the source address (src/backend/address.ts) */
  readonly address: string
  write(text: string): void
}

type Msg<T extends ClientMessage["type"]> = Extract<ClientMessage, { type: T }>

export class Connection implements Attachment {
  readonly id: string
  private identity: Identity
  private readonly address: string
  private readonly sessions = new Set<SessionRoute>()
  private run: { id: string; handle: RunHandle } | undefined
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
    this.send({ type: "welcome", backend: ctx.options.id, version: BROWSER_PROTOCOL_VERSION, kernels: ctx.pool.kernels() })
  }

  /** what admission counts this connection's requests by */
  private get who(): Requester {
    return { client: `id:${this.identity.client}`, address: this.address }
  }

  send(message: ServerMessage): void {
    if (!this.closed) this.transport.write(JSON.stringify(message))
  }

  private error(id: string | null, code: ErrorMessage["code"], message: string, extra: Partial<ErrorMessage> = {}): void {
    this.send({ type: "error", id, code, message, ...extra })
  }

  private refuse(id: string, refusal: Refusal, session?: string): void {
    this.error(id, "limit", refusal.message, { limit: refusal.limit, max: refusal.max, retryAfterMs: refusal.retryAfterMs, ...(session !== undefined ? { session } : {}) })
  }

  receive(text: string): void {
    if (text.length > MAX_MESSAGE_BYTES) return this.error(null, "invalid", `message of ${text.length} characters is larger than the limit of ${MAX_MESSAGE_BYTES}`)
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (e) {
      return this.error(null, "invalid", `message is not JSON: ${e instanceof Error ? e.message : String(e)}`)
    }
    const parsed = ClientMessage.safeParse(raw)
    if (!parsed.success) {
      const id = typeof raw === "object" && raw !== null && "id" in raw && typeof raw.id === "string" && raw.id.length <= 128 ? raw.id : null
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

  /** Without a token: the connection's identity. With one: the identity it proves, or an error saying what is wrong. */
  private hello(m: Msg<"hello">): void {
    if (m.token !== undefined) {
      const verified = this.ctx.identities.verify(m.token)
      if (!verified.ok) return this.error(m.id, "identity", verified.message)
      this.identity = verified.identity
    }
    const { client, token, issuedAt, expiresAt } = this.identity
    this.send({ type: "identity", id: m.id, client, token, issuedAt, expiresAt })
  }

  private startRun(m: Msg<"run">): void {
    if (this.run !== undefined) this.run.handle.cancel(`replaced by the newer run ${m.id} on this connection`)
    const handle = startRun(this.ctx, { kernel: m.kernel, code: m.code, cache: m.cache, limits: m.limits, who: this.who }, (seq, msg) =>
      this.send({ type: "runOutput", id: m.id, seq, msg }),
    )
    const current = { id: m.id, handle }
    this.run = current
    void handle.done.then((result) => {
      if (this.run === current) this.run = undefined
      if (result.refusal !== undefined) return this.refuse(m.id, result.refusal)
      if (result.noWorker === true) return this.error(m.id, "no_worker", result.message ?? "no worker", { retryAfterMs: 1_000 })
      const { outputs: _outputs, noWorker: _noWorker, refusal: _refusal, ...rest } = result
      this.send({ type: "runDone", id: m.id, ...rest })
    })
  }

  private open(m: Msg<"open">): void {
    const who = this.who
    const grant = this.ctx.admission.session(who)
    if (!grant.ok) return this.refuse(m.id, grant.refusal)
    const worker = this.ctx.pool.pick(m.kernel)
    if (worker === undefined) {
      grant.release()
      return this.error(m.id, "no_worker", `no worker with the ${m.kernel} kernel is connected; try again in a few seconds`)
    }
    const id = randomUUID()
    const route = new SessionRoute(this.ctx, { id, workerId: worker.worker, kernel: m.kernel, client: who.client, release: grant.release })
    route.opening = {
      opened: () => {
        void this.ctx.registry.opened({ id, workerId: worker.worker, kernel: m.kernel })
        this.send({ type: "opened", id: m.id, session: id, kernel: m.kernel })
      },
      refused: (message) => this.error(m.id, "failed", `the worker could not open a ${m.kernel} session: ${message}`),
    }
    this.track(route)
    this.ctx.router.set(id, route)
    route.attach(this)
    worker.send({ type: "open", session: id, kernel: m.kernel, user: who.client, ...(m.limits ? { limits: m.limits } : {}), ...(m.cols ? { cols: m.cols } : {}), ...(m.rows ? { rows: m.rows } : {}) })
  }

  private track(route: SessionRoute): void {
    this.sessions.add(route)
    route.onDrop = (r) => this.sessions.delete(r)
  }

  private async resume(m: Msg<"resume">): Promise<void> {
    const known = this.ctx.router.get(m.session)
    let route: SessionRoute
    if (known instanceof SessionRoute) route = known
    else {
      const record = await this.ctx.registry.find(m.session)
      if (record === undefined) return this.error(m.id, "unknown_session", `no session ${m.session} is known; open a new one`, { session: m.session })
      if (this.ctx.pool.client(record.workerId) === undefined) {
        return this.error(m.id, "no_worker", `the worker holding session ${m.session} (${record.workerId}) is not connected to this server; try again in a few seconds`, { session: m.session, retryAfterMs: 1_000 })
      }
      const who = this.who
      const grant = this.ctx.admission.session(who)
      route = new SessionRoute(this.ctx, { id: m.session, workerId: record.workerId, kernel: record.kernel, client: who.client, release: grant.ok ? grant.release : undefined })
      this.ctx.router.set(m.session, route)
    }
    this.track(route)
    if (!route.resume(this, m.id, m.fromSeq)) this.error(m.id, "no_worker", `the worker holding session ${m.session} is not connected; try again in a few seconds`, { session: m.session, retryAfterMs: 1_000 })
  }

  private onSession(m: Msg<"execute" | "interrupt" | "close" | "interact" | "terminalInput" | "terminalResize">): void {
    const route = this.ctx.router.get(m.session)
    if (!(route instanceof SessionRoute) || route.ended) {
      return this.error(m.id, "unknown_session", `session ${m.session} is not attached on this connection; resume it first`, { session: m.session })
    }
    const worker = this.ctx.pool.client(route.workerId)
    if (worker === undefined) return this.error(m.id, "no_worker", `the worker of session ${m.session} is not connected right now; try again in a few seconds`, { session: m.session, retryAfterMs: 1_000 })
    if (route.attached !== this) {
      this.track(route)
      route.attach(this)
    }
    switch (m.type) {
      case "execute": {
        const grant = this.ctx.admission.execution(this.who)
        if (!grant.ok) return this.refuse(m.id, grant.refusal, m.session)
        route.addExec(m.id, grant.release)
        worker.send({ type: "execute", session: m.session, id: m.id, code: m.code })
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
    }
    this.send({ type: "ack", id: m.id })
  }

  /** The browser went away: its stateless run is killed; its sessions keep running, detached, resumable. */
  close(): void {
    this.closed = true
    this.run?.handle.cancel("the connection closed")
    for (const route of this.sessions) route.detach(this)
    this.sessions.clear()
  }
}
