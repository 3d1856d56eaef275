// Routes each worker frame that names a session to whoever on this backend handles that session (a stateless
// run or a stateful session), and tells them when their worker connection is lost.
import type { WorkerFrame } from "../protocol/worker.ts"

export interface SessionHandler {
  readonly workerId: string
  frame(frame: WorkerFrame): void
  lost(why: string): void
  /** the worker connection is back (stateful sessions resume from their last seq) */
  reconnected?(): void
}

export class FrameRouter {
  private readonly handlers = new Map<string, SessionHandler>()

  set(session: string, handler: SessionHandler): void {
    this.handlers.set(session, handler)
  }

  delete(session: string, handler?: SessionHandler): void {
    if (handler === undefined || this.handlers.get(session) === handler) this.handlers.delete(session)
  }

  get(session: string): SessionHandler | undefined {
    return this.handlers.get(session)
  }

  dispatch(frame: WorkerFrame): void {
    if (!("session" in frame) || frame.session === undefined) return
    this.handlers.get(frame.session)?.frame(frame)
  }

  lost(workerId: string, why: string): void {
    for (const handler of [...this.handlers.values()]) if (handler.workerId === workerId) handler.lost(why)
  }

  reconnected(workerId: string): void {
    for (const handler of [...this.handlers.values()]) if (handler.workerId === workerId) handler.reconnected?.()
  }

  size(): number {
    return this.handlers.size
  }
}
