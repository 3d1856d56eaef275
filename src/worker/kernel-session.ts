// A Sage or Python session's I/O: a forked kernel (KernelConn) given its sandbox, fed executions one at a time,
// its messages validated (user code can write to its own socket) and turned into sequence-numbered output. Questions
// about its home and its namespace (files, completions, help) are answered by the kernel beside the running cell.
import { Duration, Effect } from "effect"
import { z } from "zod"
import { signalProcess } from "../../actors/signals.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { HomeFile, MAX_COMPLETIONS, MAX_INSPECTION_CHARS, MAX_SESSION_FILE_BYTES, OutputMessage, type Language } from "../protocol/worker.ts"
import type { KernelConn, KernelExit } from "./forkserver.ts"
import type { LineMessage } from "./lines.ts"
import { Session, type SessionInit } from "./session.ts"

/** How long a kernel may take to apply its sandbox and say ready. */
export const SETUP_TIMEOUT = Duration.seconds(15)

const KernelOutput = z.object({ type: z.literal("output"), id: z.string().nullable().optional(), msg: OutputMessage })
/** What a kernel answers about its home (kernel.py: Home); user code can write to its socket, so it is checked too. */
const KernelFileList = z.object({ type: z.literal("fileList"), ref: z.string(), files: z.array(HomeFile).max(10_000), truncated: z.boolean().optional() })
const KernelFileData = z.object({ type: z.literal("fileData"), ref: z.string(), data: z.string(), more: z.boolean().optional() })
const KernelFileError = z.object({ type: z.literal("fileError"), ref: z.string(), message: z.string().max(4096) })
/** What a kernel answers about its namespace (introspect.py); positions in code points, as Python counts them. */
const KernelCompletions = z.object({
  type: z.literal("completions"),
  ref: z.string(),
  matches: z.array(z.string().max(1024)).max(MAX_COMPLETIONS),
  cursor_start: z.number().int().nonnegative(),
  cursor_end: z.number().int().nonnegative(),
})
const KernelInspection = z.object({ type: z.literal("inspection"), ref: z.string(), found: z.boolean(), name: z.string().max(1024), text: z.string().max(MAX_INSPECTION_CHARS + 4096) })

/** Raw bytes per line of a file sent to or read from a kernel: small lines, so no copy of a whole file sits in the kernel. */
const KERNEL_CHUNK_BYTES = 1 << 20
/**
 * How long a kernel may take to answer about its home. The kernel answers from its output thread, also while a cell
 * runs, but a cell busy in C code that holds Python's interpreter lock delays it.
 */
export const FILES_TIMEOUT = Duration.seconds(20)
/** How long a kernel may take to complete or inspect: past it a person has stopped waiting (held up as FILES_TIMEOUT). */
export const INTROSPECT_TIMEOUT = Duration.seconds(10)

