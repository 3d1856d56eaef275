// logwatch: ships every `<data>/log/*.log` of this host into PostgreSQL's `log` table, exactly once.
// Usage: node src/logwatch/main.ts --data DIR --db URL [--host NAME]
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
// Deep imports: the "effect" and "@effect/platform-node" barrels cost ~2 s of start-up on this machine,
// and logwatch's restart time after a SIGKILL is its start-up time.
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { redact } from "../db/client.ts"
import { livenessSocket } from "./liveness.ts"
import { log } from "./logger.ts"
import { ship } from "./shipper.ts"

const USAGE = "usage: node src/logwatch/main.ts --data DIR --db URL [--host NAME]"

const parsed = (() => {
  try {
    return parseArgs({
      options: { data: { type: "string" }, db: { type: "string" }, host: { type: "string" } },
      strict: true,
    }).values
  } catch (error) {
    process.stderr.write(`logwatch: ${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`)
    process.exit(2)
  }
})()
if (parsed.data === undefined || parsed.db === undefined) {
  process.stderr.write(`logwatch: --data and --db are required\n${USAGE}\n`)
  process.exit(2)
}
if (!URL.canParse(parsed.db) || !/^postgres(ql)?:$/.test(new URL(parsed.db).protocol)) {
  process.stderr.write(`logwatch: --db is ${JSON.stringify(parsed.db)}, expected a URL such as postgres://postgres@127.0.0.1:5432/sagews\n`)
  process.exit(2)
}
const dataDir = path.resolve(parsed.data)
const dbUrl = parsed.db
const host = parsed.host ?? os.hostname()

const program = Effect.scoped(
  Effect.gen(function*() {
    yield* livenessSocket(path.join(dataDir, "run", "logwatch.sock"))
    log("info", `started: shipping ${path.join(dataDir, "log")}/*.log to ${redact(dbUrl)} as host ${host}`)
    return yield* ship({ dataDir, dbUrl, host })
  }),
)

// SIGTERM/SIGINT interrupt the program: the finalizers flush and close; that is a clean exit (0).
NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1),
})
