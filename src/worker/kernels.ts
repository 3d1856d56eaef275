// The worker's kernels: one forkserver pool per kernel kind, each forkserver a permanent child of the worker's
// `kernels` supervisor (supervisors/ engine, one_for_one), the socket that forked kernels connect back to, and the
// worker's session cgroups. A dead forkserver is restarted with backoff; past its intensity `gaveUp` fails.
import { mkdir, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { join } from "node:path"
import { Context, Deferred, Effect, Layer } from "effect"
import type { ChildSpec } from "../../supervisors/child.ts"
import type { Escalation } from "../../supervisors/errors.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { make, type SupervisorSpec } from "../../supervisors/supervisor.ts"
import { KernelKind } from "../protocol/worker.ts"
import { WorkerCgroups } from "./cgroups.ts"
import { WorkerSettings } from "./config.ts"
import { containSpecOf, KernelConn, KernelPool } from "./forkserver.ts"
import { readLines } from "./lines.ts"
import { log } from "./log.ts"

/** A broken kernel install crash-loops: 10 restarts a minute, then the worker exits and its supervisor decides. */
const KERNEL_SUPERVISOR = { strategy: "one_for_one", intensity: 10, period: 60, backoff: { initial: "200 millis", max: "10 seconds", resetAfter: "30 seconds" } } as const

const forkserverSpec = (pool: KernelPool): ChildSpec => ({
  id: `forkserver:${pool.kind}`,
  restart: "permanent",
  shutdown: "brutal",
  start: Effect.acquireRelease(
    Effect.tryPromise({ try: () => pool.launch(), catch: (error) => ExitReason.Crash({ detail: error instanceof Error ? error.message : String(error) }) }),
    () => Effect.promise(() => pool.kill()),
  ).pipe(
    Effect.map((incarnation) => ({
      pid: incarnation.pid,
      exit: Effect.promise(() => incarnation.exit).pipe(
        Effect.map((exit): ExitReason => ("signal" in exit ? ExitReason.Killed({ signal: exit.signal }) : exit.code === 0 ? ExitReason.Normal() : ExitReason.Crash({ detail: exit.why, code: exit.code }))),
      ),
    })),
  ),
})

export interface KernelPoolsShape {
  readonly kinds: ReadonlyArray<KernelKind>
  /** root with cgroup controllers: every session's own cgroup comes from here */
  readonly cgroups: WorkerCgroups | undefined
  /** An idle kernel of `kind` (from the pool, else freshly forked); fails with a message for the user. */
  readonly acquire: (kind: KernelKind) => Effect.Effect<KernelConn, string>
  /** Fails once the kernels supervisor has given up (a forkserver keeps dying); never succeeds. */
  readonly gaveUp: Effect.Effect<never, Escalation>
}

export class KernelPools extends Context.Service<KernelPools, KernelPoolsShape>()("sagews/worker/KernelPools") {
  static readonly layer = Layer.effect(KernelPools, Effect.suspend(() => makeKernelPools))
}

/** Kernels connect here after the fork and say hello; each is handed to its kind's pool. */
const kernelSocket = (path: string, pools: ReadonlyMap<KernelKind, KernelPool>) =>
  Effect.acquireRelease(
    Effect.callback<ReturnType<typeof createServer>, string>((resume) => {
      const server = createServer((socket) => {
        let conn: KernelConn | undefined
        socket.on("error", () => undefined)
        socket.on("close", () => {
          if (conn === undefined) return
          conn.closed = true
          conn.onClose?.()
        })
        readLines(
          socket,
          (message) => {
            if (conn !== undefined) return conn.handler?.(message)
            const kind = KernelKind.safeParse(message["kind"])
            const pid = message["pid"]
            const tag = message["tag"]
            if (message["type"] !== "hello" || !kind.success || typeof pid !== "number" || typeof tag !== "string") return void socket.destroy()
            conn = new KernelConn(pid, tag, kind.data, socket)
            pools.get(kind.data)?.deliver(conn)
          },
          () => undefined,
          () => log("warn", `a kernel (pid ${conn?.pid ?? "?"}) sent a line longer than the limit; its connection is closed`),
        )
      })
      server.once("error", (error) => resume(Effect.fail(`cannot listen on the kernel socket ${path}: ${error.message}`)))
      server.listen(path, () => {
        server.on("error", (error) => log("error", `kernel socket: ${error.message}`))
        resume(Effect.succeed(server))
      })
    }),
    (server) => Effect.sync(() => server.close()),
  )

const makeKernelPools = Effect.gen(function*() {
  const config = yield* WorkerSettings
  const root = process.getuid?.() === 0
  const kernelDir = join(config.dataDir, "run", `${config.id.replace(/[^\w.-]/g, "_")}.kernels`)
  // Only root (kernels before they drop privileges) can reach the kernel socket.
  yield* Effect.acquireRelease(
    Effect.promise(async () => {
      await rm(kernelDir, { recursive: true, force: true })
      await mkdir(kernelDir, { recursive: true, mode: 0o700 })
    }),
    () => Effect.promise(() => rm(kernelDir, { recursive: true, force: true })),
  )
  const cgroups = root ? yield* Effect.acquireRelease(Effect.sync(() => WorkerCgroups.make(config.id)), (c) => Effect.sync(() => c?.removeAll())) : undefined
  if (root && cgroups === undefined) log("warn", "no writable memory and pids cgroup controllers: sessions run without per-session memory and task limits (see `sagews doctor`)")
  const contain = containSpecOf(config)
  const socketPath = join(kernelDir, "k.sock")
  const context = yield* Effect.context<never>()
  const runner = { fork: (effect: Effect.Effect<void>) => void Effect.runForkWith(context)(effect) }
  const pools = new Map(config.kernels.map((kind) => [kind, new KernelPool(config, kind, socketPath, runner, root ? { spec: contain, cgroups } : undefined)] as const))
  yield* kernelSocket(socketPath, pools).pipe(Effect.orDie)
  const spec: SupervisorSpec = { id: `${config.id}/kernels`, ...KERNEL_SUPERVISOR, children: [...pools.values()].map(forkserverSpec) }
  // In the background: a forkserver importing Sage takes seconds, and sessions wait for their pool to be ready.
  const gaveUp = yield* Deferred.make<never, Escalation>()
  yield* Effect.forkScoped(
    Effect.flatMap(Effect.orDie(make(spec)), (supervisor) => supervisor.await).pipe(Effect.catch((error) => Deferred.fail(gaveUp, error))),
  )
  return {
    kinds: config.kernels,
    cgroups,
    acquire: (kind) => {
      const pool = pools.get(kind)
      if (pool === undefined) return Effect.fail(`this worker runs no ${kind} kernel (it runs: ${config.kernels.join(", ")})`)
      return Effect.andThen(pool.untilReady, Effect.tryPromise({ try: (signal) => pool.acquire(signal), catch: (e) => (e instanceof Error ? e.message : String(e)) }))
    },
    gaveUp: Deferred.await(gaveUp),
  } satisfies KernelPoolsShape
})
