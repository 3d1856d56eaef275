// Spawns one program as the leader of its own process group (stdin ignored, stdout/stderr read continuously)
// and tracks its exit; an optional uid/gid drops privileges (supplementary groups are dropped too).
import { type ChildProcessByStdio, spawn } from "node:child_process"
import type { Readable } from "node:stream"
import { Effect } from "effect"
import { LineSplitter, type Stream } from "./logfile.ts"

/** stderr lines kept for the cause of a Crash */
const STDERR_TAIL_LINES = 20
const STDERR_TAIL_LINE_LENGTH = 500

export interface SpawnOptions {
  readonly command: string
  readonly args: ReadonlyArray<string>
  /** added to (and overriding) our own environment */
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly cwd?: string | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  /** every complete output line, in order, as soon as it is read */
  readonly onLines: (lines: ReadonlyArray<string>, stream: Stream) => void
}

export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Spawned {
  /** also the process group id */
  readonly pid: number
  /** resolves once the main process has exited and was reaped */
  readonly exited: Promise<ExitStatus>
  /** the exit status once the main process has exited, else undefined */
  readonly exitStatus: () => ExitStatus | undefined
  /** resolves once stdout and stderr have both ended (every process holding them is gone) */
  readonly drained: Promise<void>
  readonly stderrTail: () => ReadonlyArray<string>
}

/** Spawns the program; fails with a message naming the command when it cannot be started (ENOENT, EACCES, ...). */
export const spawnProcess = (options: SpawnOptions): Effect.Effect<Spawned, string> =>
  Effect.callback<Spawned, string>((resume) => {
    let child: ChildProcessByStdio<null, Readable, Readable>
    try {
      // detached: the child leads a new process group, so the whole group can be signalled and waited for.
      child = spawn(options.command, [...options.args], {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: options.env === undefined ? process.env : { ...process.env, ...options.env },
        cwd: options.cwd,
        uid: options.uid,
        gid: options.gid,
      })
    } catch (error) {
      return resume(Effect.fail(`cannot start ${options.command}: ${(error as Error).message}`))
    }
    const pid = child.pid
    if (pid === undefined) {
      child.once("error", (error) => resume(Effect.fail(`cannot start ${options.command}: ${error.message}`)))
      return
    }
    let status: ExitStatus | undefined
    const tail: Array<string> = []
    const exited = new Promise<ExitStatus>((resolve) =>
      child.once("exit", (code, signal) => {
        status = { code, signal }
        resolve(status)
      })
    )
    // After a successful spawn 'error' only reports a failed child.kill(), which is never used here.
    child.on("error", () => {})
    const read = (stream: NodeJS.ReadableStream, name: Stream) =>
      new Promise<void>((resolve) => {
        const splitter = new LineSplitter()
        const deliver = (lines: ReadonlyArray<string>) => {
          if (lines.length === 0) return
          if (name === "stderr") {
            for (const line of lines) tail.push(line.slice(0, STDERR_TAIL_LINE_LENGTH))
            tail.splice(0, Math.max(0, tail.length - STDERR_TAIL_LINES))
          }
          options.onLines(lines, name)
        }
        stream.on("data", (chunk: Buffer) => deliver(splitter.push(chunk)))
        // A read error ends the stream; 'close' follows and the lines read so far are kept.
        stream.on("error", () => {})
        stream.once("close", () => {
          deliver(splitter.end())
          resolve()
        })
      })
    const drained = Promise.all([read(child.stdout, "stdout"), read(child.stderr, "stderr")]).then(() => undefined)
    resume(Effect.succeed({ pid, exited, exitStatus: () => status, drained, stderrTail: () => [...tail] }))
  })
