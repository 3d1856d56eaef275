// Zod schemas of every backend ⇄ worker frame (docs/PROTOCOL.md, "Backend ⇄ worker"). Both ends validate with these.
// The worker speaks first (challenge); nothing but `auth` is accepted until the backend has answered it.
import { z } from "zod"
import { formatExit } from "../../supervisors/exit.ts"
import { EndReason, fromWire } from "./reason.ts"

export const PROTOCOL_VERSION = 1

const SessionId = z.string().min(1).max(128)
const RequestId = z.string().min(1).max(128)
export const KernelKind = z.enum(["sage", "python"])
export type KernelKind = z.infer<typeof KernelKind>
export const SessionKind = z.enum(["sage", "python", "terminal"])
export type SessionKind = z.infer<typeof SessionKind>

/** The languages a cell may be written in: the kernel's own (`sage`, `python`), those Sage runs through its interfaces, and HTML. */
export const LANGUAGES = ["sage", "python", "gap", "gp", "maxima", "singular", "r", "octave", "html"] as const
export const Language = z.enum(LANGUAGES, {
  error: (issue) => `${JSON.stringify(issue.input)} is not a language a cell can be written in; use one of ${LANGUAGES.join(", ")} (or leave it out for the kernel's own)`,
})
export type Language = z.infer<typeof Language>

/** Largest `code` of one execution, completion or inspection, in UTF-8 bytes. */
export const MAX_CODE_BYTES = 256 * 1024
/** Names one completion answers with at most (introspect.py's MAX_MATCHES): sorted, the rest left out. */
export const MAX_COMPLETIONS = 1_000
/** Characters of help one inspection answers with at most (introspect.py's MAX_TEXT): a longer source is cut. */
export const MAX_INSPECTION_CHARS = 100_000

/** Per-session limits a backend may ask for; each is capped by the worker's own configured limit. */
export const SessionLimits = z
  .object({
    wall: z.number().positive().describe("seconds the session may live"),
    idle: z.number().positive().describe("seconds without a request or output (a computing kernel is never idle)"),
    exec: z.number().positive().describe("seconds one execution may take"),
    memory: z.number().positive().describe("MiB of address space user code may add on top of the kernel"),
    cpu: z.number().positive().describe("CPU seconds per process"),
  })
  .partial()
  .strict()
export type SessionLimits = z.infer<typeof SessionLimits>

/** Largest file a session's home gives out (`readFile`): the workspace's limit on one file (src/workspace/limits.ts). */
export const MAX_SESSION_FILE_BYTES = 10 * 2 ** 20
/** At most this many files, of at most this many bytes in all, go into one session's home at its open. */
export const MAX_OPEN_FILES = 1_000
export const MAX_OPEN_FILES_BYTES = 64 * 2 ** 20
/** Raw bytes per `file` or `fileData` frame: 4 MiB of base64, half the frame limit. */
export const FILE_CHUNK_BYTES = 3 * 2 ** 20
/** A relative path inside a session's home (the backend checks it as a workspace path; the kernel never follows a symlink). */
const HomePath = z.string().min(1).max(1024).refine(
  (p) => !p.includes("\u0000") && p.split("/").every((segment) => segment !== "" && segment !== "." && segment !== ".."),
  { error: "must be a relative path without empty, '.' or '..' segments" },
)

// ---- backend -> worker ----
export const Auth = z.object({ type: z.literal("auth"), hmac: z.string().regex(/^[0-9a-f]{64}$/) }).strict()
export const Open = z
  .object({
    type: z.literal("open"),
    session: SessionId,
    kernel: SessionKind,
    user: z.string().max(128).optional(),
    limits: SessionLimits.optional(),
    cols: z.number().int().positive().max(1000).optional(),
    rows: z.number().int().positive().max(1000).optional(),
    /** the number of files staged for this session (`file` frames sent before this open) to put into its home */
    files: z.number().int().min(1).max(MAX_OPEN_FILES).optional(),
  })
  .strict()
/** One chunk of a file for the home of session S, sent before S's `open`; `more`: further chunks of this file follow. */
export const StageFile = z
  .object({ type: z.literal("file"), session: SessionId, path: HomePath, data: z.string().max(Math.ceil(FILE_CHUNK_BYTES / 3) * 4), more: z.boolean().optional() })
  .strict()
