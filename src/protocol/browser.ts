// Zod schemas of every browser ⇄ backend message (docs/PROTOCOL.md), shared by the backend and the client library;
// their descriptions and limits are also the document's message reference (reference.ts renders them).
// Requests carry a client-chosen `id`; replies repeat it; session output carries the worker's sequence number `seq`.
import { z } from "zod"
import { EndReason, limitOf } from "./reason.ts"
import {
  Control,
  KernelKind,
  Language,
  LANGUAGES,
  LimitName,
  MAX_CODE_BYTES,
  MAX_COMPLETIONS,
  MAX_INSPECTION_CHARS,
  MAX_OPEN_FILES,
  MAX_OPEN_FILES_BYTES,
  MAX_SESSION_FILE_BYTES,
  OutputMessage as WorkerOutputMessage,
  SessionKind,
  SessionLimits,
} from "./worker.ts"

export const BROWSER_PROTOCOL_VERSION = 1
/** Largest SockJS message (or raw WebSocket frame) the backend reads, in UTF-8 bytes; a bigger one gets `invalid`. */
export const MAX_MESSAGE_BYTES = 1024 * 1024
/** Largest identity token the backend reads, in bytes (one it issues is about 90). */
export const MAX_TOKEN_BYTES = 512
/** Largest request or session id, in UTF-8 bytes. */
export const MAX_ID_BYTES = 128
/** Largest string an interact control is set to, and largest terminal input of one message, in UTF-8 bytes. */
export const MAX_INPUT_BYTES = 64 * 1024

export { Control, KernelKind, Language, LANGUAGES, LimitName, MAX_CODE_BYTES, MAX_COMPLETIONS, MAX_INSPECTION_CHARS, MAX_OPEN_FILES, MAX_OPEN_FILES_BYTES, SessionKind }
export { EndReason }

/** `1234567` as `1,234,567`: limits and sizes in messages people read. */
export const formatCount = (n: number): string => n.toLocaleString("en-US")

