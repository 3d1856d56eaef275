// The worker program: `node src/worker/main.ts --data DIR --port N [--id worker:1] [--config FILE | --config-json JSON]`.
// Logs JSON lines on stdout; on SIGTERM or SIGINT ends every session with WorkerStopped and exits 0.
import { parseWorkerArgs } from "./config.ts"
import { log, setLogComponent } from "./log.ts"
import { startWorker } from "./worker.ts"

const main = async (): Promise<void> => {
  const config = parseWorkerArgs(process.argv.slice(2))
  setLogComponent(config.id)
  const worker = await startWorker(config)
  let stopping = false
  const shutdown = (signal: string): void => {
    if (stopping) return
    stopping = true
    log("info", `${signal}: stopping`)
    worker.stop().then(
      () => {
        log("info", "stopped")
        process.exit(0)
      },
      (error: unknown) => {
        log("error", `stop failed: ${String(error)}`)
        process.exit(1)
      },
    )
  }
  // A stray rejection is a bug to see in the log, not a reason to take every user's session down with us.
  process.on("unhandledRejection", (reason) => log("error", `unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`))
  process.on("SIGTERM", () => shutdown("SIGTERM"))
  process.on("SIGINT", () => shutdown("SIGINT"))
}

main().catch((error: unknown) => {
  log("fatal", error instanceof Error ? error.message : String(error))
  process.exit(1)
})