/** The regular files of a kernel session's home that are new or changed since its open (all of them with `all`). */
export const ListFiles = z.object({ type: z.literal("listFiles"), session: SessionId, id: RequestId, all: z.boolean().optional() }).strict()
/** The bytes of one regular file of a kernel session's home, as `fileData` frames. */
export const ReadFile = z.object({ type: z.literal("readFile"), session: SessionId, id: RequestId, path: HomePath }).strict()
export const Execute = z.object({ type: z.literal("execute"), session: SessionId, id: RequestId, code: z.string(), language: Language.optional() }).strict()
/**
 * The names that can stand at `cursor` (UTF-16 code units into `code`) in a kernel session. Neither the code's size
 * nor the cursor's range is checked here, but by the worker, so a bad one is an error answer, not a closed connection.
 */
export const Complete = z.object({ type: z.literal("complete"), session: SessionId, id: RequestId, code: z.string(), cursor: z.number().int() }).strict()
/** The help (`obj?`, detail 0) or source (`obj??`, detail 1) of the object named at `cursor` in a kernel session. */
export const Inspect = z
  .object({ type: z.literal("inspect"), session: SessionId, id: RequestId, code: z.string(), cursor: z.number().int(), detail: z.literal([0, 1]) })
  .strict()
export const Run = z
  .object({
    type: z.literal("run"),
    session: SessionId,
    kernel: KernelKind,
    code: z.string(),
    language: Language.optional(),
    user: z.string().max(128).optional(),
    limits: SessionLimits.optional(),
  })
  .strict()
export const Interrupt = z.object({ type: z.literal("interrupt"), session: SessionId }).strict()
export const Close = z.object({ type: z.literal("close"), session: SessionId }).strict()
export const Resume = z.object({ type: z.literal("resume"), session: SessionId, fromSeq: z.number().int().min(0) }).strict()
export const InteractChange = z
  .object({
    type: z.literal("interactChange"),
    session: SessionId,
    interact: z.string().max(64),
    control: z.string().max(128),
    value: z.union([z.string().max(65536), z.number(), z.boolean()]),
  })
  .strict()
export const TerminalInput = z.object({ type: z.literal("terminalInput"), session: SessionId, data: z.string().max(65536) }).strict()
export const TerminalResize = z
  .object({ type: z.literal("terminalResize"), session: SessionId, cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) })
  .strict()
export const Ping = z.object({ type: z.literal("ping"), id: RequestId }).strict()

export const BackendFrame = z.discriminatedUnion("type", [
  Auth, Open, Execute, Run, Interrupt, Close, Resume, InteractChange, TerminalInput, TerminalResize, Ping, StageFile, ListFiles, ReadFile, Complete, Inspect,
])
export type BackendFrame = z.infer<typeof BackendFrame>

// ---- worker -> backend ----
export { EndReason }

/** `Timeout(wall)`, `Crash(...)`: the wire's reason in the short form of tables and logs. */
export const formatEndReason = (reason: EndReason): string => formatExit(fromWire(reason))

export const Control = z.object({
  name: z.string().describe("the function's argument it sets"),
  control: z.enum(["slider", "input_box", "checkbox", "selector"]).describe("what to show"),
  label: z.string().describe("the text beside it"),
  default: z.union([z.string(), z.number(), z.boolean(), z.null()]).describe("its value until moved"),
  min: z.number().optional().describe("slider: lowest value"),
  max: z.number().optional().describe("slider: highest value"),
  step: z.number().optional().describe("slider: step"),
  values: z.array(z.union([z.string(), z.number(), z.boolean()])).optional().describe("selector: the choices"),
})
export type Control = z.infer<typeof Control>

/** The session limits a `done` (and a run's `limit`) can name: as `limitOf` names an end reason's. */
export const LimitName = z.enum(["wall", "idle", "exec", "cpu", "memory"])
export type LimitName = z.infer<typeof LimitName>

/**
 * The end of an execution: the kernel's own (`ok`, `error`, `interrupted`), or the worker's when a limit ended the
 * session while it ran (`limit`, naming it; nothing of the session but `ended` follows).
 */
export const Done = z.discriminatedUnion("status", [
  z.object({ kind: z.literal("done"), status: z.enum(["ok", "error", "interrupted"]).describe("the kernel's: `error` follows an `error` message, `interrupted` an interrupt") })
    .describe("The end of an execution (`id`): always its last output."),
  z.object({ kind: z.literal("done"), status: z.literal("limit"), limit: LimitName.describe("the limit reached") })
    .describe("A limit ended the session while the execution ran: the session's last output; its `ended` follows, naming the same limit."),
])

