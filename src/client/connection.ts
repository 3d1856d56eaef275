// The sagews client: one SockJS connection that holds messages until it is open, reconnects by itself with
// capped, jittered backoff, and on every (re)connect says hello (with the identity token the server issued it, so it
// stays the same client, and with the signed-in account's ticket, so its sessions are that account's) and resumes
// each live session from its last seq.
import SockJS from "sockjs-client"
import { ServerMessage, type ClientRequest, type KernelKind, type Language, type Limits, type SessionKind } from "../protocol/browser.ts"
import { ClientSession } from "./session.ts"
import type { IdentityReply, OutputMsg, RunReply, Reply } from "./types.ts"

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed"
export type Transport = "websocket" | "xhr-streaming" | "xhr-polling"

export interface ClientOptions {
  /** SockJS transports to allow, in order (default: all) */
  readonly transports?: ReadonlyArray<Transport>
  /** ms before the first reconnect; doubles up to `maxBackoff` */
  readonly backoff?: number
  readonly maxBackoff?: number
  /** an identity token issued earlier (`client.identity.token`) to be counted as that client; default: a new identity */
  readonly token?: string
  /** called with each identity token the server issues (to keep it across a reload of the page) */
  readonly onIdentity?: (token: string) => void
  /** a signed-in account's ticket (`socket` of GET /api/v1/me), sent in every hello: the sessions opened are the account's */
  readonly account?: string
  /** asked for a fresh ticket when a hello's ticket is refused (expired, a new key): GET /api/v1/me again; undefined = no account */
  readonly renewAccount?: () => Promise<string | undefined>
}

const DEFAULT_BACKOFF = 250
const DEFAULT_MAX_BACKOFF = 5_000
/** hellos one connection sends before it gives up on its token or ticket being taken (each refusal drops one) */
const MAX_HELLOS = 3

interface Pending {
  readonly message: ClientRequest
  readonly resolve: (reply: Reply) => void
  /** replayed after a reconnect (a stateless run is safe to send again; an open is not) */
  readonly resend: boolean
  onRunOutput?: (seq: number, msg: OutputMsg) => void
  onRunRestart?: () => void
  sent: boolean
}

const randomId = (): string => Math.random().toString(36).slice(2, 10) + Date.now().toString(36)

export class SagewsClient {
  state: ConnectionState = "connecting"
  /** the backend serving the current connection (from its welcome) */
  backend = ""
  readonly url: string
  private sock: WebSocket | undefined
  private readonly options: ClientOptions
  /** the identity the server issued (its reply to hello); its token is presented again after every reconnect */
  identity: Omit<IdentityReply, "type" | "id"> | undefined
  private token: string | undefined
  private helloId = ""
  private hellos = 0
  private account: string | undefined
  /** true from a connection's hello with a ticket until its answer: requests wait, so none is made as no one */
  private held = false
  private readonly pending = new Map<string, Pending>()
  private readonly queue: Array<string> = []
  readonly sessions = new Map<string, ClientSession>()
  private readonly stateListeners = new Set<(state: ConnectionState, backend: string) => void>()
  private attempt = 0
  private counter = 0
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(url: string, options: ClientOptions = {}) {
    this.url = url
    this.options = options
    this.token = options.token
    this.account = options.account
    this.connect()
  }

  onState(listener: (state: ConnectionState, backend: string) => void): () => void {
    this.stateListeners.add(listener)
    listener(this.state, this.backend)
    return () => this.stateListeners.delete(listener)
  }

  private setState(state: ConnectionState): void {
    this.state = state
    for (const listener of this.stateListeners) listener(state, this.backend)
  }

  nextId(prefix = "r"): string {
    return `${prefix}${++this.counter}-${randomId().slice(0, 4)}`
  }

