// A terminal session: bash under node-pty with the session's uid, home, rlimits, and its own pid and network
// namespaces (`setpriv --pdeathsig` -> `unshare` -> `setpriv` (uid) -> `prlimit` -> bash, each exec'ing the next).
import { createRequire } from "node:module"
import { constants } from "node:os"
import type { IPty } from "node-pty"
import { Session, type SessionInit } from "./session.ts"

const require = createRequire(import.meta.url)
const pty: typeof import("node-pty") = require("node-pty")

const signalName = (n: number): string => Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`

export interface TerminalSetup {
  readonly env: Readonly<Record<string, string>>
  readonly nofile: number
  readonly nproc: number
  readonly fsize: number
  readonly isolated: boolean
  readonly cols: number
  readonly rows: number
}

export class TerminalSession extends Session {
  private term: IPty | undefined

  private readonly setup: TerminalSetup

  constructor(init: SessionInit, setup: TerminalSetup) {
    super(init)
    this.setup = setup
  }

  get pid(): number | undefined {
    return this.term?.pid
  }

  async start(): Promise<void> {
    const limits = [
      `--as=${this.limits.memory * 1024 * 1024 + 512 * 1024 * 1024}`,
      `--cpu=${this.limits.cpu}`,
      `--nofile=${this.setup.nofile}`,
      `--fsize=${this.setup.fsize}`,
      "--core=0",
    ]
    const uid = this.uid
    const command: Array<string> = []
    if (uid !== undefined) {
      // Same namespaces as a kernel: bash is init of its own pid namespace, which dies with the worker.
      command.push("setpriv", "--pdeathsig", "SIGKILL", "--", "unshare", ...(this.setup.isolated ? ["--net"] : []), "--pid", "--fork", "--kill-child", "--")
      command.push("setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--pdeathsig", "SIGKILL", "--")
      limits.push(`--nproc=${this.setup.nproc}`)
    }
    command.push("prlimit", ...limits, "--", "/bin/bash", "--noprofile", "--norc", "-i")
    if (uid !== undefined) {
      const { chown } = await import("node:fs/promises")
      await chown(this.home, uid, uid)
    }
    const [file, ...args] = command
    const term = pty.spawn(file ?? "prlimit", args, {
      name: "xterm-256color",
      cols: this.setup.cols,
      rows: this.setup.rows,
      cwd: this.home,
      env: { ...this.setup.env, PS1: "\\w$ " },
    })
    this.term = term
    term.onData((data) => this.output(undefined, { kind: "terminal", data }))
    term.onExit(({ signal }) => {
      const name = signal !== undefined && signal !== 0 ? signalName(signal) : undefined
      const reason = name === undefined ? { _tag: "ClosedByUser" as const } : name === "SIGXCPU" ? { _tag: "CpuLimit" as const } : { _tag: "Killed" as const, signal: name }
      void this.processExited(reason)
    })
  }

  execute(_id: string, code: string): void {
    this.terminalInput(code)
  }

  terminalInput(data: string): void {
    this.lastActivity = Date.now()
    this.term?.write(data)
  }

  terminalResize(cols: number, rows: number): void {
    this.term?.resize(cols, rows)
  }

  interrupt(): void {
    this.term?.write("\x03")
  }

  protected askToExit(): void {
    this.signalGroup("SIGHUP")
  }
}
