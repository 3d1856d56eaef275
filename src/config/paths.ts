// The data directory layout (docs/ARCHITECTURE.md, "The data directory"): one place that names every path.
import { join, resolve } from "node:path"

export const defaultDataDir = (env: NodeJS.ProcessEnv = process.env): string => resolve(env.SAGEWS_DATA ?? "data")

export const dataPaths = (dataDir: string) => {
  const data = resolve(dataDir)
  const run = join(data, "run")
  return {
    data,
    log: join(data, "log"),
    logFile: (id: string) => join(data, "log", `${id}.log`),
    run,
    pidFile: (id: string) => join(run, `${id}.pid`),
    rootPid: join(run, "sagews.pid"),
    control: join(run, "control.sock"),
    secret: join(data, "secret"),
    sessions: join(data, "sessions"),
    /** published worksheets, served by nginx at /pub/ (src/publish/) */
    pub: join(data, "pub"),
    /** what a daemonised root prints before its log file exists (early crashes) */
    daemonOut: join(data, "sagews.out"),
  }
}

export type DataPaths = ReturnType<typeof dataPaths>
