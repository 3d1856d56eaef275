// Zod schemas of every browser ⇄ backend message (docs/PROTOCOL.md), shared by the backend and the client library.
// Requests carry a client-chosen `id`; replies repeat it; session output carries the worker's sequence number `seq`.
import { z } from "zod"
import { Control, EndReason, Ended as WorkerEnded, KernelKind, Output as WorkerOutput, OutputMessage, SessionKind, SessionLimits } from "./worker.ts"

export const BROWSER_PROTOCOL_VERSION = 1
/** Largest SockJS message the backend reads; a bigger one gets an `error` (code "invalid") and is dropped. */
export const MAX_MESSAGE_BYTES = 1024 * 1024
/** Largest `code` of one execution. */
export const MAX_CODE_CHARS = 256 * 1024

export { Control, EndReason, KernelKind, OutputMessage, SessionKind }

const RequestId = z.string().min(1).max(128)
const SessionId = z.string().min(1).max(128)
const Code = z.string().max(MAX_CODE_CHARS)

/** Limits a client may ask for (seconds, MiB); each is capped by the backend's and the worker's own. */
export const Limits = SessionLimits
export type Limits = z.infer<typeof Limits>

// ---------------- browser -> backend ----------------
/** Largest identity token the backend reads (one it issues is about 90 characters). */
export const MAX_TOKEN_CHARS = 512
const Token = z.string().min(1).max(MAX_TOKEN_CHARS)
/**
 * Asks for the connection's identity, or presents one issued earlier (`token`, from an `identity` reply or the
 * `sagews_id` cookie) to be counted as the same client. The client id is always the server's, never the client's word.
 */
export const Hello = z.object({ type: z.literal("hello"), id: RequestId, token: Token.optional() }).strict()
export const Ping = z.object({ type: z.literal("ping"), id: RequestId }).strict()
/** Stateless: one execution in a fresh kernel, served from the cache when allowed. */
export const Run = z
  .object({ type: z.literal("run"), id: RequestId, kernel: KernelKind.default("sage"), code: Code, cache: z.boolean().default(true), limits: Limits.optional() })
  .strict()
export const Open = z
  .object({
    type: z.literal("open"),
    id: RequestId,
    kernel: SessionKind.default("sage"),
    limits: Limits.optional(),
    cols: z.number().int().min(1).max(1000).optional(),
    rows: z.number().int().min(1).max(1000).optional(),
  })
  .strict()
export const Execute = z.object({ type: z.literal("execute"), id: RequestId, session: SessionId, code: Code }).strict()
export const Interrupt = z.object({ type: z.literal("interrupt"), id: RequestId, session: SessionId }).strict()
export const Close = z.object({ type: z.literal("close"), id: RequestId, session: SessionId }).strict()
/** Re-attach to a session (after a reconnect, on any backend); output with seq >= fromSeq is sent again. */
export const Resume = z.object({ type: z.literal("resume"), id: RequestId, session: SessionId, fromSeq: z.number().int().min(1) }).strict()
export const Interact = z
  .object({
    type: z.literal("interact"),
    id: RequestId,
    session: SessionId,
    interact: z.string().min(1).max(64),
    control: z.string().min(1).max(128),
    value: z.union([z.string().max(65536), z.number(), z.boolean()]),
  })
  .strict()
export const TerminalInput = z.object({ type: z.literal("terminalInput"), id: RequestId, session: SessionId, data: z.string().max(65536) }).strict()
export const TerminalResize = z
  .object({ type: z.literal("terminalResize"), id: RequestId, session: SessionId, cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) })
  .strict()

export const ClientMessage = z.discriminatedUnion("type", [Hello, Ping, Run, Open, Execute, Interrupt, Close, Resume, Interact, TerminalInput, TerminalResize])
export type ClientMessage = z.infer<typeof ClientMessage>
/** What a client writes (defaults may be left out). */
export type ClientRequest = z.input<typeof ClientMessage>

// ---------------- backend -> browser ----------------
/** Sent by the backend as soon as the connection opens. */
export const Welcome = z.object({ type: z.literal("welcome"), backend: z.string(), version: z.number().int(), kernels: z.array(KernelKind) })
export const Pong = z.object({ type: z.literal("pong"), id: RequestId, backend: z.string() })
/** A request was accepted (execute, interrupt, close, interact, terminal input). */
export const Ack = z.object({ type: z.literal("ack"), id: RequestId })
/**
 * Reply to `hello`: the identity admission control counts this connection by from now on. `token` is signed by the
 * service: present it in a later `hello` (after a reconnect, on any backend) to stay the same client until `expiresAt`.
 */
