// One browser-protocol connection through the front door that reconnects by itself as docs/PROTOCOL.md's
// client outline says: backoff, `hello` with the kept token, then the lane resumes its sessions. Over the raw
// WebSocket (/sockjs/websocket) or the real sockjs-client (websocket or xhr-streaming transport; run.ts says why
// the lanes leave xhr-streaming out).
import SockJS from "sockjs-client"
import { ServerMessage, type ClientRequest } from "../protocol/browser.ts"

export type Transport = "raw" | "sockjs-websocket" | "sockjs-xhr"

/** What a lane reads: server messages, and the link going down and coming back up (after its `hello`). */
export type LinkEvent =
  | { readonly kind: "msg"; readonly msg: ServerMessage }
  | { readonly kind: "down"; readonly why: string }
  | { readonly kind: "up"; readonly backend: string }
  | { readonly kind: "invalid"; readonly text: string }

const BACKOFF_FIRST_MS = 250
const BACKOFF_CAP_MS = 4_000
/** A connection whose welcome and identity do not come within this is dropped and tried again. */
const HANDSHAKE_MS = 10_000

interface Socket {
  send(text: string): void
  close(): void
}

const openSocket = (base: string, transport: Transport, on: { open: () => void; message: (text: string) => void; close: (why: string) => void }): Socket => {
  if (transport === "raw") {
    const ws = new WebSocket(`${base.replace(/^http/, "ws")}/sockjs/websocket`)
    let closed = false
    const close = (why: string) => {
      if (closed) return
      closed = true
      on.close(why)
    }
    ws.onopen = () => on.open()
    ws.onmessage = (e: MessageEvent) => on.message(typeof e.data === "string" ? e.data : String(e.data))
    ws.onclose = (e: CloseEvent) => close(`websocket closed (${e.code}${e.reason ? ` ${e.reason}` : ""})`)
    ws.onerror = () => close("websocket error")
    return { send: (t) => ws.send(t), close: () => ws.close() }
  }
  const sock = new SockJS(`${base}/sockjs`, undefined, { transports: [transport === "sockjs-xhr" ? "xhr-streaming" : "websocket"] })
  sock.onopen = () => on.open()
  sock.onmessage = (e: { data: string }) => on.message(e.data)
  sock.onclose = (e: { code: number; reason: string }) => on.close(`sockjs closed (${e.code} ${e.reason})`)
  return { send: (t) => sock.send(t), close: () => sock.close() }
}

export class Link {
  private socket: Socket | undefined
  private token: string | undefined
  private up = false
  private closed = false
  private attempt = 0
  private handshake: ReturnType<typeof setTimeout> | undefined
  private readonly base: string
  private readonly transport: Transport
  private readonly emit: (event: LinkEvent) => void
  /** times the connection was lost after it had been up */
  disconnects = 0
  /** times the transport stayed up but the server side started over (a second welcome) */
  silentReconnects = 0

  private readonly observe: (what: string) => void

  constructor(base: string, transport: Transport, emit: (event: LinkEvent) => void, observe: (what: string) => void = () => undefined) {
    this.observe = observe
    this.base = base
    this.transport = transport
    this.emit = emit
    this.connect()
  }

  get isUp(): boolean {
    return this.up
  }

  /** Sends when up; false when down (the lane holds it back until `up`). */
  send(msg: ClientRequest): boolean {
    if (!this.up || this.socket === undefined) return false
    try {
      this.socket.send(JSON.stringify(msg))
      return true
    } catch {
      return false
    }
  }

  close(): void {
    this.closed = true
    clearTimeout(this.handshake)
    this.socket?.close()
  }

  private connect(): void {
    if (this.closed) return
    let current: Socket | undefined = undefined
    let welcomed = ""
    const helloId = `hello-${this.attempt}`
    this.handshake = setTimeout(() => current?.close(), HANDSHAKE_MS)
    current = openSocket(this.base, this.transport, {
      open: () => undefined,
      message: (text) => {
        let parsed: ReturnType<typeof ServerMessage.safeParse>
        try {
          parsed = ServerMessage.safeParse(JSON.parse(text))
        } catch {
          return this.emit({ kind: "invalid", text })
        }
        if (!parsed.success) return this.emit({ kind: "invalid", text })
        const msg = parsed.data
        if (this.up && msg.type === "welcome") {
          // a welcome comes first on every connection: the server side is a new one (SockJS reopened a session
          // on another backend under the same transport), so this is a reconnect: hello again, then resume
          this.up = false
          this.silentReconnects++
          this.observe(`${this.transport}: a second welcome on a transport that stayed open (the server side started over)`)
          this.emit({ kind: "down", why: `a second welcome (from ${msg.backend}) on the same transport` })
        }
        if (!this.up) {
          if (msg.type === "welcome") {
            welcomed = msg.backend
            current?.send(JSON.stringify(this.token !== undefined ? { type: "hello", id: helloId, token: this.token } : { type: "hello", id: helloId }))
            return
          }
          if (msg.type === "error" && msg.id === helloId && msg.code === "identity") {
            this.token = undefined
            current?.send(JSON.stringify({ type: "hello", id: helloId }))
            return
          }
          if (msg.type === "identity" && msg.id === helloId) {
            this.token = msg.token
            clearTimeout(this.handshake)
            this.up = true
            this.attempt = 0
            this.emit({ kind: "up", backend: welcomed })
            return
          }
        }
        this.emit({ kind: "msg", msg })
      },
      close: (why) => {
        clearTimeout(this.handshake)
        if (this.socket !== current) return
        this.socket = undefined
        if (this.up) {
          this.up = false
          this.disconnects++
          this.observe(`${this.transport}: connection lost and reconnected`)
          this.emit({ kind: "down", why })
        }
        if (this.closed) return
        const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5)
        setTimeout(() => this.connect(), delay)
      },
    })
    this.socket = current
  }
}

/** A lane's inbox: the link's events in order, read one at a time with a deadline. */
export class Inbox {
  private readonly queue: LinkEvent[] = []
  private waiter: ((e: LinkEvent | undefined) => void) | undefined

  readonly push = (event: LinkEvent): void => {
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w(event)
    } else this.queue.push(event)
  }

  /** The next event, or undefined at `untilMs` (Date.now() time). */
  next(untilMs: number): Promise<LinkEvent | undefined> {
    const e = this.queue.shift()
    if (e !== undefined) return Promise.resolve(e)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        resolve(undefined)
      }, Math.max(0, untilMs - Date.now()))
      this.waiter = (ev) => {
        clearTimeout(timer)
        resolve(ev)
      }
    })
  }
}