export const OutputMessage = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("stdout"), text: z.string().describe("as printed, streamed line by line") }).describe("Standard output."),
  z.object({ kind: z.literal("stderr"), text: z.string().describe("as printed, streamed line by line") }).describe("Standard error."),
  z.object({ kind: z.literal("display"), data: z.record(z.string(), z.string()).describe("MIME type → data: `text/plain` always; `text/latex`, `text/html`, `image/png` and `image/gif` (an animation; base64), `application/vnd.sagews.threejs+json` (a 3-D scene, JSON text)") })
    .describe("A value to show: a cell's last expression, `show(...)`, a plot."),
  z.object({
    kind: z.literal("error"),
    ename: z.string().describe("the exception's class"),
    evalue: z.string().describe("its message"),
    traceback: z.array(z.string()).describe("the traceback's lines"),
  }).describe("An exception; the execution's `done` has status `error`."),
  Done,
  z.object({ kind: z.literal("interact"), interact: z.string().describe("its id, for `interact` requests"), controls: z.array(Control).describe("the controls to show: see `Control`") })
    .describe("An `@interact` was declared; its function runs once right away."),
  z.object({ kind: z.literal("terminal"), data: z.string().describe("raw output with escape sequences") }).describe("A terminal session's output."),
])
export type OutputMessage = z.infer<typeof OutputMessage>

export const Isolation = z.enum(["full", "reduced"])
export const Challenge = z
  .object({ type: z.literal("challenge"), nonce: z.string(), worker: z.string(), version: z.number().int() })
export const AuthOk = z.object({
  type: z.literal("authOk"),
  worker: z.string(),
  isolation: Isolation,
  kernels: z.array(KernelKind),
  /** when this worker process started (ms since the epoch, its clock): a session recorded before it lived on an earlier one */
  startedAt: z.number().int().nonnegative(),
})
export const Opened = z.object({
  type: z.literal("opened"),
  session: SessionId,
  kernel: SessionKind,
  isolation: Isolation,
  pid: z.number().int().optional(),
})
export const Output = z.object({
  type: z.literal("output"),
  session: SessionId,
  seq: z.number().int(),
  /** the execute id (or `interact:<id>`) this output belongs to */
  id: z.string().optional(),
  msg: OutputMessage,
})
export const Ended = z.object({
  type: z.literal("ended"),
  session: SessionId,
  seq: z.number().int(),
  reason: EndReason,
  message: z.string(),
})
export const Resumed = z.object({ type: z.literal("resumed"), session: SessionId, fromSeq: z.number().int(), lastSeq: z.number().int() })
export const ErrorFrame = z.object({
  type: z.literal("error"),
  message: z.string(),
  session: SessionId.optional(),
  id: z.string().optional(),
})
export const Pong = z.object({ type: z.literal("pong"), id: RequestId })
/** A file of a session's home as `fileList` names it: path relative to the home, bytes, mtime in ms since the epoch. */
export const HomeFile = z.object({ path: z.string(), size: z.number().int().nonnegative(), mtime: z.number() })
export type HomeFile = z.infer<typeof HomeFile>
/** Answer to `listFiles`; `truncated`: the home had more than the list holds. */
export const FileList = z.object({ type: z.literal("fileList"), session: SessionId, id: z.string(), files: z.array(HomeFile), truncated: z.boolean().optional() })
/** One chunk (base64) of the file a `readFile` asked for; the last has no `more`. */
export const FileData = z.object({ type: z.literal("fileData"), session: SessionId, id: z.string(), data: z.string(), more: z.boolean().optional() })

/** Answer to `complete`: the matches replace `code` from `cursorStart` to `cursorEnd` (UTF-16 code units). */
export const Completions = z.object({
  type: z.literal("completions"),
  session: SessionId,
  id: z.string(),
  matches: z.array(z.string()).max(MAX_COMPLETIONS),
  cursorStart: z.number().int().nonnegative(),
  cursorEnd: z.number().int().nonnegative(),
})
/** Answer to `inspect`: `found` false when nothing at the cursor names an object of the session. */
export const Inspection = z.object({
  type: z.literal("inspection"),
  session: SessionId,
  id: z.string(),
  found: z.boolean(),
  name: z.string(),
  text: z.string(),
})

export const WorkerFrame = z.discriminatedUnion("type", [Challenge, AuthOk, Opened, Output, Ended, Resumed, ErrorFrame, Pong, FileList, FileData, Completions, Inspection])
export type WorkerFrame = z.infer<typeof WorkerFrame>
export type OutputFrame = z.infer<typeof Output>
export type EndedFrame = z.infer<typeof Ended>
