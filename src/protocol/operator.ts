// The operator's line to a worker: the sessions it runs, the ones that ended lately, and ending one (`sagews kill`).
// Newline-delimited JSON over the worker's control socket; the worker (src/worker/control.ts) and the CLI share these.
import { join } from "node:path"
import { z } from "zod"
import { EndReason } from "./reason.ts"
import { SessionKind } from "./worker.ts"

/** How far back a report's `ended` list reaches: the ends an operator asks about are recent ones. */
export const ENDED_WINDOW_MS = 60 * 60 * 1000
/** The longest request line a worker reads: requests are tiny; anything bigger is not from our CLI. */
export const MAX_REQUEST_BYTES = 64 * 1024
/** The file name every worker control socket ends with, under `<data>/run/`. */
export const CONTROL_SOCKET_SUFFIX = ".control.sock"

/** Where worker `workerId` listens: `<dataDir>/run/worker_1.control.sock` for `worker:1`. */
export const workerControlPath = (dataDir: string, workerId: string): string =>
  join(dataDir, "run", `${workerId.replace(/[^\w.-]/g, "_")}${CONTROL_SOCKET_SUFFIX}`)

const SessionId = z.string().min(1).max(128)

/** The limits a session runs under, as the worker applied them (seconds; memory in MiB; CPU seconds). */
export const AppliedLimits = z.object({ wall: z.number(), idle: z.number(), exec: z.number(), memory: z.number(), cpu: z.number() })
export type AppliedLimits = z.infer<typeof AppliedLimits>

export const SessionInfo = z.object({
  id: SessionId,
  kind: SessionKind,
  /** the client identity the backend opened it for */
  user: z.string().optional(),
  worker: z.string(),
  /** the uid its code runs as (absent when the worker is not root) */
  uid: z.number().int().optional(),
  pid: z.number().int().optional(),
  /** epoch ms */
  startedAt: z.number(),
  idleMs: z.number().min(0),
  /** an execution is computing */
  running: z.boolean(),
  limits: AppliedLimits,
})
export type SessionInfo = z.infer<typeof SessionInfo>

export const EndedInfo = z.object({
  id: SessionId,
  kind: SessionKind.optional(),
  user: z.string().optional(),
  worker: z.string(),
  reason: EndReason,
  startedAt: z.number().optional(),
  /** epoch ms */
  endedAt: z.number(),
})
export type EndedInfo = z.infer<typeof EndedInfo>

/** One worker's answer to `sessions`: what is live, and what ended within ENDED_WINDOW_MS. */
export const SessionsReport = z.object({ worker: z.string(), live: z.array(SessionInfo), ended: z.array(EndedInfo) })
export type SessionsReport = z.infer<typeof SessionsReport>

export const OperatorRequest = z.discriminatedUnion("op", [
  z.object({ op: z.literal("sessions") }).strict(),
  /** the worker ends the session with reason ClosedByOperator */
  z.object({ op: z.literal("kill"), session: SessionId }).strict(),
])
export type OperatorRequest = z.infer<typeof OperatorRequest>
const OPS = OperatorRequest.options.map((o) => o.shape.op.value)

export const ErrorReply = z.object({ error: z.string() })
export type ErrorReply = z.infer<typeof ErrorReply>
export const KillReply = z.union([z.object({ ok: z.literal(true) }), ErrorReply])
export type KillReply = z.infer<typeof KillReply>
export const SessionsReply = z.union([SessionsReport, ErrorReply])
export type SessionsReply = z.infer<typeof SessionsReply>

/** The error a worker gives for a kill of a session it does not run. */
export const noLiveSession = (session: string, worker: string): string => `no live session ${session} on ${worker}`

/** One request line, validated; the error names what was wrong (not JSON, which field, the op it got). */
export const parseOperatorRequest = (line: string): { readonly ok: true; readonly request: OperatorRequest } | { readonly ok: false; readonly error: string } => {
  let raw: unknown
  try {
    raw = JSON.parse(line)
  } catch (e) {
    return { ok: false, error: `request is not JSON (${(e as Error).message}): ${JSON.stringify(line.slice(0, 80))}` }
  }
  const parsed = OperatorRequest.safeParse(raw)
  if (parsed.success) return { ok: true, request: parsed.data }
  const op = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>).op : undefined
  const issues = parsed.error.issues.map((i) =>
    i.path[0] === "op" && i.code === "invalid_union"
      ? `op ${op === undefined ? "is missing" : `${JSON.stringify(op)} is unknown`}; expected one of ${OPS.map((o) => JSON.stringify(o)).join(", ")}`
      : `${i.path.join(".") || "request"}: ${i.message}`,
  )
  return { ok: false, error: `bad request: ${issues.join("; ")}` }
}
