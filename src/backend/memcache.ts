// A small memcached text-protocol client (get/set) for the result cache: one pipelined connection, reconnected
// on demand. Every failure (down, slow, garbled) is a miss or a dropped write, never an error to the caller.
import { connect, type Socket } from "node:net"

interface Pending {
  readonly kind: "get" | "set"
  readonly resolve: (value: Buffer | undefined) => void
  readonly timer: NodeJS.Timeout
}

/** ms after a failed connect or a timeout during which calls are misses at once (a dead memcached costs nothing per request) */
const DOWN_BACKOFF = 1_000

export class Memcache {
  private socket: Socket | undefined
  private buffer: Buffer = Buffer.alloc(0)
  private readonly queue: Array<Pending> = []
  private downUntil = 0
  private closed = false
  private readonly target: { readonly path: string } | { readonly host: string; readonly port: number }
  private readonly timeout: number
  hits = 0
  misses = 0

  /** `address`: an absolute unix socket path (what the tree gives, see actors/memcached.ts) or "host:port" */
  constructor(address: string, timeout: number) {
    const colon = address.lastIndexOf(":")
    this.target = address.startsWith("/")
      ? { path: address }
      : { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) }
    this.timeout = timeout
  }

  get(key: string): Promise<Buffer | undefined> {
    return this.command("get", `get ${key}\r\n`).then((value) => {
      if (value === undefined) this.misses++
      else this.hits++
      return value
    })
  }

  /** Stores `value` for `ttl` seconds; resolves when memcached said STORED (or it gave up). */
  set(key: string, value: Buffer, ttl: number): Promise<void> {
    const head = Buffer.from(`set ${key} 0 ${ttl} ${value.length}\r\n`)
    return this.command("set", Buffer.concat([head, value, Buffer.from("\r\n")])).then(() => undefined)
  }

  close(): void {
    this.closed = true
    this.reset()
  }

  private command(kind: "get" | "set", payload: string | Buffer): Promise<Buffer | undefined> {
    if (this.closed || Date.now() < this.downUntil) return Promise.resolve(undefined)
    const socket = this.ensure()
    return new Promise((resolve) => {
      // A hung memcached (SIGSTOP, overload) must not add its timeout to every request: back off like a dead one.
      const timer = setTimeout(() => {
        this.downUntil = Date.now() + DOWN_BACKOFF
        this.reset()
      }, this.timeout)
      this.queue.push({ kind, resolve, timer })
      socket.write(payload)
    })
  }

  private ensure(): Socket {
    if (this.socket !== undefined) return this.socket
    const socket = connect(this.target)
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    socket.on("error", () => {
      this.downUntil = Date.now() + DOWN_BACKOFF
      this.reset()
    })
    socket.on("close", () => {
      if (this.socket === socket) this.reset()
    })
    this.socket = socket
    return socket
  }

  /** Drops the connection: everything pending is a miss; the next call reconnects. */
  private reset(): void {
    const socket = this.socket
    this.socket = undefined
    this.buffer = Buffer.alloc(0)
    socket?.destroy()
    for (const pending of this.queue.splice(0)) {
      clearTimeout(pending.timer)
      pending.resolve(undefined)
    }
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    for (;;) {
      const head = this.queue[0]
      if (head === undefined) {
        this.buffer = Buffer.alloc(0)
        return
      }
      const consumed = head.kind === "get" ? this.parseGet(head) : this.parseLine(head)
      if (!consumed) return
    }
  }

  private finish(pending: Pending, value: Buffer | undefined, bytes: number): boolean {
    this.queue.shift()
    clearTimeout(pending.timer)
    this.buffer = this.buffer.subarray(bytes)
    pending.resolve(value)
    return true
  }

  private parseLine(pending: Pending): boolean {
    const end = this.buffer.indexOf("\r\n")
    if (end < 0) return false
    return this.finish(pending, undefined, end + 2)
  }

  private parseGet(pending: Pending): boolean {
    const end = this.buffer.indexOf("\r\n")
    if (end < 0) return false
    const line = this.buffer.subarray(0, end).toString("latin1")
    if (line === "END") return this.finish(pending, undefined, end + 2)
    const match = /^VALUE \S+ \d+ (\d+)/.exec(line)
    if (match === null) {
      // Garbled or an error line: resynchronising is not worth it; start over.
      this.reset()
      return false
    }
    const bytes = Number(match[1])
    const total = end + 2 + bytes + 2 + "END\r\n".length
    if (this.buffer.length < total) return false
    const value = Buffer.from(this.buffer.subarray(end + 2, end + 2 + bytes))
    return this.finish(pending, value, total)
  }
}
