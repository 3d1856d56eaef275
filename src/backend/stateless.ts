// Stateless single-cell execution, shared by SockJS `run` and `POST /api/v1/execute`: admission, the result cache,
// one fresh kernel on the least loaded worker, outputs streamed as they come. Only clean, complete runs are cached.
import { randomUUID } from "node:crypto"
import type { WorkerFrame } from "../protocol/worker.ts"
import { limitOf, type KernelKind, type Limits, type OutputMsg, type RunStatus } from "../protocol/browser.ts"
import { cacheKey, optedOut } from "./cache.ts"
import type { Refusal, Requester } from "./admission.ts"
import type { BackendContext } from "./context.ts"

export interface RunRequest {
  readonly kernel: KernelKind
  readonly code: string
  readonly cache: boolean
  readonly limits?: Limits | undefined
  /** who asks: admission counts per client and per address */
  readonly who: Requester
}

export interface RunResult {
  readonly status: RunStatus
  readonly cached: boolean
  readonly ms: number
  readonly outputs: ReadonlyArray<OutputMsg>
  readonly message?: string
  readonly limit?: string
  /** set when no worker could take the run */
  readonly noWorker?: true
  /** set when admission control refused the run (a cache miss with no execution slot free) */
  readonly refusal?: Refusal
}

export interface RunHandle {
  readonly done: Promise<RunResult>
  /** ends the run now with status "cancelled" and `why`; its kernel is closed */
  cancel(why: string): void
}


const capLimits = (base: BackendContext["options"]["statelessLimits"], asked: Limits | undefined): Required<Limits> => ({
  wall: Math.min(base.wall, asked?.wall ?? Infinity),
  idle: Math.min(base.idle, asked?.idle ?? Infinity),
  exec: Math.min(base.exec, asked?.exec ?? Infinity),
  memory: Math.min(base.memory, asked?.memory ?? Infinity),
  cpu: Math.min(base.cpu, asked?.cpu ?? Infinity),
})

/**
 * Starts a run. The cache is asked first: a hit costs no kernel and passes admission control; a miss must take an
 * execution slot of the client and of this backend, or the run ends at once with `refusal` set.
 */
export const startRun = (ctx: BackendContext, request: RunRequest, onOutput: (seq: number, msg: OutputMsg) => void): RunHandle => {
  let release: () => void = () => undefined
  const started = performance.now()
  const outputs: Array<OutputMsg> = []
  const limits = capLimits(ctx.options.statelessLimits, request.limits)
  const useCache = request.cache && !optedOut(request.code)
  const key = cacheKey(request.kernel, ctx.versions[request.kernel], limits, request.code)
  let settled = false
  let resolveDone!: (result: RunResult) => void
  const done = new Promise<RunResult>((resolve) => (resolveDone = resolve))
  let cancelHook: (why: string) => void = () => undefined

  const emit = (msg: OutputMsg): void => {
    outputs.push(msg)
    onOutput(outputs.length, msg)
  }
  const finish = (result: Omit<RunResult, "ms" | "outputs">): void => {
    if (settled) return
    settled = true
    release()
    resolveDone({ ...result, ms: Math.round((performance.now() - started) * 100) / 100, outputs })
  }

  const execute = (): void => {
    if (settled) return
    const grant = ctx.admission.execution(request.who)
    if (!grant.ok) return finish({ status: "failed", cached: false, refusal: grant.refusal, message: grant.refusal.message })
    release = grant.release
    const worker = ctx.pool.pick(request.kernel)
    if (worker === undefined) return finish({ status: "failed", cached: false, noWorker: true, message: `no worker with the ${request.kernel} kernel is connected; try again in a few seconds` })
    const session = `run-${randomUUID()}`
    const workerId = worker.worker
    let opened = false
    let closeWhenOpened = false
    let doneStatus: RunStatus | undefined
    ctx.pool.addLoad(workerId, 1, "run")
    const forget = (): void => {
      ctx.router.delete(session)
      ctx.pool.addLoad(workerId, -1, "run")
    }
    cancelHook = (why) => {
      if (opened) worker.send({ type: "close", session })
      else closeWhenOpened = true
      finish({ status: "cancelled", cached: false, message: why })
    }
    ctx.router.set(session, {
      workerId,
      frame: (frame: WorkerFrame) => {
        switch (frame.type) {
          case "opened":
            opened = true
            if (closeWhenOpened) worker.send({ type: "close", session })
            return
          case "output":
            if (settled) return
            if (frame.msg.kind === "done") doneStatus = frame.msg.status
            emit(frame.msg)
            return
          case "ended": {
            forget()
            const limit = limitOf(frame.reason)
            if (frame.reason._tag === "Completed" && doneStatus !== undefined) {
              const clean = doneStatus === "ok" && !outputs.some((m) => m.kind === "error")
              if (clean && useCache && !settled) void ctx.cache.set(key, outputs)
              return finish({ status: doneStatus, cached: false })
            }
            return finish({ status: limit !== undefined ? "limit" : "failed", cached: false, message: frame.message, ...(limit !== undefined ? { limit } : {}) })
          }
          case "error":
            if (opened) return // e.g. a late close; the ended frame follows
            forget()
            return finish({ status: "failed", cached: false, message: `the worker refused the run: ${frame.message}` })
        }
      },
      lost: (why) => {
        forget()
        finish({ status: "failed", cached: false, message: `the worker running this cell was lost (${why}); run it again` })
      },
    })
    worker.send({ type: "run", session, kernel: request.kernel, code: request.code, limits })
  }

  if (useCache) {
    void ctx.cache.get(key).then((hit) => {
      if (settled) return
      if (hit === undefined) return execute()
      for (const msg of hit) emit(msg)
      const last = hit[hit.length - 1]
      finish({ status: last?.kind === "done" ? last.status : "ok", cached: true })
    })
  } else execute()

  const cancel = (why: string): void => {
    if (settled) return
    cancelHook(why)
    finish({ status: "cancelled", cached: false, message: why })
  }
  return { done, cancel }
}
