// `sagews sessions` and `sagews kill`, and the sessions line of `sagews status`: asks each worker's control socket
// (`<data>/run/*.control.sock`, src/protocol/operator.ts). A worker that does not answer is named; the others still show.
import { readdirSync } from "node:fs"
import { createConnection } from "node:net"
import { basename, join } from "node:path"
import type { z } from "zod"
import { dataPaths } from "../config/paths.ts"
import {
  CONTROL_SOCKET_SUFFIX,
  KillReply,
  SessionsReply,
  workerControlPath,
  type EndedInfo,
  type OperatorRequest,
  type SessionInfo,
  type SessionsReport,
} from "../protocol/operator.ts"
import type { EndReason } from "../protocol/reason.ts"
import { formatEndReason } from "../protocol/worker.ts"
import { alignColumns, formatSeconds } from "./status.ts"

/** How long one worker gets to answer: its report is an in-memory read, so a silent worker is hung or stopped. */
export const WORKER_ANSWER_MS = 3_000
/** The largest reply read: a report of a few thousand sessions fits many times over. */
const MAX_REPLY_BYTES = 16 * 1024 * 1024
/** A crash's detail is cut to this in tables (`--json` has all of it). */
const REASON_COLUMN_CHARS = 48

/** A worker control socket found in the run directory; `name` is its file's stem (`worker_1`). */
export interface WorkerSocket {
  readonly name: string
  readonly path: string
}

/** A worker that did not answer, and why in words an operator can act on. */
export interface Silent extends WorkerSocket {
  readonly error: string
}

/** Every `*.control.sock` under `<data>/run/`, in worker order (`worker_2` before `worker_10`). */
export const workerSockets = (dataDir: string): WorkerSocket[] => {
  const { run } = dataPaths(dataDir)
  let names: string[]
  try {
    names = readdirSync(run)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return []
    throw e
  }
  return names
    .filter((n) => n.endsWith(CONTROL_SOCKET_SUFFIX) && n.length > CONTROL_SOCKET_SUFFIX.length)
    .sort((a, b) => a.localeCompare(b, "en", { numeric: true }))
    .map((n) => ({ name: basename(n, CONTROL_SOCKET_SUFFIX), path: join(run, n) }))
}

const connectError = (e: NodeJS.ErrnoException): string => {
  switch (e.code) {
    case "ENOENT":
      return "no socket: the worker is not running"
    case "ECONNREFUSED":
      return "nothing listens on the socket: the worker is not running (a SIGKILLed worker leaves its socket behind)"
    case "EACCES":
      return "permission denied: the socket is its worker's user's only (run as root)"
    default:
      return e.message
  }
}

/** One request to one worker; rejects with an Error whose message says what went wrong. */
export const askWorker = <S extends z.ZodType>(path: string, request: OperatorRequest, schema: S, timeoutMs = WORKER_ANSWER_MS): Promise<z.infer<S>> =>
  new Promise((resolve, reject) => {
    const socket = createConnection(path)
    let buf = ""
    let settled = false
    const settle = (f: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      f()
    }
    const finish = () => {
      const line = buf.split("\n", 1)[0]!
      let raw: unknown
      try {
        raw = JSON.parse(line)
      } catch {
        return settle(() => reject(new Error(`the reply is not JSON: ${JSON.stringify(line.slice(0, 200))}`)))
      }
      const parsed = schema.safeParse(raw)
      if (!parsed.success) return settle(() => reject(new Error(`the reply is not what \`${request.op}\` expects: ${parsed.error.issues.map((i) => `${i.path.join(".") || "reply"}: ${i.message}`).join("; ")}`)))
      settle(() => resolve(parsed.data))
    }
    const timer = setTimeout(() => settle(() => reject(new Error(`did not answer within ${timeoutMs} ms (the worker is hung or stopped)`))), timeoutMs)
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.end(JSON.stringify(request) + "\n"))
    socket.on("data", (chunk: string) => {
      buf += chunk
      if (buf.includes("\n")) finish()
      else if (buf.length > MAX_REPLY_BYTES) settle(() => reject(new Error(`the reply is larger than ${MAX_REPLY_BYTES} bytes`)))
    })
    socket.on("end", () => (buf === "" ? settle(() => reject(new Error("closed the connection without answering"))) : finish()))
    socket.on("error", (e: NodeJS.ErrnoException) => settle(() => reject(new Error(connectError(e)))))
  })

