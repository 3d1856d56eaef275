// The Router service: routes each worker frame that names a session to whoever on this backend handles that session
// (a stateless run or a stateful session), and tells them when their worker link is lost and when it is back.
import { Context, Layer } from "effect"
import type { WorkerFrame } from "../protocol/worker.ts"

export interface SessionHandler {
  readonly workerId: string
  frame(frame: WorkerFrame): void
  lost(why: string): void
  /** the worker connection is back (stateful sessions resume from their last seq) */
  reconnected?(): void
  /** the cluster declared the worker's host lost: a stateful session ends (WorkerLost); without this, `lost` */
  hostLost?(host: string): void
}

/** A stateful session's handler resumes after a reconnect; a stateless run's does not (it fails instead). */
export const isStateful = (handler: SessionHandler | undefined): boolean => handler?.reconnected !== undefined

export interface FrameRouter {
  set(session: string, handler: SessionHandler): void
  /** forgets `session`; with `handler`, only while that handler is still the one routed to */
  delete(session: string, handler?: SessionHandler): void
  get(session: string): SessionHandler | undefined
  dispatch(frame: WorkerFrame): void
  lost(workerId: string, why: string): void
  reconnected(workerId: string): void
  /** the cluster declared `workerId`'s host lost */
  workerLost(workerId: string, host: string): void
  size(): number
}

export const makeRouter = (): FrameRouter => {
  const handlers = new Map<string, SessionHandler>()
  const ofWorker = (workerId: string): Array<SessionHandler> => [...handlers.values()].filter((h) => h.workerId === workerId)
  return {
    set: (session, handler) => void handlers.set(session, handler),
    delete: (session, handler) => {
      if (handler === undefined || handlers.get(session) === handler) handlers.delete(session)
    },
    get: (session) => handlers.get(session),
    dispatch: (frame) => {
      if (!("session" in frame) || frame.session === undefined) return
      handlers.get(frame.session)?.frame(frame)
    },
    lost: (workerId, why) => {
      for (const handler of ofWorker(workerId)) handler.lost(why)
    },
    reconnected: (workerId) => {
      for (const handler of ofWorker(workerId)) handler.reconnected?.()
    },
    workerLost: (workerId, host) => {
      for (const handler of ofWorker(workerId)) handler.hostLost !== undefined ? handler.hostLost(host) : handler.lost(`its host ${host} was lost`)
    },
    size: () => handlers.size,
  }
}

export class Router extends Context.Service<Router, FrameRouter>()("sagews/backend/Router") {
  static readonly layer = Layer.sync(Router, makeRouter)
}
