// The worker, composed: its data directories made ready (what a previous life left cleared), then the kernels
// (forkservers and their pools), the `sessions` supervisor, the links to backends and the registration in the
// cluster's registry, as layers in that order. Released in reverse: the registry is told, every session ends with
// WorkerStopped, the backends are told, the forkservers stop.
import { chmod, mkdir, readFile, rm, stat } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Layer, type Scope } from "effect"
import { WorkerSettings, type WorkerConfig } from "./config.ts"
import { KernelPools } from "./kernels.ts"
import { log } from "./log.ts"
import { Registration } from "./registration.ts"
import { BackendLinks } from "./server.ts"
import { Sessions } from "./sessions.ts"
import { claimUidRange, type UidRangeTaken } from "./uid-claim.ts"
import { listProcesses, sweepUid } from "./uids.ts"

/** Sessions of a previous life of this worker died with it (PR_SET_PDEATHSIG): kill what their uids left. */
const sweepRange = (first: number, last: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    const processes = yield* Effect.promise(() => listProcesses())
    const uids = new Set(processes.filter((p) => p.uid >= first && p.uid <= last && p.state !== "Z").map((p) => p.uid))
    if (uids.size > 0) log("warn", `killing processes a previous life left under ${uids.size} session uids`)
    yield* Effect.forEach([...uids], sweepUid, { concurrency: "unbounded", discard: true })
  })

/**
 * Session homes of an unprivileged worker live under a dir that session uids may traverse (0711), not list. As root,
 * the session uid range is claimed host-wide first (uid-claim.ts), then swept.
 */
const prepareDirs = (config: WorkerConfig): Effect.Effect<void, UidRangeTaken, Scope.Scope> =>
  Effect.gen(function*() {
    const root = process.getuid?.() === 0
    const sessions = join(config.dataDir, "sessions")
    yield* Effect.promise(async () => {
      await mkdir(config.dataDir, { recursive: true })
      if (root && ((await stat(config.dataDir)).mode & 0o001) === 0) await chmod(config.dataDir, 0o711)
    })
    if (root) {
      yield* claimUidRange(config.uidRange, config.dataDir)
      yield* sweepRange(config.uidRange.first, config.uidRange.last)
    }
    yield* Effect.promise(async () => {
      await rm(sessions, { recursive: true, force: true })
      await mkdir(sessions, { recursive: true, mode: 0o711 })
      await chmod(sessions, 0o711)
      await mkdir(join(config.dataDir, "run"), { recursive: true, mode: 0o755 })
      for (const name of ["protected_symlinks", "protected_hardlinks"]) {
        const value = await readFile(`/proc/sys/fs/${name}`, "utf8").then((v) => v.trim(), () => "unknown")
        if (value !== "1") log("warn", `fs.${name} is ${value}: sessions have no shared writable directory, but set it to 1 for the host's own users (sagews doctor)`)
      }
    })
  })

/** The whole worker for `config`: its services, built in dependency order. */
export const workerLayer = (config: WorkerConfig) => {
  const settings = Layer.succeed(WorkerSettings, config)
  const prepared = Layer.effectDiscard(prepareDirs(config))
  const kernels = KernelPools.layer.pipe(Layer.provide(prepared))
  const sessions = Sessions.layer.pipe(Layer.provideMerge(kernels))
  const links = BackendLinks.layer.pipe(Layer.provideMerge(sessions), Layer.provideMerge(settings))
  // registered once it listens; told stopped before the links end the sessions
  return Registration.layer.pipe(Layer.provideMerge(links))
}