/** The reports of every worker that answered, and the ones that did not. */
export interface Gathered {
  readonly reports: ReadonlyArray<{ readonly socket: WorkerSocket; readonly report: SessionsReport }>
  readonly silent: ReadonlyArray<Silent>
}

type Answer = { readonly socket: WorkerSocket; readonly report: SessionsReport } | { readonly socket: WorkerSocket; readonly error: string }

const askSessions = async (socket: WorkerSocket, timeoutMs = WORKER_ANSWER_MS): Promise<Answer> => {
  try {
    const reply = await askWorker(socket.path, { op: "sessions" }, SessionsReply, timeoutMs)
    return "error" in reply ? { socket, error: `refused: ${reply.error}` } : { socket, report: reply }
  } catch (e) {
    return { socket, error: (e as Error).message }
  }
}

export const gatherSessions = async (sockets: ReadonlyArray<WorkerSocket>, timeoutMs = WORKER_ANSWER_MS): Promise<Gathered> => {
  const answers = await Promise.all(sockets.map((s) => askSessions(s, timeoutMs)))
  return {
    reports: answers.flatMap((a) => ("report" in a ? [a] : [])),
    silent: answers.flatMap((a) => ("error" in a ? [{ ...a.socket, error: a.error }] : [])),
  }
}

/** The reason as a count's key: `Timeout(idle)`, `Killed(SIGKILL)`, but every crash as one `Crash`. */
export const reasonKey = (reason: EndReason): string => (reason._tag === "Crash" ? "Crash" : formatEndReason(reason))

const shortReason = (reason: EndReason): string => {
  const s = formatEndReason(reason)
  return s.length > REASON_COLUMN_CHARS ? `${s.slice(0, REASON_COLUMN_CHARS - 2)}…)` : s
}

const counts = (keys: ReadonlyArray<string>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const k of keys) out[k] = (out[k] ?? 0) + 1
  return out
}

/** A worker's sessions in numbers (`status --json`). */
export interface SessionCounts {
  readonly live: number
  readonly liveByKind: Record<string, number>
  readonly ended: number
  readonly endedByReason: Record<string, number>
}

export const sessionCounts = (report: SessionsReport): SessionCounts => ({
  live: report.live.length,
  liveByKind: counts(report.live.map((s) => s.kind)),
  ended: report.ended.length,
  endedByReason: counts(report.ended.map((e) => reasonKey(e.reason))),
})

const breakdown = (byKey: Record<string, number>): string => {
  const parts = Object.entries(byKey)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .map(([k, n]) => `${k} ${n}`)
  return parts.length > 0 ? ` (${parts.join(", ")})` : ""
}

/** A worker's sessions for `sagews status`, or why its control socket did not answer. */
export type WorkerSessions = SessionCounts | { readonly error: string }

/** `sessions   live 3 (sage 2, terminal 1) · ended in the last hour 5 (ClosedByUser 4, Timeout(idle) 1)` */
export const sessionsLine = (s: WorkerSessions): string =>
  "error" in s
    ? `sessions   unknown: its control socket did not answer: ${s.error}`
    : `sessions   live ${s.live}${breakdown(s.liveByKind)} · ended in the last hour ${s.ended}${breakdown(s.endedByReason)}`

/** The sessions of each of `workerIds` (`worker:1`), asked of their control sockets at once. */
export const workerSessions = async (dataDir: string, workerIds: ReadonlyArray<string>): Promise<Map<string, WorkerSessions>> => {
  const answers = await Promise.all(workerIds.map((id) => askSessions({ name: id, path: workerControlPath(dataDir, id) })))
  return new Map(answers.map((a) => [a.socket.name, "report" in a ? sessionCounts(a.report) : { error: a.error }]))
}

const ago = (ms: number): string => formatSeconds(Math.max(0, Math.round(ms / 1000)))

const limitsCell = (l: SessionInfo["limits"]): string =>
  `wall ${formatSeconds(l.wall)} idle ${formatSeconds(l.idle)} exec ${formatSeconds(l.exec)} mem ${l.memory}MiB cpu ${l.cpu}s`

