// The worker's `sessions`: a dynamic supervisor of the engine (supervisors/) whose temporary children are the
// sessions (session-child.ts), capped per worker and per user; the live ones by id for the backend links, the
// output of ended ones kept for a resume, and the operator's view of both (control.ts).
import { join } from "node:path"
import { Clock, Context, Data, Effect, Layer } from "effect"
import type { DynamicSupervisorHandle } from "../../supervisors/dynamic.ts"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason, formatExit } from "../../supervisors/exit.ts"
import { ENDED_WINDOW_MS, type SessionsReport } from "../protocol/operator.ts"
import { toWire } from "../protocol/reason.ts"
import type { KernelKind } from "../protocol/worker.ts"
import { WorkerSettings } from "./config.ts"
import type { SessionsView } from "./control.ts"
import { containSpecOf } from "./forkserver.ts"
import { KernelPools } from "./kernels.ts"
import { KernelSession } from "./kernel-session.ts"
import { log } from "./log.ts"
import type { OutputLog } from "./outlog.ts"
import type { Session, Sink } from "./session.ts"
import { type OpenRequest, sessionChild, type SessionDeps } from "./session-child.ts"
import { UidPool } from "./uids.ts"

export type { OpenRequest }

/** A session could not be opened: `message` is for the user, as the `error` frame carries it. */
export class SessionRefused extends Data.TaggedError("SessionRefused")<{
  readonly session: string
  readonly reason: "Stopping" | "Exists" | "WorkerFull" | "UserFull" | "StartFailed"
  readonly message: string
}> {}

export interface SessionsShape {
  readonly isolation: "full" | "reduced"
  readonly kinds: ReadonlyArray<KernelKind>
  /** Starts a session attached to `sink`; succeeds once it runs. */
  readonly open: (request: OpenRequest, sink: Sink) => Effect.Effect<Session, SessionRefused>
  readonly get: (id: string) => Session | undefined
  /** the ids of the live sessions */
  readonly ids: () => ReadonlyArray<string>
  /** the output of a session that ended less than `keepEnded` ms ago (for a late resume) */
  readonly endedLog: (id: string) => OutputLog | undefined
  /** Ends a live session with `reason` (ClosedByUser, ClosedByOperator, Normal for a finished run); false if none. */
  readonly close: (id: string, reason: ExitReason) => Effect.Effect<boolean>
  /** A backend connection went away: its sessions keep running, detached, until resumed or a limit ends them. */
  readonly detach: (sink: Sink) => void
  /** Ends every session with WorkerStopped, all at once, and waits until each is gone. */
  readonly shutdown: Effect.Effect<void>
  /** what operators see (`sagews sessions`, `sagews kill`) */
  readonly view: SessionsView
}

export class Sessions extends Context.Service<Sessions, SessionsShape>()("sagews/worker/Sessions") {
  static readonly layer = Layer.effect(Sessions, Effect.suspend(() => makeSessions))
}

