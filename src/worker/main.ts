// The worker program: `node src/worker/main.ts --data DIR --port N [--id worker:1] [--config FILE | --config-json JSON]`.
// Logs JSON lines on stdout; SIGTERM or SIGINT ends every session with WorkerStopped and exits 0.
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit } from "effect"
import { serveWorkerControl } from "./control.ts"
import { parseWorkerArgs, WorkerSettings } from "./config.ts"
import { KernelPools } from "./kernels.ts"
import { log, setLogComponent, workerLogger } from "./log.ts"
import { workerControlPath } from "../protocol/operator.ts"
import { Sessions } from "./sessions.ts"
import { workerLayer } from "./worker.ts"

const config = (() => {
  try {
    return parseWorkerArgs(process.argv.slice(2))
  } catch (error) {
    log("fatal", error instanceof Error ? error.message : String(error))
    process.exit(2)
  }
})()
setLogComponent(config.id)

// A stray rejection is a bug to see in the log, not a reason to take every user's session down with us.
process.on("unhandledRejection", (reason) => log("error", `unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`))

const program = Effect.gen(function*() {
  const sessions = yield* Sessions
  const settings = yield* WorkerSettings
  yield* serveWorkerControl(workerControlPath(settings.dataDir, settings.id), sessions.view)
  // Runs until SIGTERM/SIGINT interrupts it, or the kernels supervisor gives up (then the worker's own supervisor decides).
  return yield* (yield* KernelPools).gaveUp
}).pipe(
  Effect.scoped,
  Effect.provide(workerLayer(config)),
  Effect.onInterrupt(() => Effect.sync(() => log("info", "stopped"))),
  Effect.provide(workerLogger(config.id)),
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) log("fatal", Cause.pretty(exit.cause))
    onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
  },
})
