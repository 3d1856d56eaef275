// Stateless single-cell execution, shared by SockJS `run` and `POST /api/v1/execute`: admission, the result cache,
// one fresh kernel on a worker, outputs streamed as they come. Only clean, complete runs are cached.
// A run keeps its word under faults: a run given a key (the HTTP request's id, which haproxy keeps when it re-sends
// the request after a backend died) has a session id derived from it and goes to the worker the key hashes to, so a
// re-sent request attaches to the run already there instead of starting it again; a run whose worker link is lost
// resumes it when the worker is back, or, if the worker lost it, runs again, within the request's deadline.
import { createHash, randomUUID } from "node:crypto"
import type { WorkerFrame } from "../protocol/worker.ts"
import { limitOf, type KernelKind, type Language, type Limits, type OutputMsg, type RunStatus } from "../protocol/browser.ts"
import type { WorkerClient } from "../wire/client.ts"
import { cacheKey, optedOut } from "./cache.ts"
import type { Refusal, Requester } from "./admission.ts"
import type { BackendContext } from "./context.ts"

export interface RunRequest {
  readonly kernel: KernelKind
  readonly code: string
  /** what the cell is written in, when not the kernel's own language: passed to the kernel as it came */
  readonly language?: Language | undefined
  readonly cache: boolean
  readonly limits?: Limits | undefined
  /** who asks: admission counts per client and per address */
  readonly who: Requester
  /**
   * the caller's name for this run, unique to it (scoped by `scope`): the same key again attaches to the run that is
   * there, or that ended within the workers' keepEnded, instead of running the code twice
   */
  readonly key?: { readonly scope: string; readonly id: string } | undefined
  /**
   * the caller reads the outputs only with the result (HTTP), so a run lost before it finished can start over unseen;
   * else (SockJS) they go out as they come, and a run lost after it printed is not run again
   */
  readonly buffered?: boolean
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

/** a run lost with its worker is not started again with less time than this left before its deadline */
const MIN_RERUN_MS = 1_000
/** the worker's answer to a `resume` of a session it does not have */
const NO_SESSION = /^no (running )?session /
/** the worker's answer to a `run` whose session it already has (the `resume` sent before it attached to that one) */
const EXISTS = / already exists on this worker$/
/** after a `run` refused as existing and no `resume` answered yet (the session is still starting), ask again */
const RESUME_AGAIN_MS = 100
/**
 * past the run's wall limit and this, a run the worker never finished for us (its frames went elsewhere, a link hung)
 * is answered `failed` all the same: a request never hangs (the proxy waits PROXY_MARGIN_MS longer, src/config/proxy.ts)
 */
const ANSWER_GRACE_MS = 5_000
/** the worker's answer to a `resume` of a run another backend's live connection waits for */
const ATTACHED_ELSEWHERE = /is attached to another backend's connection/
/** how long a run asks again for a session attached elsewhere (that backend may just have died) before it gives up */
const ELSEWHERE_PATIENCE_MS = 2_000
/** the worker's answer to a `run` while it stops: the run goes to the worker that is up next */
const STOPPING = /^the worker is stopping/

const capLimits = (base: BackendContext["options"]["statelessLimits"], asked: Limits | undefined): Required<Limits> => ({
  wall: Math.min(base.wall, asked?.wall ?? Infinity),
  idle: Math.min(base.idle, asked?.idle ?? Infinity),
  exec: Math.min(base.exec, asked?.exec ?? Infinity),
  memory: Math.min(base.memory, asked?.memory ?? Infinity),
  cpu: Math.min(base.cpu, asked?.cpu ?? Infinity),
})

/**
 * The session id of a run: from its key when it has one (so that the same request finds it), else random. The code,
 * kernel, language and limits are part of it: a key used again for other code (a client's reused id, two tabs
 * counting alike) is another run, never the answer to the first. (A run without a language hashes as it always did.)
 */
export const runSessionId = (request: Pick<RunRequest, "key" | "kernel" | "code" | "language">, limits: Required<Limits>): string =>
  request.key === undefined
    ? `run-${randomUUID()}`
    : `run-k${createHash("sha256").update(JSON.stringify([request.key.scope, request.key.id, request.kernel, limits, request.code, ...(request.language !== undefined ? [request.language] : [])])).digest("hex").slice(0, 40)}`

/**
 * Starts a run. The cache is asked first: a hit costs no kernel and passes admission control; a miss must take an
 * execution slot of the client and of this backend, or the run ends at once with `refusal` set.
 */
export const startRun = (
  ctx: BackendContext,
  request: RunRequest,
  onOutput: (seq: number, msg: OutputMsg) => void,
  /** a streaming run that printed is run again: the caller drops what it was given (without this, it fails instead) */
  onRestart?: (why: string) => void,
): RunHandle => {
  let release: () => void = () => undefined
  const started = performance.now()
  let outputs: Array<OutputMsg> = []
  const limits = capLimits(ctx.options.statelessLimits, request.limits)
  /** past this nothing is started again: the run's wall limit, which the proxy's timeout outlasts (src/config/proxy.ts) */
  const deadline = started + limits.wall * 1000
  const useCache = request.cache && !optedOut(request.code)
  const key = cacheKey(request.kernel, ctx.versions[request.kernel], limits, request.code, request.language)
  /** the run's session; a fresh one when the run starts over after its session was closed (ClosedByUser) */
  const firstSession = runSessionId(request, limits)
  let session = firstSession
  let attempts = 1
  let settled = false
  let resolveDone!: (result: RunResult) => void
  const done = new Promise<RunResult>((resolve) => (resolveDone = resolve))
  let cancelHook: (why: string) => void = () => undefined
  /** links whose worker refused the run because it is stopping */
  const stopping = new Set<WorkerClient>()

  const emit = (msg: OutputMsg): void => {
    outputs.push(msg)
    onOutput(outputs.length, msg)
  }
  let stopTimer: () => void = () => undefined
  const finish = (result: Omit<RunResult, "ms" | "outputs">): void => {
    if (settled) return
    settled = true
    stopTimer()
    release()
    resolveDone({ ...result, ms: Math.round((performance.now() - started) * 100) / 100, outputs })
  }
  const lostFor = (why: string): void =>
    finish({ status: "failed", cached: false, message: `the worker running this cell was lost (${why}) and it could not be run again in time; run it again` })

  /** A worker with the kernel: the key's, else the least loaded; waits for one to connect until the deadline. */
  const place = (then: (worker: WorkerClient) => void, why: string | undefined): void => {
    const wait = deadline - performance.now() - MIN_RERUN_MS
    if (why !== undefined && wait <= 0) return lostFor(why)
    const worker = request.key !== undefined ? ctx.links.pickKeyed(request.kernel, session, stopping) : ctx.links.pick(request.kernel, stopping)
    if (worker !== undefined) return then(worker)
    const none = (): void =>
      why !== undefined
        ? lostFor(why)
        : finish({ status: "failed", cached: false, noWorker: true, message: `no worker with the ${request.kernel} kernel is connected; try again in a few seconds` })
    if (wait <= 0) return none()
    void ctx.links.whenConnected(request.kernel, wait, stopping).then((up) => {
      if (settled) return
      if (up) return place(then, why)
      none()
    })
  }

  /**
   * Routes the session on `worker` to this run. First a `resume` of it: a worker that has it (the same request, sent
   * again after a backend died; or this run, after a lost link) replays its output from `fromSeq` and refuses the
   * `run` that follows; one that does not have it answers "no session" and starts it.
   */
  const attach = (worker: WorkerClient, start: boolean): void => {
    if (settled) return
    const workerId = worker.worker
    const sid = session
    const attachedAt = performance.now()
    let opened = false
    let closeWhenOpened = false
    let doneStatus: RunStatus | undefined
    /** the last output seq taken from this session */
    let seen = outputs.length
    ctx.links.addLoad(workerId, 1, "run")
    const forget = (): void => {
      ctx.router.delete(sid, handler)
      ctx.links.addLoad(workerId, -1, "run")
    }
    cancelHook = (why) => {
      if (opened) worker.send({ type: "close", session: sid })
      else closeWhenOpened = true
      finish({ status: "cancelled", cached: false, message: why })
    }
    const handler = {
      workerId,
      frame: (frame: WorkerFrame): void => {
        switch (frame.type) {
          case "opened":
          case "resumed":
            opened = true
            if (closeWhenOpened) worker.send({ type: "close", session: sid })
            return
          case "output":
            if (settled || frame.seq <= seen) return
            seen = frame.seq
            if (frame.msg.kind === "done") doneStatus = frame.msg.status
            emit(frame.msg)
            return
          case "ended": {
            forget()
            const limit = limitOf(frame.reason)
            if (frame.reason._tag === "Normal" && doneStatus !== undefined) {
              const clean = doneStatus === "ok" && !outputs.some((m) => m.kind === "error")
              if (clean && useCache && !settled) ctx.cache.set(key, outputs)
              return finish({ status: doneStatus, cached: false })
            }
            if (frame.reason._tag === "WorkerStopped" || frame.reason._tag === "WorkerLost") return rerun(`${workerId} ${frame.reason._tag === "WorkerLost" ? "was lost" : "stopped"}`)
            // a run of this key whose connection went away was cancelled: this one (sent again) starts it over
            if (frame.reason._tag === "ClosedByUser") return rerun("the run was cancelled when its connection closed", true)
            return finish({ status: limit !== undefined ? "limit" : "failed", cached: false, message: frame.message, ...(limit !== undefined ? { limit } : {}) })
          }
          case "error":
            if (NO_SESSION.test(frame.message)) return // the answer to resume-then-run: the run starts it
            if (ATTACHED_ELSEWHERE.test(frame.message)) {
              if (opened) return
              if (performance.now() - attachedAt < ELSEWHERE_PATIENCE_MS) {
                ctx.after(RESUME_AGAIN_MS, () => settled || opened || worker.send({ type: "resume", session: sid, fromSeq: seen + 1 }))
                return
              }
              forget()
              return finish({ status: "failed", cached: false, message: "a run with this request id is running through another backend; its answer goes to the request that started it" })
            }
            if (EXISTS.test(frame.message)) {
              // the session is there: the resume before it answered it, or, if the session was still starting
              // (another backend's run of the same key), ask again until it is live
              if (!opened) ctx.after(RESUME_AGAIN_MS, () => settled || opened || worker.send({ type: "resume", session: sid, fromSeq: seen + 1 }))
              return
            }
            if (opened) return // e.g. a late close; the ended frame follows
            forget()
            if (STOPPING.test(frame.message)) {
              // not that link again: the next one to the worker (once it is back) is another
              stopping.add(worker)
              return rerun(`${workerId} is stopping`)
            }
            return finish({ status: "failed", cached: false, message: `the worker refused the run: ${frame.message}` })
        }
      },
      lost: (why: string): void => {
        forget()
        rerun(why)
      },
    }
    ctx.router.set(sid, handler)
    worker.send({ type: "resume", session: sid, fromSeq: seen + 1 })
    if (start) {
      const left = Math.floor((deadline - performance.now()) / 1000)
      const language = request.language !== undefined ? { language: request.language } : {}
      worker.send({ type: "run", session: sid, kernel: request.kernel, code: request.code, ...language, limits: { ...limits, wall: Math.min(limits.wall, left), exec: Math.min(limits.exec, left) } })
    }
  }

  /**
   * The link to the run's worker was lost, or the worker stopped: resume it where it is back, or run it again (in a
   * fresh session when the one it had was closed).
   */
  const rerun = (why: string, fresh = false): void => {
    if (settled) return
    if (request.buffered !== true && outputs.length > 0) {
      if (onRestart === undefined) return finish({ status: "failed", cached: false, message: `the worker running this cell was lost (${why}) after it had printed; run it again` })
      onRestart(why)
    }
    if (fresh) session = `${firstSession}-${++attempts}`
    outputs = []
    place((worker) => attach(worker, true), why)
  }

  const execute = (): void => {
    if (settled) return
    const grant = ctx.admission.execution(request.who)
    if (!grant.ok) return finish({ status: "failed", cached: false, refusal: grant.refusal, message: grant.refusal.message })
    release = grant.release
    stopTimer = ctx.after(limits.wall * 1000 + ANSWER_GRACE_MS, () => {
      finish({ status: "failed", cached: false, message: `the worker did not finish this run within its wall limit of ${limits.wall} s; run it again` })
      cancelHook("no answer") // closes its session, if it has one
    })
    whenRouteFree(() => place((worker) => attach(worker, true), undefined))
  }

  /**
   * Waits while this backend still routes the run's session for an earlier request with the same id: typically the
   * one whose connection died a moment ago, cancelled and closing its session (the worker's `ended` frees it). Then
   * this request resumes the session: it gets the earlier run's answer if it had finished, or starts it over if the
   * earlier one was cancelled. Only a route that outlasts the deadline is an error.
   */
  const whenRouteFree = (then: () => void): void => {
    if (settled) return
    if (ctx.router.get(session) === undefined) return then()
    if (performance.now() >= deadline - MIN_RERUN_MS) {
      return finish({ status: "failed", cached: false, message: "a run with this request id is running on this backend already, and did not end within this one's wall limit; its answer goes to the request that started it" })
    }
    ctx.after(RESUME_AGAIN_MS, () => whenRouteFree(then))
  }

  if (useCache) {
    ctx.cache.get(key).then((hit) => {
      if (settled) return
      if (hit === undefined) return execute()
      for (const msg of hit) emit(msg)
      const last = hit[hit.length - 1]
      finish({ status: last?.kind === "done" ? last.status : "ok", cached: true })
    }, (e: unknown) => {
      // a cache that cannot be asked is a miss, never the user's error
      ctx.log.warn(`the result cache could not be asked (${e instanceof Error ? e.message : String(e)}): running the cell`)
      execute()
    })
  } else execute()

  const cancel = (why: string): void => {
    if (settled) return
    cancelHook(why)
    finish({ status: "cancelled", cached: false, message: why })
  }
  return { done, cancel }
}