/** The code points of `code` before the UTF-16 index `at`: where Python's `code[at]` is. */
export const codePointsBefore = (code: string, at: number): number => {
  let points = 0
  for (let i = 0; i < at && i < code.length; i++) {
    const c = code.charCodeAt(i)
    // a surrogate pair is one code point; an index between its halves counts the whole pair
    if (c >= 0xd800 && c <= 0xdbff && (code.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++
    points++
  }
  return points
}

/** The UTF-16 index of the code point `points` of `code` (its length past the end): the inverse of codePointsBefore. */
export const utf16Index = (code: string, points: number): number => {
  let i = 0
  for (let n = 0; n < points && i < code.length; n++) {
    const c = code.charCodeAt(i)
    i += c >= 0xd800 && c <= 0xdbff && (code.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1
  }
  return i
}

/** What may replace `code` from `cursorStart` to `cursorEnd` (UTF-16 code units). */
export interface Completion {
  readonly matches: ReadonlyArray<string>
  readonly cursorStart: number
  readonly cursorEnd: number
}

/** The help of the object named at a cursor: `found` false when nothing there names one. */
export interface Inspection {
  readonly found: boolean
  readonly name: string
  readonly text: string
}

/** A file put into the home at the session's open: a path relative to the home, and its bytes. */
export interface HomeFileContent {
  readonly path: string
  readonly content: Buffer
}

/** A question to the kernel (about its files or its namespace) failed: `message` is for the user. */
export class KernelFilesFailed extends Error {}

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
  /** files written into the home, as the session's uid, before the kernel says ready */
  readonly files: ReadonlyArray<HomeFileContent>
}

/** kernel.py's exit code when its socket to the worker closed under it (CONNECTION_CLOSED there) */
const CONNECTION_CLOSED = 74

/** A kernel's own end as an exit reason: SIGXCPU is its CPU limit; exit 0 is the user's `exit()`. */
export const reasonOfExit = (exit: KernelExit): ExitReason => {
  if ("forkserverDied" in exit) return ExitReason.Crash({ detail: `its kernel forkserver died (${exit.forkserverDied})` })
  if ("signal" in exit) return exit.signal === "SIGXCPU" ? ExitReason.CpuLimit() : ExitReason.Killed({ signal: exit.signal })
  if (exit.code === 0) return ExitReason.ClosedByUser()
  if (exit.code === CONNECTION_CLOSED) return ExitReason.Crash({ detail: "the kernel's connection to the worker closed" })
  return ExitReason.Crash({ detail: `the kernel exited with code ${exit.code}` })
}

export class KernelSetupFailed extends Error {}

type Work =
  | { readonly id: string; readonly code: string; readonly language: Language | undefined }
  | { readonly id: string; readonly change: { readonly interact: string; readonly control: string; readonly value: string | number | boolean } }

export class KernelSession extends Session {
  private queue: Array<Work> = []
  private current: string | undefined
  readonly conn: KernelConn
  /** called when the kernel's connection closes (the child decides what that means) */
  onConnClosed: (() => void) | undefined
  /** files requests waiting for the kernel's answer, by ref */
  private readonly asked = new Map<string, (message: LineMessage | undefined) => void>()
  private refs = 0

  constructor(init: SessionInit, conn: KernelConn) {
    super(init)
    this.conn = conn
  }

  get pid(): number {
    return this.conn.pid
  }

  /** Sends the sandbox and waits for the kernel to be ready in it; fails with what went wrong. */
  setup(setup: KernelSetup): Effect.Effect<void, KernelSetupFailed> {
    const ready = Effect.callback<void, KernelSetupFailed>((resume) => {
      this.conn.handler = (message) => {
        if (message["type"] === "ready") {
          this.conn.handler = (m) => this.onMessage(m)
          this.conn.onClose = () => {
            this.dropAsked()
            this.onConnClosed?.()
          }
          resume(Effect.void)
        } else if (message["type"] === "setupFailed") {
          resume(Effect.fail(new KernelSetupFailed(`the kernel could not apply its sandbox: ${String(message["message"])}`)))
        } else if (message["type"] === "filesFailed") {
          resume(Effect.fail(new KernelSetupFailed(`the workspace's files could not be put into the session's home: ${String(message["message"])}`)))
        }
      }
      this.conn.onClose = () => resume(Effect.fail(new KernelSetupFailed("the kernel exited while applying its sandbox")))
      if (this.conn.closed) return resume(Effect.fail(new KernelSetupFailed("the kernel's connection closed before its sandbox was applied")))
      this.conn.send({
        type: "setup",
        contained: setup.contained,
        uid: setup.uid ?? null,
        gid: setup.uid ?? null,
        home: this.home,
        env: setup.env,
        limits: { memory: this.limits.memory, cpu: this.limits.cpu, nofile: setup.nofile, nproc: setup.nproc, fsize: setup.fsize, ...(setup.disk !== undefined ? { home: setup.disk.home, tmp: setup.disk.tmp } : {}) },
        files: setup.files.length,
      })
      // The kernel writes them once it runs as the session's uid, before it is ready: nothing of root's touches the home.
      for (const file of setup.files) {
        for (let at = 0; at === 0 || at < file.content.length; at += KERNEL_CHUNK_BYTES) {
          const end = Math.min(file.content.length, at + KERNEL_CHUNK_BYTES)
          this.conn.send({ type: "file", path: file.path, data: file.content.subarray(at, end).toString("base64"), more: end < file.content.length })
          if (file.content.length === 0) break
        }
      }
    })
    return ready.pipe(
      Effect.timeoutOrElse({
        duration: SETUP_TIMEOUT,
        orElse: () => Effect.fail(new KernelSetupFailed(`the kernel did not apply its sandbox within ${Duration.format(SETUP_TIMEOUT)}`)),
      }),
    )
  }

  private onMessage(message: LineMessage): void {
    const ref = message["ref"]
    if (typeof ref === "string" && message["type"] !== "output") return void this.asked.get(ref)?.(message)
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
      this.activity.idle()
      this.next()
    }
  }

  /** Queues a cell; `language` (when given) goes to the kernel's execute command as it came. */
  execute(id: string, code: string, language?: Language): void {
    this.queue.push({ id, code, language })
    this.activity.touch()
    this.next()
  }

  interactChange(interact: string, control: string, value: string | number | boolean): void {
    this.queue.push({ id: `interact:${interact}`, change: { interact, control, value } })
    this.next()
  }

  private next(): void {
    if (this.current !== undefined || this.ended) return
    const item = this.queue.shift()
    if (item === undefined) return
    this.current = item.id
    this.activity.busy()
    this.conn.send("change" in item ? { type: "interact", ...item.change } : { type: "execute", id: item.id, code: item.code, ...(item.language !== undefined ? { language: item.language } : {}) })
  }

  /** the kernel is computing (it cannot read a polite request to exit) */
  get busy(): boolean {
    return this.current !== undefined
  }

  /** the session is over: files requests still waiting fail now */
  private dropAsked(): void {
    for (const answer of [...this.asked.values()]) answer(undefined)
  }

  protected abandon(): string | undefined {
    this.dropAsked()
    const running = this.current
    this.queue = []
    this.current = undefined
    return running
  }

  /**
   * Asks the kernel (over its socket) and feeds each answer line to `take` until it says it is done (true); fails with
   * the kernel's own error, or when it does not answer within `timeout` or its connection closes.
   */
  private ask(request: Record<string, unknown>, take: (message: LineMessage) => boolean, timeout: Duration.Duration = FILES_TIMEOUT): Effect.Effect<void, KernelFilesFailed> {
    const ref = `f${++this.refs}`
    const answered = Effect.callback<void, KernelFilesFailed>((resume) => {
      this.asked.set(ref, (message) => {
        const failed = message === undefined ? undefined : KernelFileError.safeParse(message)
        if (message === undefined) resume(Effect.fail(new KernelFilesFailed("the session ended before its kernel answered")))
        else if (failed?.success === true) resume(Effect.fail(new KernelFilesFailed(failed.data.message)))
        else {
          try {
            if (take(message)) resume(Effect.void)
          } catch (e) {
            resume(Effect.fail(e instanceof KernelFilesFailed ? e : new KernelFilesFailed(String(e))))
          }
        }
      })
      if (this.ended || this.conn.closed) return resume(Effect.fail(new KernelFilesFailed("the session has ended")))
      this.conn.send({ ...request, ref })
    })
    return answered.pipe(
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () => Effect.fail(new KernelFilesFailed(`the kernel did not answer within ${Duration.format(timeout)} (a cell busy in C code holds it up); try again when the cell is done`)),
      }),
      Effect.ensuring(Effect.sync(() => this.asked.delete(ref))),
    )
  }

  /** The regular files of the home that are new or changed since the open (`all`: every one), as the kernel sees them. */
  listFiles(all: boolean): Effect.Effect<{ readonly files: ReadonlyArray<HomeFile>; readonly truncated: boolean }, KernelFilesFailed> {
    let answer: { files: ReadonlyArray<HomeFile>; truncated: boolean } | undefined
    return this.ask({ type: "listFiles", all }, (message) => {
      const list = KernelFileList.safeParse(message)
      if (!list.success) throw new KernelFilesFailed("the kernel's answer about its files was not a file list")
      answer = { files: list.data.files, truncated: list.data.truncated === true }
      return true
    }).pipe(Effect.map(() => answer ?? { files: [], truncated: false }))
  }

  /**
   * The bytes of the regular file `path` of the home, read by the kernel as the session's uid, following no symlink;
   * at most MAX_SESSION_FILE_BYTES.
   */
  readFile(path: string): Effect.Effect<Buffer, KernelFilesFailed> {
    const chunks: Array<Buffer> = []
    let size = 0
    return this.ask({ type: "readFile", path, max: MAX_SESSION_FILE_BYTES }, (message) => {
      const data = KernelFileData.safeParse(message)
      if (!data.success) throw new KernelFilesFailed("the kernel's answer was not the file's data")
      const chunk = Buffer.from(data.data.data, "base64")
      size += chunk.length
      if (size > MAX_SESSION_FILE_BYTES) throw new KernelFilesFailed(`${path} is larger than ${MAX_SESSION_FILE_BYTES} bytes (10 MiB), the most a file saved from a session may have`)
      chunks.push(chunk)
      return data.data.more !== true
    }).pipe(Effect.map(() => Buffer.concat(chunks)))
  }

  /**
   * The names that can stand at `cursor` (UTF-16 code units into `code`), from the kernel's namespace; the kernel
   * counts in code points, so the positions are converted both ways.
   */
  complete(code: string, cursor: number): Effect.Effect<Completion, KernelFilesFailed> {
    let answer: Completion | undefined
    this.activity.touch() // a person completing is not idle
    return this.ask({ type: "complete", code, cursor: codePointsBefore(code, cursor) }, (message) => {
      const got = KernelCompletions.safeParse(message)
      if (!got.success) throw new KernelFilesFailed("the kernel's answer to a completion was not a list of matches")
      const { matches, cursor_start: start, cursor_end: end } = got.data
      answer = { matches, cursorStart: utf16Index(code, start), cursorEnd: utf16Index(code, Math.max(start, end)) }
      return true
    }, INTROSPECT_TIMEOUT).pipe(Effect.map(() => answer ?? { matches: [], cursorStart: cursor, cursorEnd: cursor }))
  }

  /** The help (`detail` 0) or source (1) of the object named at `cursor`, as the kernel's introspect.py writes it. */
  inspect(code: string, cursor: number, detail: 0 | 1): Effect.Effect<Inspection, KernelFilesFailed> {
    let answer: Inspection | undefined
    this.activity.touch()
    return this.ask({ type: "inspect", code, cursor: codePointsBefore(code, cursor), detail }, (message) => {
      const got = KernelInspection.safeParse(message)
      if (!got.success) throw new KernelFilesFailed("the kernel's answer to an inspection was not help text")
      answer = { found: got.data.found, name: got.data.name, text: got.data.text }
      return true
    }, INTROSPECT_TIMEOUT).pipe(Effect.map(() => answer ?? { found: false, name: "", text: "" }))
  }

  interrupt(): void {
    // the executions queued behind the running one are dropped: each ends now, with its own done
    const dropped = this.queue
    this.queue = []
    for (const item of dropped) if (!("change" in item)) this.output(item.id, { kind: "done", status: "interrupted" })
    // SIGINT to the kernel alone, as a user's ^C (it also stops Sage's C code, through cysignals)
    if (this.current !== undefined) signalProcess(this.pid, "SIGINT")
  }
}