  private connect(): void {
    const sock = new SockJS(this.url, undefined, this.options.transports ? { transports: [...this.options.transports] } : {}) as unknown as WebSocket
    this.sock = sock
    sock.onopen = () => {
      this.attempt = 0
      this.hellos = 0
      this.held = this.account !== undefined
      this.hello()
      if (!this.held) this.flush()
    }
    sock.onmessage = (event: MessageEvent) => this.receive(String(event.data))
    sock.onclose = () => {
      if (this.sock !== sock) return
      this.sock = undefined
      if (this.state === "closed") return
      for (const [id, pending] of this.pending) {
        if (pending.resend) pending.sent = false
        else if (pending.sent) {
          this.pending.delete(id)
          pending.resolve({ type: "error", id, code: "failed", message: "the connection was lost before the server answered; try again" })
        }
      }
      this.setState("reconnecting")
      const base = this.options.backoff ?? DEFAULT_BACKOFF
      const delay = Math.min(base * 2 ** this.attempt++, this.options.maxBackoff ?? DEFAULT_MAX_BACKOFF)
      this.timer = setTimeout(() => this.connect(), delay * (0.75 + Math.random() * 0.5))
    }
  }

  /** After the hello: resume the live sessions, send what waited for the connection. */
  private flush(): void {
    const sock = this.sock
    if (sock === undefined || sock.readyState !== 1) return
    for (const session of this.sessions.values()) session.resumeNow()
    for (const pending of this.pending.values()) {
      if (!pending.sent && pending.resend) {
        pending.sent = true
        this.write(pending.message)
      }
    }
    for (const text of this.queue.splice(0)) sock.send(text)
  }

  private hello(): void {
    this.helloId = this.nextId("h")
    this.hellos++
    // built apart from the call, so it type-checks whether or not the protocol's Hello has `account` yet
    const hello = { type: "hello" as const, id: this.helloId, ...(this.token !== undefined ? { token: this.token } : {}), ...(this.account !== undefined ? { account: this.account } : {}) }
    this.send(hello)
  }

  /** Sends now when open (ahead of anything held back), else drops it: every connection starts with its own hello. */
  private send(message: ClientRequest): void {
    if (this.sock !== undefined && this.sock.readyState === 1) this.sock.send(JSON.stringify(message))
  }

  /** The connection's hello was answered: what waited for it goes out. */
  private release(): void {
    if (!this.held) return
    this.held = false
    this.flush()
  }

  /** The hello was refused (code `identity`): drop the token, or renew the ticket, and say hello again. */
  private async helloRefused(message: string): Promise<void> {
    if (this.hellos >= MAX_HELLOS) {
      this.account = undefined
      return this.release()
    }
    if (this.account !== undefined && /account ticket/i.test(message)) this.account = await this.options.renewAccount?.().catch(() => undefined)
    else this.token = undefined // a token that no longer verifies (expired, a new key): a new identity
    this.hello()
    if (this.account === undefined) this.release()
  }

  /** Signs this connection in (a ticket) or out (undefined). Signing out starts a new connection: one cannot be un-signed. */
  setAccount(ticket: string | undefined): void {
    const signOut = ticket === undefined && this.account !== undefined
    this.account = ticket
    if (signOut) this.sock?.close() // its onclose reconnects, and the new hello has no ticket
    else if (this.sock !== undefined && this.sock.readyState === 1) {
      this.hellos = 0
      this.hello()
    }
  }

  private receive(text: string): void {
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch {
      return
    }
    const parsed = ServerMessage.safeParse(raw)
    if (!parsed.success) return
    const message = parsed.data
    switch (message.type) {
      case "welcome":
        this.backend = message.backend
        this.setState("open")
        return
      case "output":
      case "ended":
        this.sessions.get(message.session)?.deliver(message)
        return
      case "detached":
        this.sessions.get(message.session)?.detachedBy(message)
        return
      case "runOutput":
        this.pending.get(message.id)?.onRunOutput?.(message.seq, message.msg)
        return
      case "runRestarted":
        this.pending.get(message.id)?.onRunRestart?.()
        return
      case "identity": {
        const { type: _type, id: _id, ...identity } = message
        this.identity = identity
        this.token = identity.token
        this.options.onIdentity?.(identity.token)
        if (message.id === this.helloId) this.release()
        return
      }
      default: {
        if (message.id === null) return
        if (message.type === "error" && message.code === "identity" && message.id === this.helloId) return void this.helloRefused(message.message)
        if (message.type === "error" && message.id === this.helloId) {
          // refused for another reason (a server that knows no tickets says `invalid`): again without the ticket
          if (this.account === undefined || this.hellos >= MAX_HELLOS) return this.release()
          this.account = undefined
          this.hello()
          return this.release()
        }
        const pending = this.pending.get(message.id)
        if (pending === undefined) {
          if (message.type === "resumed" || message.type === "error") this.sessions.get(message.session ?? "")?.onReply(message)
          return
        }
        this.pending.delete(message.id)
        pending.resolve(message)
      }
    }
  }