const makeSessions = Effect.gen(function*() {
  const config = yield* WorkerSettings
  const pools = yield* KernelPools
  const root = process.getuid?.() === 0
  const live = new Map<string, Session>()
  const ended = new Map<string, { readonly session: Session; readonly endedAt: number }>()
  let homes = 0
  let stopping = false

  /** CPU is weighted per user: each of a user's n sessions gets 1/n of one session's weight. */
  const shareCpu = (user: string | undefined): void => {
    const mine = [...live.values()].filter((s) => s.cgroup !== undefined && s.user === user)
    for (const s of mine) s.cgroup?.setCpuShare(user === undefined ? 1 : mine.length)
  }
  const clock = yield* Clock.Clock
  const prune = (): void => {
    const now = clock.currentTimeMillisUnsafe()
    for (const [id, kept] of ended) if (now - kept.endedAt > config.keepEnded) ended.delete(id)
  }

  const deps: SessionDeps = {
    config,
    contained: root,
    containSpec: containSpecOf(config),
    uids: root ? new UidPool(config.uidRange.first, config.uidRange.last) : undefined,
    cgroups: pools.cgroups,
    acquire: pools.acquire,
    newHome: () => join(config.dataDir, "sessions", `s${process.pid}-${++homes}`),
    onLive: (session) => {
      live.set(session.id, session)
      shareCpu(session.user)
    },
    onGone: (session, reason) => {
      live.delete(session.id)
      shareCpu(session.user)
      prune()
      ended.set(session.id, { session, endedAt: clock.currentTimeMillisUnsafe() })
      log("info", `ended ${session.describe()}: ${formatExit(reason)}`, { user: session.user })
    },
  }

  const supervisor: DynamicSupervisorHandle = yield* Effect.orDie(makeDynamic({
    id: `${config.id}/sessions`,
    maxChildren: config.maxSessions,
    maxChildrenPerKey: config.maxSessionsPerUser,
    keepEnded: ENDED_WINDOW_MS,
  }))

  const refuse = (session: string, reason: SessionRefused["reason"], message: string) => new SessionRefused({ session, reason, message })

  const open = Effect.fn("Sessions.open")(function*(request: OpenRequest, sink: Sink) {
    const id = request.session
    prune()
    if (stopping) return yield* refuse(id, "Stopping", "the worker is stopping; open the session on another worker")
    if (live.has(id) || ended.has(id)) return yield* refuse(id, "Exists", `session ${id} already exists on this worker`)
    let opened: Session | undefined
    const spec = sessionChild(deps, request, sink, (session) => (opened = session))
    yield* supervisor.startChild(spec, request.user !== undefined ? { key: request.user } : undefined).pipe(
      Effect.mapError((error) => {
        switch (error._tag) {
          case "MaxChildrenReached":
            return refuse(id, "WorkerFull", `this worker runs its maximum of ${config.maxSessions} sessions; close one or try later`)
          case "MaxChildrenPerKeyReached":
            return refuse(id, "UserFull", `user ${request.user} already has ${config.maxSessionsPerUser} sessions on this worker (the per-user maximum); close one first`)
          case "ChildStartFailed":
            return refuse(id, "StartFailed", error.reason._tag === "Crash" ? error.reason.detail : `the session did not start: ${formatExit(error.reason)}`)
          case "SupervisorStopped":
            return refuse(id, "Stopping", "the worker is stopping; open the session on another worker")
          case "InvalidSpec":
            // the only spec a session can get wrong: an id whose child is still starting (not live yet)
            return refuse(id, "Exists", `session ${id} already exists on this worker`)
        }
      }),
    )
    if (opened === undefined) return yield* refuse(id, "StartFailed", `session ${id} ended as it started`)
    return opened
  })

  const close = (id: string, reason: ExitReason): Effect.Effect<boolean> =>
    live.has(id)
      ? supervisor.terminateChild(id, reason).pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false)))
      : Effect.succeed(false)

  const shutdown = Effect.suspend(() => {
    stopping = true
    return supervisor.stopWith(ExitReason.WorkerStopped())
  })
  yield* Effect.addFinalizer(() => shutdown)

  const report: Effect.Effect<SessionsReport> = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const records = yield* supervisor.ended
    return {
      worker: config.id,
      live: [...live.values()].map((s) => ({
        id: s.id,
        kind: s.kind,
        ...(s.user !== undefined ? { user: s.user } : {}),
        worker: config.id,
        ...(s.uid !== undefined ? { uid: s.uid } : {}),
        ...(s.pid !== undefined ? { pid: s.pid } : {}),
        startedAt: s.startedAt,
        idleMs: Math.max(0, now - s.activity.lastActivity),
        running: s instanceof KernelSession && s.busy,
        limits: s.limits,
      })),
      ended: records.filter((r) => now - r.endedAt <= ENDED_WINDOW_MS).map((r) => {
        const kind = ended.get(r.id)?.session.kind
        return {
          id: r.id,
          ...(kind !== undefined ? { kind } : {}),
          ...(r.key !== undefined ? { user: r.key } : {}),
          worker: config.id,
          reason: toWire(r.reason),
          ...(r.startedAt !== undefined ? { startedAt: r.startedAt } : {}),
          endedAt: r.endedAt,
        }
      }),
    }
  })

  return {
    isolation: root && config.network === "isolated" ? "full" : "reduced",
    kinds: pools.kinds,
    open,
    get: (id) => live.get(id),
    ids: () => [...live.keys()],
    endedLog: (id) => {
      prune()
      return ended.get(id)?.session.log
    },
    close,
    detach: (sink) => {
      for (const session of live.values()) if (session.sink === sink) session.sink = undefined
    },
    shutdown,
    view: {
      report,
      kill: (id) => Effect.map(close(id, ExitReason.ClosedByOperator()), (killed) => (killed ? "killed" : "unknown")),
    },
  } satisfies SessionsShape
})