/** Live sessions (oldest first), then the recent ends (latest first). */
export const formatSessions = (live: ReadonlyArray<SessionInfo>, ended: ReadonlyArray<EndedInfo>, now: number): string => {
  const liveRows = live.map((s) => [
    s.id, s.kind, s.user ?? "-", s.worker, s.uid?.toString() ?? "-", ago(now - s.startedAt), ago(s.idleMs), s.running ? "yes" : "no", limitsCell(s.limits),
  ])
  const endedRows = ended.map((e) => [e.id, e.kind ?? "-", e.worker, shortReason(e.reason), `${ago(now - e.endedAt)} ago`])
  return [
    live.length > 0 ? alignColumns(["ID", "KIND", "USER", "WORKER", "UID", "AGE", "IDLE", "RUNNING", "LIMITS"], liveRows).join("\n") : "no live sessions",
    "",
    ended.length > 0 ? ["ended in the last hour:", ...alignColumns(["ID", "KIND", "WORKER", "REASON", "ENDED"], endedRows)].join("\n") : "no session ended in the last hour",
  ].join("\n")
}

interface CommandIo {
  readonly dataDir: string
  readonly out: (line: string) => void
  readonly err: (line: string) => void
  /** how long each worker gets to answer (default WORKER_ANSWER_MS) */
  readonly timeoutMs?: number
}

const noWorkers = (dataDir: string): string =>
  `no worker control socket in ${dataPaths(dataDir).run}: is sagews running? (sagews status)`

const reportSilent = (silent: ReadonlyArray<Silent>, err: (line: string) => void) => {
  for (const s of silent) err(`sagews: ${s.name} (${s.path}) did not answer: ${s.error}`)
}

/** `sagews sessions [--json]`: exit 1 when no worker answers or one did not (the list is then incomplete). */
export const sessionsCommand = async (io: CommandIo & { readonly json: boolean; readonly now?: number }): Promise<number> => {
  const sockets = workerSockets(io.dataDir)
  if (sockets.length === 0) {
    io.err(`sagews: ${noWorkers(io.dataDir)}`)
    return 1
  }
  const { reports, silent } = await gatherSessions(sockets, io.timeoutMs)
  const live = reports.flatMap((r) => r.report.live).sort((a, b) => a.startedAt - b.startedAt)
  const ended = reports.flatMap((r) => r.report.ended).sort((a, b) => b.endedAt - a.endedAt)
  if (io.json) io.out(JSON.stringify({ live, ended, unreachable: silent.map((s) => ({ worker: s.name, socket: s.path, error: s.error })) }))
  else io.out(formatSessions(live, ended, io.now ?? Date.now()))
  reportSilent(silent, io.err)
  return silent.length > 0 ? 1 : 0
}

/** `sagews kill SESSION`: the worker that runs it ends it with reason ClosedByOperator. */
export const killCommand = async (io: CommandIo & { readonly session: string }): Promise<number> => {
  const sockets = workerSockets(io.dataDir)
  if (sockets.length === 0) {
    io.err(`sagews: ${noWorkers(io.dataDir)}`)
    return 1
  }
  const { reports, silent } = await gatherSessions(sockets, io.timeoutMs)
  const owners = reports.flatMap(({ socket, report }) => report.live.filter((s) => s.id === io.session).map((s) => ({ socket, session: s })))
  if (owners.length === 0) {
    reportSilent(silent, io.err)
    const unsure = silent.length > 0 ? ` that answered (${silent.map((s) => s.name).join(", ")} did not: it may be there)` : ""
    io.err(`sagews: no live session ${io.session} on any worker${unsure}; \`sagews sessions\` lists them`)
    return 1
  }
  let failed = 0
  for (const { socket, session } of owners) {
    try {
      const reply = await askWorker(socket.path, { op: "kill", session: io.session }, KillReply, io.timeoutMs)
      if ("error" in reply) throw new Error(reply.error)
      io.out(`sagews: ended session ${session.id} (${session.kind}${session.user !== undefined ? ` of ${session.user}` : ""}) on ${session.worker}: ClosedByOperator; its page says "an operator ended this session"`)
    } catch (e) {
      failed += 1
      io.err(`sagews: could not end session ${session.id} on ${session.worker}: ${(e as Error).message}`)
    }
  }
  return failed > 0 ? 1 : 0
}