export const IdentityReply = z.object({
  type: z.literal("identity"),
  id: RequestId,
  /** the server-issued client id */
  client: z.string(),
  token: z.string(),
  /** ms since the epoch */
  issuedAt: z.number().int(),
  expiresAt: z.number().int(),
})
export const ErrorCode = z.enum(["invalid", "limit", "identity", "unknown_session", "no_worker", "failed"])
export type ErrorCode = z.infer<typeof ErrorCode>
export const ErrorMessage = z.object({
  type: z.literal("error"),
  /** the request's id, or null when the message could not be read far enough to find one */
  id: z.string().nullable(),
  code: ErrorCode,
  message: z.string(),
  /** code "limit": which limit refused the request, its value, and when to try again */
  limit: z.string().optional(),
  max: z.number().optional(),
  retryAfterMs: z.number().int().optional(),
  session: z.string().optional(),
})
export type ErrorMessage = z.infer<typeof ErrorMessage>
/** One output message of a stateless `run`, in order (seq from 1). */
export const RunOutput = z.object({ type: z.literal("runOutput"), id: RequestId, seq: z.number().int(), msg: OutputMessage })
export const RunStatus = z.enum(["ok", "error", "interrupted", "cancelled", "limit", "failed"])
export type RunStatus = z.infer<typeof RunStatus>
/** The end of a stateless `run`: after every runOutput of it. */
export const RunDone = z.object({
  type: z.literal("runDone"),
  id: RequestId,
  status: RunStatus,
  /** true when the outputs came from the result cache */
  cached: z.boolean(),
  ms: z.number(),
  /** what ended it when it did not end normally (a limit, a newer run, a lost worker) */
  message: z.string().optional(),
  limit: z.string().optional(),
})
export const Opened = z.object({ type: z.literal("opened"), id: RequestId, session: SessionId, kernel: SessionKind })
export const Resumed = z.object({
  type: z.literal("resumed"),
  id: RequestId,
  session: SessionId,
  kernel: SessionKind,
  /** the first seq that follows (lower than asked only if older output was no longer kept) */
  fromSeq: z.number().int(),
  lastSeq: z.number().int(),
})
/** Session output; `id` is the execute request it belongs to (`interact:<name>` for an interact re-run). */
export const Output = WorkerOutput
/** The session is over; `limit` names the limit that ended it, if one did. Always the last seq of a session. */
export const Ended = WorkerEnded.extend({ limit: z.string().optional() })

export const ServerMessage = z.discriminatedUnion("type", [Welcome, Pong, Ack, IdentityReply, ErrorMessage, RunOutput, RunDone, Opened, Resumed, Output, Ended])
export type ServerMessage = z.infer<typeof ServerMessage>
export type OutputMsg = z.infer<typeof OutputMessage>
export type EndReasonT = z.infer<typeof EndReason>

/** The name of the limit behind an end reason, if one was. */
export const limitOf = (reason: EndReasonT): string | undefined =>
  reason._tag === "Timeout" ? reason.limit : reason._tag === "OutOfMemory" ? "memory" : reason._tag === "CpuLimit" ? "cpu" : undefined

// ---------------- HTTP: POST /api/v1/execute ----------------
export const HttpExecuteRequest = z
  .object({ code: Code, kernel: KernelKind.default("sage"), cache: z.boolean().default(true), limits: Limits.optional() })
  .strict()
export type HttpExecuteRequest = z.infer<typeof HttpExecuteRequest>
export const HttpExecuteReply = z.object({
  status: RunStatus,
  cached: z.boolean(),
  ms: z.number(),
  outputs: z.array(OutputMessage),
  message: z.string().optional(),
  limit: z.string().optional(),
})
export type HttpExecuteReply = z.infer<typeof HttpExecuteReply>
/** GET /api/v1/identity: the caller's identity (from its `sagews_id` cookie, or a new one set in that cookie). */
export const HttpIdentityReply = z.object({ client: z.string(), token: z.string(), issuedAt: z.number().int(), expiresAt: z.number().int() })
export type HttpIdentityReply = z.infer<typeof HttpIdentityReply>
export const HttpError = z.object({ error: ErrorCode, message: z.string(), limit: z.string().optional(), max: z.number().optional(), retryAfterMs: z.number().optional() })

/** "path: message" of the first zod issue, for an error reply. */
export const describeIssue = (error: z.ZodError): string => {
  const issue = error.issues[0]
  if (issue === undefined) return "invalid message"
  const path = issue.path.join(".")
  return `${path === "" ? "(message)" : path}: ${issue.message}`
}