  /** Sends now when open, else holds the message until the connection is. */
  write(message: ClientRequest): void {
    const text = JSON.stringify(message)
    if (this.sock !== undefined && this.sock.readyState === 1 && !this.held) this.sock.send(text)
    else this.queue.push(text)
  }

  /** Sends a request and resolves with the reply that carries its id. */
  request(message: ClientRequest, options: { resend?: boolean; onRunOutput?: (seq: number, msg: OutputMsg) => void; onRunRestart?: () => void } = {}): Promise<Reply> {
    return new Promise((resolve) => {
      const open = this.sock !== undefined && this.sock.readyState === 1 && !this.held
      const pending: Pending = { message, resolve, resend: options.resend ?? false, sent: open, ...(options.onRunOutput ? { onRunOutput: options.onRunOutput } : {}), ...(options.onRunRestart ? { onRunRestart: options.onRunRestart } : {}) }
      this.pending.set(message.id, pending)
      if (open || !pending.resend) this.write(message)
    })
  }

  ping(): Promise<Reply> {
    return this.request({ type: "ping", id: this.nextId("p") }, { resend: true })
  }

  /** Stateless: runs `code` in a fresh kernel (or answers from the cache); a newer run on this connection cancels it. */
  /** `onRestart`: the run starts over (its worker was lost after it printed): what `onOutput` was given so far is void */
  async run(code: string, options: { kernel?: KernelKind; language?: Language | undefined; cache?: boolean; limits?: Limits; onOutput?: (msg: OutputMsg) => void; onRestart?: () => void } = {}): Promise<RunReply> {
    let outputs: Array<OutputMsg> = []
    let seen = 0
    const id = this.nextId("run")
    const reply = await this.request(
      { type: "run", id, code, kernel: options.kernel ?? "sage", ...(options.language !== undefined ? { language: options.language } : {}), cache: options.cache ?? true, ...(options.limits ? { limits: options.limits } : {}) },
      {
        resend: true,
        onRunOutput: (seq, msg) => {
          if (seq <= seen) return // a resent run starts again from seq 1
          seen = seq
          outputs.push(msg)
          options.onOutput?.(msg)
        },
        onRunRestart: () => {
          outputs = []
          seen = 0
          options.onRestart?.()
        },
      },
    )
    return { reply, outputs }
  }

  /**
   * Opens a stateful session (a kernel or a terminal); `workspace`: a kernel whose home starts with the account's files
   * (refused with code `account` on a connection that is no account's, `file` when they do not fit).
   */
  async open(kernel: SessionKind = "sage", options: { limits?: Limits; cols?: number; rows?: number; workspace?: boolean } = {}): Promise<ClientSession> {
    const reply = await this.request({ type: "open", id: this.nextId("o"), kernel, ...options })
    if (reply.type !== "opened") throw Object.assign(new Error(reply.type === "error" ? reply.message : `unexpected reply ${reply.type}`), { reply })
    const session = new ClientSession(this, reply.session, reply.kernel)
    session.workspace = options.workspace === true
    this.sessions.set(reply.session, session)
    return session
  }

  /** Attaches to a session opened earlier (by this or another page), replaying its output from `fromSeq`. */
  attach(id: string, kernel: SessionKind, fromSeq = 1): ClientSession {
    const session = new ClientSession(this, id, kernel, fromSeq - 1)
    this.sessions.set(id, session)
    session.resumeNow()
    return session
  }

  close(): void {
    this.setState("closed")
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.sock?.close()
    this.sock = undefined
    for (const [id, pending] of this.pending) pending.resolve({ type: "error", id, code: "failed", message: "the client was closed" })
    this.pending.clear()
  }
}