/** Bytes of `text` in UTF-8 (a lone surrogate counts as the 3 bytes of the U+FFFD it is sent as). */
export const utf8Bytes = (text: string): number => {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

/**
 * A string of at most `maxBytes` bytes of UTF-8 (and at least `minLength` characters); `hint` says what to do about a
 * longer one. The limit is also in the
 * schema's metadata (`maxBytes`), for the document's tables.
 */
const utf8 = (maxBytes: number, hint: string, minLength = 0) =>
  z.string().min(minLength).refine((s) => utf8Bytes(s) <= maxBytes, {
    error: (issue) => `is ${formatCount(utf8Bytes(String(issue.input)))} bytes of UTF-8, more than the limit of ${formatCount(maxBytes)} bytes; ${hint}`,
  }).meta({ maxBytes })

const RequestId = utf8(MAX_ID_BYTES, "use a shorter id", 1).describe("chosen by the client; every reply to the request carries it")
const SessionId = utf8(MAX_ID_BYTES, "send the id an opened reply gave", 1).describe("the session's id, from its `opened` reply")
const Code = utf8(MAX_CODE_BYTES, "split the code into several executions").describe("the cell's source")
const CellLanguage = Language.optional()
  .describe("what the cell is written in, when not the kernel's own language: `gap`, `gp`, `maxima`, `singular`, `r` and `octave` run through Sage's interfaces to them, `html` is shown as HTML")
/** Where in `code` the request is about: UTF-16 code units from its start (a JavaScript string index, CodeMirror's position). */
const Cursor = z.number().int().min(0).describe("where in `code`: UTF-16 code units from its start (a JavaScript string index), at most `code`'s length")
/** `cursor` must be inside `code` (its end included). */
const cursorInCode = (m: { readonly code: string; readonly cursor: number }, ctx: z.core.$RefinementCtx): void => {
  if (m.cursor > m.code.length) {
    ctx.addIssue({ code: "custom", path: ["cursor"], input: m.cursor, message: `is ${formatCount(m.cursor)}, past the end of code (${formatCount(m.code.length)} UTF-16 code units); send a cursor from 0 to the code's length` })
  }
}

/** Limits a client may ask for (seconds, MiB); each is capped by the backend's and the worker's own. */
export const Limits = SessionLimits.meta({ id: "Limits", description: "limits asked for (seconds, MiB); each is capped by the backend's and the worker's own" })
export type Limits = z.infer<typeof Limits>
/** The output messages of sessions and runs (`msg`), named for the document. */
export const OutputMessage = WorkerOutputMessage.meta({ id: "OutputMessage" })
const EndReasonRef = EndReason.meta({ id: "EndReason" })

// ---------------- browser -> backend ----------------
export const Hello = z
  .object({
    type: z.literal("hello"),
    id: RequestId,
    token: utf8(MAX_TOKEN_BYTES, "send the token as an identity reply gave it", 1).optional()
      .describe("an identity token from an earlier `identity` reply (or the `sagews_id` cookie); without one the connection keeps the identity it opened with"),
    account: utf8(MAX_TOKEN_BYTES, "send the ticket as GET /api/v1/me gave it", 1).optional()
      .describe("the `socket` ticket of `GET /api/v1/me` (signed in): sessions this connection opens from then on belong to that account, and only connections of that account may resume them; without one they belong to the identity"),
  })
  .strict()
  .describe("Which client this connection is (optional): asks for its identity, or presents one issued earlier to be counted as the same client, and a signed-in account's ticket. Reply: `identity`.")
export const Ping = z.object({ type: z.literal("ping"), id: RequestId }).strict().describe("A round trip. Reply: `pong`.")
export const Run = z
  .object({
    type: z.literal("run"),
    id: RequestId,
    kernel: KernelKind.default("sage").describe("the kernel the cell runs in"),
    code: Code,
    language: CellLanguage,
    cache: z.boolean().default(true).describe("may the result come from, and go to, the result cache"),
    limits: Limits.optional(),
  })
  .strict()
  .describe("Stateless: one cell in a fresh kernel that ends afterwards, or from the cache. Replies: `runOutput`s, then `runDone`; a newer `run` on the connection cancels it (the same run again, with its `id`, `code`, `kernel` and `language`, is the one run: its answer comes once).")
const TerminalSize = z.number().int().min(1).max(1000)
export const Open = z
  .object({
    type: z.literal("open"),
    id: RequestId,
    kernel: SessionKind.default("sage").describe("a kernel (`sage`, `python`) or a `terminal`"),
    limits: Limits.optional(),
    cols: TerminalSize.optional().describe("a terminal's width, in characters"),
    rows: TerminalSize.optional().describe("a terminal's height, in lines"),
    workspace: z.boolean().optional()
      .describe(`\`true\`: the session's home starts with the files of the account's workspace at its latest version (all but \`worksheets/\`; at most ${formatCount(MAX_OPEN_FILES)} files and ${formatCount(MAX_OPEN_FILES_BYTES)} bytes), so \`load("x.sage")\` and \`open("data.csv")\` find them; a \`sage\` or \`python\` session of a connection whose sessions are an account's (\`hello\` with its ticket)`),
  })
  .strict()
  .describe("Starts a stateful session, attached to this connection. Reply: `opened`.")
export const Execute = z
  .object({ type: z.literal("execute"), id: RequestId, session: SessionId, code: Code, language: CellLanguage })
  .strict()
  .describe("Runs a cell in a kernel session (executions run one after another, in order). Reply: `ack`, then `output`s with this `id`, the last a `done`.")
export const Interrupt = z
  .object({ type: z.literal("interrupt"), id: RequestId, session: SessionId })
  .strict()
  .describe("Kernel: the running execution ends with `done` status `interrupted`, queued ones are dropped, each with its own `done` status `interrupted`. Terminal: `^C`. Reply: `ack`.")
export const Close = z
  .object({ type: z.literal("close"), id: RequestId, session: SessionId })
  .strict()
  .describe("Ends the session: `ended` with reason `ClosedByUser` follows. Reply: `ack`.")
export const Resume = z
  .object({
    type: z.literal("resume"),
    id: RequestId,
    session: SessionId,
    fromSeq: z.number().int().min(1).describe("the first `seq` wanted: the highest `seq` seen of this session + 1, or 1 for all that is kept"),
  })
  .strict()
  .describe("Attaches the session to this connection (any backend; another connection it was attached to gets `detached`) and replays its kept output from `fromSeq`. Reply: `resumed`, then the replayed `output`s.")
export const Interact = z
  .object({
    type: z.literal("interact"),
    id: RequestId,
    session: SessionId,
    interact: utf8(64, "send the id the interact output gave", 1).describe("the interact's id (`interact` of its `interact` output)"),
    control: utf8(128, "send a control name the interact output gave", 1).describe("the control's `name`"),
    value: z.union([utf8(MAX_INPUT_BYTES, "send a shorter value"), z.number(), z.boolean()]).describe("the control's new value"),
  })
  .strict()
  .describe("Moves an interact control in a kernel session; the interact's function runs again, its output with `id` `interact:<interact>`. Reply: `ack`.")
export const TerminalInput = z
  .object({ type: z.literal("terminalInput"), id: RequestId, session: SessionId, data: utf8(MAX_INPUT_BYTES, "send the input in several messages").describe("keystrokes, as the terminal reads them (`\\r` for Enter)") })
  .strict()
  .describe("Types into a terminal session. Reply: `ack`; what the terminal prints comes as `output` (`terminal`).")
export const TerminalResize = z
  .object({ type: z.literal("terminalResize"), id: RequestId, session: SessionId, cols: TerminalSize.describe("width, in characters"), rows: TerminalSize.describe("height, in lines") })
  .strict()
  .describe("Resizes a terminal session. Reply: `ack`.")

/** A path relative to a session's home and to a workspace: the workspace's rules (src/workspace/validate.ts). */
const FilePath = utf8(1024, "name a shorter path", 1)
export const Files = z
  .object({
    type: z.literal("files"),
    id: RequestId,
    session: SessionId,
    all: z.boolean().optional().describe("`true`: every regular file of the home, not only those new or changed since the open"),
  })
  .strict()
  .describe("Lists the regular files of a kernel session's home that are new or changed since its open: what its code wrote, to offer for saving (names starting with `.` are left out). Reply: `fileList`.")
export const SaveFile = z
  .object({
    type: z.literal("saveFile"),
    id: RequestId,
    session: SessionId,
    path: FilePath.describe("the file, relative to the session's home; a regular file, no symbolic link on the way"),
    to: FilePath.optional().describe("where in the workspace to save it (default: `path`); not in `worksheets/`"),
  })
  .strict()
  .describe(`Saves a file of a kernel session's home (at most ${formatCount(MAX_SESSION_FILE_BYTES)} bytes) into the account's workspace, as a commit over whatever the latest version has there. The connection's sessions must be an account's. Reply: \`saved\`, once PostgreSQL has committed it.`)

export const Complete = z
  .object({ type: z.literal("complete"), id: RequestId, session: SessionId, code: Code, cursor: Cursor })
  .strict()
  .superRefine(cursorInCode)
  .describe(`Completes the name before \`cursor\` in a kernel session, from what the session has defined: names, attributes (\`ZZ.\`, \`x.\` of an earlier cell's \`x\`), keywords, and file names inside a string. Answered by the kernel also while a cell runs, without touching it. Reply: \`completions\`.`)
export const Inspect = z
  .object({
    type: z.literal("inspect"),
    id: RequestId,
    session: SessionId,
    code: Code,
    cursor: Cursor,
    detail: z.literal([0, 1]).default(0).describe("`0`: the object's help, as `obj?` shows it; `1`: its source, as `obj??` does (its help when it has no source)"),
  })
  .strict()
  .superRefine(cursorInCode)
  .describe("The help of the object named at `cursor` (or of the call the cursor is in, `factorial(|`) in a kernel session, as text. Answered by the kernel also while a cell runs, without touching it. Reply: `inspection`.")

export const ClientMessage = z.discriminatedUnion("type", [Hello, Ping, Run, Open, Execute, Interrupt, Close, Resume, Interact, TerminalInput, TerminalResize, Files, SaveFile, Complete, Inspect])
export type ClientMessage = z.infer<typeof ClientMessage>
/** What a client writes (defaults may be left out). */
export type ClientRequest = z.input<typeof ClientMessage>

/** The messages addressed to a session that is attached to the connection. */
export const SESSION_REQUESTS = ["execute", "interact", "interrupt", "close", "terminalInput", "terminalResize", "files", "saveFile", "complete", "inspect"] as const
export type SessionRequest = (typeof SESSION_REQUESTS)[number]
/** What each kind of session takes (besides `resume`, which every kind takes); anything else is `wrong_kind`. */
export const ACCEPTS: Record<SessionKind, ReadonlyArray<SessionRequest>> = {
  sage: ["execute", "interact", "interrupt", "close", "files", "saveFile", "complete", "inspect"],
  python: ["execute", "interact", "interrupt", "close", "files", "saveFile", "complete", "inspect"],
  terminal: ["terminalInput", "terminalResize", "interrupt", "close"],
}

// ---------------- backend -> browser ----------------
export const Welcome = z
  .object({
    type: z.literal("welcome"),
    backend: z.string().describe("the backend this connection reached"),
    version: z.number().int().describe(`the protocol's version (${BROWSER_PROTOCOL_VERSION})`),
    kernels: z.array(KernelKind).describe("the kernels of the workers connected now"),
  })
  .describe("The first message on every connection, unasked.")
export const Pong = z.object({ type: z.literal("pong"), id: RequestId, backend: z.string().describe("the backend that answered") }).describe("Reply to `ping`.")
export const Ack = z
  .object({ type: z.literal("ack"), id: RequestId })
  .describe("An `execute`, `interrupt`, `close`, `interact`, `terminalInput` or `terminalResize` was accepted and passed to the session.")
export const IdentityReply = z
  .object({
    type: z.literal("identity"),
    id: RequestId,
    client: z.string().describe("the server-issued client id (22 characters of base64url)"),
    token: z.string().describe("present it in the `hello` of later connections to stay this client"),
    issuedAt: z.number().int().describe("ms since the epoch"),
    expiresAt: z.number().int().describe("ms since the epoch: the token is refused from then on"),
    account: z.string().optional().describe("the account the `account` ticket named: this connection's sessions belong to it (admission counts them by it too)"),
  })
  .describe("Reply to `hello`: the identity admission control counts this connection by from now on, and the account its sessions belong to.")

/** What each error code means and what to do about it: the document's table of codes, and the codes themselves. */
export const ERROR_CODES = {
  invalid: {
    meaning: `the message does not follow this document: not JSON, over ${formatCount(MAX_MESSAGE_BYTES)} bytes, an unknown \`type\`, or a missing, mistyped, oversized or unknown field; \`message\` names the field and why`,
    action: "fix the message; the connection stays open",
  },
  limit: {
    meaning: "admission control refused it: `limit` names the limit, `max` its value, `retryAfterMs` when to try again",
    action: "wait `retryAfterMs`, or close one of your sessions",
  },
  identity: {
    meaning: "the `token` or the `account` ticket of a `hello` was refused: `message` says which, and whether it is malformed, altered or not issued by this service, claims a future time, or expired; the connection keeps the identity and account it had",
    action: "send `hello` without a token; for a ticket, ask `GET /api/v1/me` for a new one",
  },
  unknown_session: {
    meaning: "no session with this id exists for this connection: the session registry (shared by every backend) has no record of it, or it belongs to another account or identity (which is answered the same way, so an id tells a stranger nothing)",
    action: "check the id; open a new session",
  },
  not_attached: {
    meaning: "the session is live, but this connection has not opened or resumed it, or another connection resumed it since (this one got `detached`)",
    action: "send `resume` for it, then the message again",
  },
  session_ended: {
    meaning: "the session has ended; `reason` (when this backend knows it) and `message` say why, as its `ended` did",
    action: "open a new session",
  },
  wrong_kind: {
    meaning: "this kind of session does not take this message (a terminal takes no `execute`, a kernel no `terminalInput`); `kernel` names the session's kind, `message` what it takes",
    action: "send what the session's kind takes, or open a session of the kind you need",
  },
  account: {
    meaning: "the request needs a signed-in account's connection (an `open` with `workspace`, a `saveFile`), and this connection's sessions are an anonymous identity's",
    action: "sign in, send `hello` with the `socket` ticket of `GET /api/v1/me`, and open the session again",
  },
  file: {
    meaning: "a file could not be put into or taken out of a session's home: `message` says which and why (no such file, a directory, a symbolic link, over 10 MiB; the workspace has more files or bytes than a session's home takes)",
    action: "as `message` says: copy the file into the home as a regular file, make it smaller, or open without `workspace`",
  },
  no_worker: {
    meaning: "no worker for this kernel (or the session's worker) is connected right now; `retryAfterMs` may be set",
    action: "try again in a second or so",
  },
  failed: {
    meaning: "the backend or the worker could not do it; `message` says why",
    action: "depends on `message`; the connection stays open",
  },
} as const satisfies Record<string, { readonly meaning: string; readonly action: string }>
type ErrorCodeName = keyof typeof ERROR_CODES
const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as [ErrorCodeName, ...Array<ErrorCodeName>]
export const ErrorCode = z.enum(ERROR_CODE_NAMES).describe("what happened: see the table of codes")
export type ErrorCode = z.infer<typeof ErrorCode>
export const ErrorMessage = z
  .object({
    type: z.literal("error"),
    id: z.string().nullable().describe("the request's id, or null when the message could not be read far enough to find one"),
    code: ErrorCode,
    message: z.string().describe("what happened, the value or limit involved, and what to do, for a person"),
    limit: z.string().optional().describe("code `limit`: the admission limit that refused the request"),
    max: z.number().optional().describe("code `limit`: that limit's value"),
    retryAfterMs: z.number().int().optional().describe("codes `limit`, `no_worker`: when to try again"),
    session: z.string().optional().describe("the session the request was about"),
    reason: EndReasonRef.optional().describe("code `session_ended`: why the session ended, when this backend knows"),
    kernel: SessionKind.optional().describe("code `wrong_kind`: the session's kind"),
  })
  .describe("A request failed; nothing else happened and the connection stays open.")
export type ErrorMessage = z.infer<typeof ErrorMessage>
export const RunOutput = z
  .object({ type: z.literal("runOutput"), id: RequestId, seq: z.number().int().min(1).describe("1, 2, … per run"), msg: OutputMessage.describe("the output: see Output messages") })
  .describe("One output message of a stateless `run`, in order.")
export const RunRestarted = z
  .object({ type: z.literal("runRestarted"), id: RequestId, reason: z.string().describe("why, in words: the worker running it was lost") })
  .describe("The `run`'s worker was lost after it had printed, and it runs again from the start: drop its `runOutput`s so far; they come again from `seq` 1.")
export const RunStatus = z
  .enum(["ok", "error", "interrupted", "cancelled", "limit", "failed"])
  .describe("`ok`, `error` (an exception), `interrupted`, `cancelled` (a newer `run` on the connection, or it closed), `limit` (a limit ended it), `failed` (the worker was lost or refused)")
export type RunStatus = z.infer<typeof RunStatus>
export const RunDone = z
  .object({
    type: z.literal("runDone"),
    id: RequestId,
    status: RunStatus,
    cached: z.boolean().describe("true when the outputs came from the result cache"),
    ms: z.number().describe("how long the run took, in ms"),
    message: z.string().optional().describe("what ended it when it did not end normally (a limit, a newer run, a lost worker)"),
    limit: z.string().optional().describe("status `limit`: which one (`exec`, `wall`, `idle`, `memory`, `cpu`)"),
  })
  .describe("The end of a stateless `run`, after all its `runOutput`s.")
export const Opened = z
  .object({ type: z.literal("opened"), id: RequestId, session: SessionId.describe("the new session's id (a random UUID: whoever holds it can resume the session)"), kernel: SessionKind })
  .describe("Reply to `open`: the session runs, attached to this connection.")
export const Resumed = z
  .object({
    type: z.literal("resumed"),
    id: RequestId,
    session: SessionId,
    kernel: SessionKind,
    fromSeq: z.number().int().min(1).describe("the `seq` of the first message that follows: as asked; higher when older output is no longer kept; `lastSeq` + 1, lower than asked, when asked past it"),
    lastSeq: z.number().int().min(0).describe("the session's last `seq` so far (0: no output yet)"),
  })
  .describe("Reply to `resume`: the session is attached to this connection; its kept output from `fromSeq` to `lastSeq` follows, then live output.")
export const Output = z
  .object({
    type: z.literal("output"),
    session: SessionId,
    seq: z.number().int().min(1).describe("1, 2, 3, … per session, no gaps"),
    id: z.string().optional().describe("the `execute` it belongs to, or `interact:<interact>` for an interact's re-run; none for a terminal's output"),
    msg: OutputMessage.describe("the output: see Output messages"),
  })
  .describe("One output message of a session attached to this connection, unasked.")
export const Ended = z
  .object({
    type: z.literal("ended"),
    session: SessionId,
    seq: z.number().int().min(1).describe("the session's last `seq`"),
    reason: EndReasonRef,
    message: z.string().describe("what happened, with the limit's value, and what to do, for a person"),
    limit: z.string().optional().describe("the limit that ended it, if one did (`wall`, `idle`, `exec`, `cpu`, `memory`)"),
  })
  .describe("The session is over: always its last message, unasked.")
export const DETACHED_REASON = "resumed by another connection"
export const Detached = z
  .object({
    type: z.literal("detached"),
    session: SessionId,
    reason: z.literal(DETACHED_REASON).describe("why its output no longer comes here"),
    message: z.string().describe("the same for a person, and what to do"),
  })
  .describe("Another connection resumed the session: nothing more of it comes here but its `ended`, and its messages get `not_attached` until this connection resumes it again. Unasked.")

export const FileList = z
  .object({
    type: z.literal("fileList"),
    id: RequestId,
    session: SessionId,
    files: z.array(z.object({
      path: z.string().describe("relative to the home (and the workspace path it is saved to by default)"),
      size: z.number().int().describe("bytes"),
      mtime: z.number().describe("last modified, ms since the epoch"),
    })).describe("sorted by path"),
    truncated: z.boolean().optional().describe("the home has more files than a list holds (1,000)"),
  })
  .describe("Reply to `files`.")
export const Saved = z
  .object({
    type: z.literal("saved"),
    id: RequestId,
    session: SessionId,
    path: z.string().describe("the workspace path it was saved to"),
    version: z.string().describe("the workspace's version with it (`GET /api/v1/files/{path}` has it from then on)"),
  })
  .describe("Reply to `saveFile`: PostgreSQL has committed the file.")

export const Completions = z
  .object({
    type: z.literal("completions"),
    id: RequestId,
    session: SessionId,
    matches: z.array(z.string()).describe(`what may replace \`code\` from \`cursorStart\` to \`cursorEnd\`, sorted (names starting with \`_\` last, and only when the name typed starts with one); at most ${formatCount(MAX_COMPLETIONS)}; empty when nothing fits`),
    cursorStart: z.number().int().min(0).describe("where the text the matches replace starts (UTF-16 code units, as `cursor`)"),
    cursorEnd: z.number().int().min(0).describe("where it ends: the request's `cursor`"),
  })
  .describe("Reply to `complete`.")
export const Inspection = z
  .object({
    type: z.literal("inspection"),
    id: RequestId,
    session: SessionId,
    found: z.boolean().describe("`false` when nothing at the cursor names an object the session has (`text` is then empty)"),
    name: z.string().describe("the name looked up (`ZZ.random_element`), empty when the cursor was on none"),
    text: z.string().describe(`plain text, untrusted (show it as text): the object's signature, type and file, then its docstring (detail 0) or source (detail 1); at most ${formatCount(MAX_INSPECTION_CHARS)} characters`),
  })
  .describe("Reply to `inspect`.")

export const ServerMessage = z.discriminatedUnion("type", [Welcome, Pong, Ack, IdentityReply, ErrorMessage, RunOutput, RunRestarted, RunDone, Opened, Resumed, Output, Ended, Detached, FileList, Saved, Completions, Inspection])
export type ServerMessage = z.infer<typeof ServerMessage>
export type OutputMsg = z.infer<typeof OutputMessage>
export type EndReasonT = EndReason
export { limitOf }

/** What each end reason means, for the document (its fields come from the schema). */
export const END_REASONS: Record<EndReason["_tag"], string> = {
  Normal: "a stateless `run` finished",
  Timeout: "a time limit ended it: `limit` is `wall` (its life), `idle` (no request or output) or `exec` (one execution)",
  CpuLimit: "it used its CPU seconds (limit `cpu`)",
  OutOfMemory: "it went over its memory (limit `memory`): the kernel's OOM killer struck in its cgroup",
  Killed: "its kernel was killed by `signal` (e.g. the user's own `kill -9 -1`)",
  Crash: "its kernel failed: `detail` says how (a non-zero exit, its forkserver died)",
  ClosedByUser: "a `close`, or the user's code called `exit()`",
  ClosedByOperator: "an operator ended it (`sagews kill`)",
  WorkerStopped: "the worker running it stopped or restarted; its state is lost",
  WorkerLost: "the cluster lost the host of its worker (`host`): no heartbeat and no answer on any link within the bound of docs/OPERATIONS.md; its state is lost, and the host, if it comes back, ends it there too",
}

// ---------------- HTTP: POST /api/v1/execute ----------------
export const HttpExecuteRequest = z
  .object({
    code: Code,
    kernel: KernelKind.default("sage").describe("the kernel the cell runs in"),
    language: CellLanguage,
    cache: z.boolean().default(true).describe("may the result come from, and go to, the result cache"),
    limits: Limits.optional(),
  })
  .strict()
  .describe("The body of `POST /api/v1/execute`.")
export type HttpExecuteRequest = z.infer<typeof HttpExecuteRequest>
export const HttpExecuteReply = z
  .object({
    status: RunStatus,
    cached: z.boolean().describe("true when the outputs came from the result cache"),
    ms: z.number().describe("how long the run took, in ms"),
    outputs: z.array(OutputMessage).describe("every output message, in order, the last a `done` when the run completed"),
    message: z.string().optional().describe("what ended it when it did not end normally"),
    limit: z.string().optional().describe("status `limit`: which one"),
  })
  .describe("The `200` reply of `POST /api/v1/execute`.")
export type HttpExecuteReply = z.infer<typeof HttpExecuteReply>
export const HttpIdentityReply = z
  .object({
    client: z.string().describe("the server-issued client id"),
    token: z.string().describe("the identity's token, as in an `identity` reply: a page hands it to its SockJS connection's `hello`"),
    issuedAt: z.number().int().describe("ms since the epoch"),
    expiresAt: z.number().int().describe("ms since the epoch: the token is refused from then on"),
  })
  .describe("`GET /api/v1/identity`: the caller's identity (from its `sagews_id` cookie, or a new one set in that cookie).")
export type HttpIdentityReply = z.infer<typeof HttpIdentityReply>
export const HttpError = z
  .object({
    error: z.enum(["invalid", "limit", "no_worker", "failed"]).describe("as the SockJS codes"),
    message: z.string().describe("what happened and what to do"),
    limit: z.string().optional().describe("`429`: the admission limit"),
    max: z.number().optional().describe("`429`: its value"),
    retryAfterMs: z.number().optional().describe("`429`, `503`: when to try again (also in `Retry-After`, in seconds)"),
  })
  .describe("Any other reply of the HTTP API: `400`, `405`, `413`, `429`, `500`, `503`.")

/** "path: message" of the first zod issue, for an error reply. */
export const describeIssue = (error: z.ZodError): string => {
  const issue = error.issues[0]
  if (issue === undefined) return "invalid message"
  const path = issue.path.join(".")
  return `${path === "" ? "(message)" : path}: ${issue.message}`
}
