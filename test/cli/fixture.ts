// Fake workers for the CLI tests: an in-memory SessionsView whose kill ends a session with ClosedByOperator,
// a temporary data directory, and a raw client that speaks to a control socket byte by byte.
import { mkdtempSync, rmSync } from "node:fs"
import { createConnection } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import type { EndedInfo, SessionInfo } from "../../src/protocol/operator.ts"
import type { SessionsView } from "../../src/worker/control.ts"

export const LIMITS = { wall: 3600, idle: 600, exec: 30, memory: 2048, cpu: 60 }

export const session = (id: string, worker: string, extra: Partial<SessionInfo> = {}): SessionInfo => ({
  id, kind: "sage", worker, startedAt: Date.now() - 300_000, idleMs: 12_000, running: false, limits: LIMITS, ...extra,
})

export const ended = (id: string, worker: string, reason: EndedInfo["reason"], agoMs = 120_000): EndedInfo => ({
  id, kind: "python", worker, reason, startedAt: Date.now() - agoMs - 60_000, endedAt: Date.now() - agoMs,
})

/** A worker's sessions in memory; `kill` moves a live one to `ended` with reason ClosedByOperator. */
export const fakeWorker = (worker: string, live: ReadonlyArray<SessionInfo>, done: ReadonlyArray<EndedInfo> = []) => {
  const state = { live: [...live], ended: [...done], kills: [] as string[] }
  const view: SessionsView = {
    report: Effect.sync(() => ({ worker, live: [...state.live], ended: [...state.ended] })),
    kill: (id) =>
      Effect.sync(() => {
        state.kills.push(id)
        const i = state.live.findIndex((s) => s.id === id)
        if (i < 0) return "unknown" as const
        const [s] = state.live.splice(i, 1)
        state.ended.push({ id, kind: s!.kind, user: s!.user, worker, reason: { _tag: "ClosedByOperator" }, startedAt: s!.startedAt, endedAt: Date.now() })
        return "killed" as const
      }),
  }
  return { view, state }
}

/** A data directory for one test, removed when the scope closes. */
export const tempDataDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "sagews-cli-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })),
)

/**
 * Writes `chunks` to the socket (then half-closes unless `keepOpen`), and collects reply lines until the server
 * closes the connection or `lines` replies came.
 */
export const talk = (path: string, chunks: ReadonlyArray<string>, options: { readonly lines?: number; readonly keepOpen?: boolean } = {}) =>
  Effect.promise(
    () =>
      new Promise<{ readonly replies: unknown[]; readonly closedByServer: boolean }>((resolve, reject) => {
        const socket = createConnection(path)
        let buf = ""
        const replies = () => buf.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as unknown)
        socket.setEncoding("utf8")
        socket.on("connect", () => {
          for (const c of chunks) socket.write(c)
          if (!options.keepOpen) socket.end()
        })
        socket.on("data", (d: string) => {
          buf += d
          if (options.lines !== undefined && replies().length >= options.lines) {
            socket.destroy()
            resolve({ replies: replies(), closedByServer: false })
          }
        })
        socket.on("end", () => resolve({ replies: replies(), closedByServer: true }))
        socket.on("error", reject)
      }),
  )
