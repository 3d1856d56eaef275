// Zod schemas of every backend ⇄ worker frame (docs/PROTOCOL.md, "Backend ⇄ worker"). Both ends validate with these.
// The worker speaks first (challenge); nothing but `auth` is accepted until the backend has answered it.
import { z } from "zod"

export const PROTOCOL_VERSION = 1

const SessionId = z.string().min(1).max(128)
const RequestId = z.string().min(1).max(128)
export const KernelKind = z.enum(["sage", "python"])
export type KernelKind = z.infer<typeof KernelKind>
export const SessionKind = z.enum(["sage", "python", "terminal"])
export type SessionKind = z.infer<typeof SessionKind>

/** Per-session limits a backend may ask for; each is capped by the worker's own configured limit. */
export const SessionLimits = z
  .object({
    /** seconds the session may live */
    wall: z.number().positive(),
    /** seconds without activity (a computing kernel is never idle) */
    idle: z.number().positive(),
    /** seconds one execution may take */
    exec: z.number().positive(),
    /** MiB of address space user code may add on top of the kernel */
    memory: z.number().positive(),
    /** CPU seconds per process */
    cpu: z.number().positive(),
  })
  .partial()
  .strict()
export type SessionLimits = z.infer<typeof SessionLimits>

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
  })
  .strict()
export const Execute = z.object({ type: z.literal("execute"), session: SessionId, id: RequestId, code: z.string() }).strict()
export const Run = z
  .object({
    type: z.literal("run"),
    session: SessionId,
    kernel: KernelKind,
    code: z.string(),
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
  Auth, Open, Execute, Run, Interrupt, Close, Resume, InteractChange, TerminalInput, TerminalResize, Ping,
])
export type BackendFrame = z.infer<typeof BackendFrame>

// ---- worker -> backend ----
export const EndReason = z.discriminatedUnion("_tag", [
  z.object({ _tag: z.literal("Timeout"), limit: z.enum(["wall", "idle", "exec"]) }),
  z.object({ _tag: z.literal("OutOfMemory") }),
  z.object({ _tag: z.literal("CpuLimit") }),
  z.object({ _tag: z.literal("Killed"), signal: z.string() }),
  z.object({ _tag: z.literal("Crashed"), detail: z.string() }),
  z.object({ _tag: z.literal("ClosedByUser") }),
  /** a stateless `run` finished */
  z.object({ _tag: z.literal("Completed") }),
  z.object({ _tag: z.literal("WorkerStopped") }),
])
export type EndReason = z.infer<typeof EndReason>

export const formatEndReason = (reason: EndReason): string => {
  switch (reason._tag) {
    case "Timeout":
      return `Timeout(${reason.limit})`
    case "Killed":
      return `Killed(${reason.signal})`
    case "Crashed":
      return `Crashed(${reason.detail})`
    default:
      return reason._tag
  }
}

export const Control = z.object({
  name: z.string(),
  control: z.enum(["slider", "input_box", "checkbox", "selector"]),
  label: z.string(),
  default: z.union([z.string(), z.number(), z.boolean(), z.null()]),
  min: z.number().optional(),
  max: z.number().optional(),
  step: z.number().optional(),
  values: z.array(z.union([z.string(), z.number(), z.boolean()])).optional(),
})
export type Control = z.infer<typeof Control>

export const OutputMessage = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("stdout"), text: z.string() }),
  z.object({ kind: z.literal("stderr"), text: z.string() }),
  /** mime type -> data; image/png is base64 */
  z.object({ kind: z.literal("display"), data: z.record(z.string(), z.string()) }),
  z.object({ kind: z.literal("error"), ename: z.string(), evalue: z.string(), traceback: z.array(z.string()) }),
  z.object({ kind: z.literal("done"), status: z.enum(["ok", "error", "interrupted"]) }),
  z.object({ kind: z.literal("interact"), interact: z.string(), controls: z.array(Control) }),
  z.object({ kind: z.literal("terminal"), data: z.string() }),
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

export const WorkerFrame = z.discriminatedUnion("type", [Challenge, AuthOk, Opened, Output, Ended, Resumed, ErrorFrame, Pong])
export type WorkerFrame = z.infer<typeof WorkerFrame>
export type OutputFrame = z.infer<typeof Output>
export type EndedFrame = z.infer<typeof Ended>
