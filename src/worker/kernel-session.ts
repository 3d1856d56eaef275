// A Sage or Python session: a forked kernel (KernelConn) given its sandbox, fed executions one at a time,
// its messages validated (user code can write to its own socket) and turned into sequence-numbered output.
import { processGone } from "../../actors/procstat.ts"
import { z } from "zod"
import { OutputMessage, type EndReason } from "../protocol/worker.ts"
import type { ChildExit, KernelConn } from "./forkserver.ts"
import type { LineMessage } from "./lines.ts"
import { Session, type SessionInit } from "./session.ts"

/** ms a kernel may take to apply its sandbox and say ready */
const SETUP_TIMEOUT = 15_000
/**
 * ms to wait for the forkserver's exit status once the kernel's socket has closed. It normally comes within
 * milliseconds and names the reason (CpuLimit, Killed); on a saturated machine it took over 2 s, and the
 * session was then wrongly reported Crashed. A forkserver that dies ends its sessions by itself, so this
 * fallback only matters when the status is lost, and may be generous.
 */
const EXIT_STATUS_WAIT = 10_000
/** ms after its socket closed that a kernel still running is taken for deaf */
const DEAF_AFTER = 200

const KernelOutput = z.object({ type: z.literal("output"), id: z.string().nullable().optional(), msg: OutputMessage })

export interface KernelSetup {
  readonly uid: number | undefined
  readonly env: Readonly<Record<string, string>>
  readonly nofile: number
  readonly nproc: number
  readonly fsize: number
  /** the kernel is a session container (root): it locks itself down (no_new_privs, seccomp) after its uid */
  readonly contained: boolean
  /** contained: MiB of its private home and of its /tmp (for the message when one is full) */
  readonly disk: { readonly home: number; readonly tmp: number } | undefined
}


export const reasonOfExit = (exit: ChildExit): EndReason => {
  if ("signal" in exit) return exit.signal === "SIGXCPU" ? { _tag: "CpuLimit" } : { _tag: "Killed", signal: exit.signal }
  if (exit.code === 0) return { _tag: "ClosedByUser" }
  return { _tag: "Crashed", detail: `the kernel exited with code ${exit.code}` }
}

type Work =
  | { readonly id: string; readonly code: string }
  | { readonly id: string; readonly change: { readonly interact: string; readonly control: string; readonly value: string | number | boolean } }

export class KernelSession extends Session {
  private queue: Array<Work> = []
  private current: string | undefined

  private readonly conn: KernelConn

  constructor(init: SessionInit, conn: KernelConn) {
    super(init)
    this.conn = conn
  }

  get pid(): number {
    return this.conn.pid
  }

  /** Sends the sandbox and waits for the kernel to be ready in it. */
  start(setup: KernelSetup): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the kernel did not apply its sandbox within ${SETUP_TIMEOUT} ms`)), SETUP_TIMEOUT)
      this.conn.handler = (message) => {
        if (message["type"] === "ready") {
          clearTimeout(timer)
          this.conn.handler = (m) => this.onMessage(m)
          resolve()
        } else if (message["type"] === "setupFailed") {
          clearTimeout(timer)
          reject(new Error(`the kernel could not apply its sandbox: ${String(message["message"])}`))
        }
      }
      this.conn.onClose = () => {
        clearTimeout(timer)
        reject(new Error("the kernel exited while applying its sandbox"))
        this.connClosed()
      }
      const gid = setup.uid
      this.conn.send({
        type: "setup",
        contained: setup.contained,
        uid: setup.uid ?? null,
        gid: gid ?? null,
        home: this.home,
        env: setup.env,
        limits: { memory: this.limits.memory, cpu: this.limits.cpu, nofile: setup.nofile, nproc: setup.nproc, fsize: setup.fsize, ...(setup.disk !== undefined ? { home: setup.disk.home, tmp: setup.disk.tmp } : {}) },
      })
    }).then(() => {
      this.conn.onClose = () => this.connClosed()
    })
  }

  private onMessage(message: LineMessage): void {
    const parsed = KernelOutput.safeParse(message)
    if (!parsed.success) return // user code writing junk to its own socket only hurts itself
    const { id, msg } = parsed.data
    if (!this.output(id ?? this.current, msg) && this.sink !== undefined) {
      // The backend reads slower than the kernel prints: stop reading the kernel (its writes then block).
      this.conn.socket.pause()
      void this.sink.drained().then(() => this.conn.socket.resume())
    }
    if (msg.kind === "done" && (id ?? undefined) === this.current) {
      this.current = undefined
      this.busySince = undefined
      this.next()
    }
  }

  execute(id: string, code: string): void {
    this.queue.push({ id, code })
    this.lastActivity = Date.now()
    this.next()
  }

  interactChange(interact: string, control: string, value: string | number | boolean): void {
    this.queue.push({ id: `interact:${interact}`, change: { interact, control, value } })
    this.next()
  }

  private next(): void {
    if (this.current !== undefined || this.endReason !== undefined) return
    const item = this.queue.shift()
    if (item === undefined) return
    this.current = item.id
    this.busySince = Date.now()
    this.conn.send("change" in item ? { type: "interact", ...item.change } : { type: "execute", id: item.id, code: item.code })
  }

  get idleAfterDone(): boolean {
    return this.current === undefined && this.queue.length === 0
  }

  interrupt(): void {
    this.queue = []
    if (this.current !== undefined) this.signalGroup("SIGINT")
  }

  protected askToExit(): void {
    this.conn.send({ type: "exit" })
  }

  /** The forkserver reaped our kernel. */
  onExit(exit: ChildExit): void {
    void this.processExited(reasonOfExit(exit))
  }

  private connClosed(): void {
    // A dying kernel closes its socket a moment before it is reaped; one still running after DEAF_AFTER is
    // alive but deaf (its socket closed, or the worker cut it for an oversized line) and cannot be used.
    setTimeout(() => {
      if (this.endReason !== undefined || processGone(this.pid)) return
      this.endReason = { _tag: "Crashed", detail: "the kernel's connection to the worker closed" }
      this.killAll()
    }, DEAF_AFTER).unref()
    // The exit status (from the forkserver) normally follows within milliseconds; it names the reason.
    setTimeout(() => void this.processExited({ _tag: "Crashed", detail: "the kernel closed its connection" }), EXIT_STATUS_WAIT).unref()
  }
}
