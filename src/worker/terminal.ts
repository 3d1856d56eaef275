// A terminal session: bash under node-pty. As root it is a session container like a kernel (contain.py: own
// namespaces, cgroup, private view, the session's uid, rlimits, seccomp); unprivileged, bash under prlimit.
import { createRequire } from "node:module"
import { constants } from "node:os"
import { join } from "node:path"
import type { IPty } from "node-pty"
import { ExitReason } from "../../supervisors/exit.ts"
import type { ContainSpec } from "./forkserver.ts"
import { Session, type SessionInit } from "./session.ts"

const CONTAIN_PY = join(import.meta.dirname, "contain.py")
const BASH = ["/bin/bash", "--noprofile", "--norc", "-i"]

const require = createRequire(import.meta.url)
const pty: typeof import("node-pty") = require("node-pty")

const signalName = (n: number): string => Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`

export interface TerminalSetup {
  readonly env: Readonly<Record<string, string>>
  readonly nofile: number
  readonly nproc: number
  readonly fsize: number
  /** root: the container every session of this worker gets */
  readonly contain: ContainSpec | undefined
  readonly python: string
  readonly cols: number
  readonly rows: number
}

export class TerminalSession extends Session {
  private term: IPty | undefined
  /** how the shell ended: ^D or `exit` is the user closing it; SIGXCPU its CPU limit */
  readonly exited: Promise<ExitReason>
  private resolveExited!: (reason: ExitReason) => void

  private readonly setup: TerminalSetup

  constructor(init: SessionInit, setup: TerminalSetup) {
    super(init)
    this.setup = setup
    this.exited = new Promise((resolve) => (this.resolveExited = resolve))
  }

  get pid(): number | undefined {
    return this.term?.pid
  }

  /** The command line: contain.py with its spec (no secret in it: the session sees only its own /proc). */
  private command(): Array<string> {
    const { contain, nofile, nproc, fsize } = this.setup
    if (contain !== undefined && this.uid !== undefined) {
      const spec = {
        contain: { ...contain, cgroup: this.cgroup?.procsFiles ?? [] },
        setup: { uid: this.uid, gid: this.uid, home: this.home, env: { ...this.setup.env, PS1: "\\w$ " }, limits: { memory: this.limits.memory, cpu: this.limits.cpu, nofile, nproc, fsize } },
        argv: BASH,
      }
      return [this.setup.python, CONTAIN_PY, JSON.stringify(spec)]
    }
    const limits = [`--as=${this.limits.memory * 1024 * 1024 + 512 * 1024 * 1024}`, `--cpu=${this.limits.cpu}`, `--nofile=${nofile}`, `--fsize=${fsize}`, "--core=0"]
    return ["prlimit", ...limits, "--", ...BASH]
  }

  start(): void {
    const [file, ...args] = this.command()
    const term = pty.spawn(file ?? "prlimit", args, {
      name: "xterm-256color",
      cols: this.setup.cols,
      rows: this.setup.rows,
      cwd: this.setup.contain !== undefined ? "/" : this.home,
      env: { ...this.setup.env, PS1: "\\w$ " },
    })
    this.term = term
    term.onData((data) => this.output(undefined, { kind: "terminal", data }))
    term.onExit(({ signal }) => {
      const name = signal !== undefined && signal !== 0 ? signalName(signal) : undefined
      this.resolveExited(name === undefined ? ExitReason.ClosedByUser() : name === "SIGXCPU" ? ExitReason.CpuLimit() : ExitReason.Killed({ signal: name }))
    })
  }

  execute(_id: string, code: string): void {
    this.terminalInput(code)
  }

  terminalInput(data: string): void {
    this.activity.touch()
    if (!this.ended) this.term?.write(data)
  }

  terminalResize(cols: number, rows: number): void {
    this.term?.resize(cols, rows)
  }

  interrupt(): void {
    this.term?.write("\x03")
  }
}
