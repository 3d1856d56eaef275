// The logwatch actor: one logwatch per host, shipping <data>/log/*.log into PostgreSQL (src/logwatch/main.ts).
// Ready and alive while its unix socket answers; its failure touches nothing else (it resumes from committed offsets).
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { ChildSpec, Restart } from "../supervisors/child.ts"
import type { DbTarget } from "../src/db/credentials.ts"
import { type ChildDb, resolveChildDb } from "./childdb.ts"
import { type LivenessOptions, processSpec, type Probe } from "./process.ts"

export interface LogwatchOptions {
  readonly dataDir: string
  /** where the `log` table is: the own cluster (its service role) or the external URL */
  readonly db: DbTarget
  /** stored with every row; empty or missing = os.hostname() */
  readonly host?: string
  readonly id?: string
  readonly restart?: Restart
  readonly liveness?: Omit<LivenessOptions, "probe">
  /** ms between the polite stop signal and SIGKILL (config: shutdownMs); default SHUTDOWN_MS */
  readonly shutdown?: number
}

const MAIN = fileURLToPath(new URL("../src/logwatch/main.ts", import.meta.url))
/** The socket answers from the event loop: a hung or stopped logwatch is killed after about 3 s. */
const LIVENESS: Omit<LivenessOptions, "probe"> = { interval: 1_000, timeout: 1_000, failures: 3 }
/** SIGTERM: logwatch finishes the commit in flight and flushes for at most 2 s */
const SHUTDOWN_MS = 5_000

export const logwatchSpec = (options: LogwatchOptions): ChildSpec => {
  const dataDir = path.resolve(options.dataDir)
  const socket: Probe = { _tag: "banner", path: path.join(dataDir, "run", "logwatch.sock") }
  const spec = (db: ChildDb) => processSpec({
    id: options.id ?? "logwatch",
    command: process.execPath,
    args: [MAIN, "--data", dataDir, "--db", db.url, ...(options.host ? ["--host", options.host] : [])],
    env: db.env,
    dataDir,
    ready: socket,
    liveness: { probe: socket, ...(options.liveness ?? LIVENESS) },
    stopSignal: "SIGTERM",
    shutdown: options.shutdown ?? SHUTDOWN_MS,
    restart: options.restart ?? "permanent",
    logFormat: "json",
  })
  // Built once now, so that bad options fail at build time; the real one at each start, with the password read then.
  const template = spec({ url: "postgres://", env: {} })
  return { ...template, start: resolveChildDb(dataDir, options.db).pipe(Effect.flatMap((db) => spec(db).start)) }
}
