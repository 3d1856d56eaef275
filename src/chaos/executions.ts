// How often workers ran each stateless code, read back from the workers' log files: every run a worker starts
// logs `run started in <kind> session <id>` with the code's short hash (src/worker/server.ts), and every session's
// end `ended <kind> session <id>: <reason>`. A start whose session never ended died with its worker process.
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

export interface RunStart {
  readonly session: string
  readonly pid: number
  readonly ts: string
  /** the end reason the worker logged, or null: the worker died (SIGKILL) before the run ended */
  readonly ended: string | null
}

const WORKER_LOG = /^worker[^/]*\.log(\.\d+)?$/

/** Starts by code hash, from every worker log file of the data dir. */
export const readRunStarts = (dataDir: string): Map<string, RunStart[]> => {
  const dir = join(dataDir, "log")
  const starts = new Map<string, Array<{ session: string; pid: number; ts: string }>>()
  const ends = new Map<string, string>()
  let files: string[] = []
  try {
    files = readdirSync(dir).filter((f) => WORKER_LOG.test(f))
  } catch {
    return new Map()
  }
  for (const file of files) {
    let text = ""
    try {
      text = readFileSync(join(dir, file), "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n")) {
      if (!line.includes("run started") && !line.includes("session run-")) continue
      let rec: { msg?: unknown; code?: unknown; session?: unknown; pid?: unknown; ts?: unknown }
      try {
        rec = JSON.parse(line) as typeof rec
      } catch {
        continue
      }
      const msg = typeof rec.msg === "string" ? rec.msg : ""
      if (msg.startsWith("run started") && typeof rec.code === "string" && typeof rec.session === "string") {
        const list = starts.get(rec.code) ?? []
        list.push({ session: rec.session, pid: typeof rec.pid === "number" ? rec.pid : 0, ts: typeof rec.ts === "string" ? rec.ts : "" })
        starts.set(rec.code, list)
        continue
      }
      const ended = /^ended \S+ session (\S+)(?: uid \d+)?: (.*)$/.exec(msg)
      if (ended) ends.set(`${typeof rec.pid === "number" ? rec.pid : 0} ${ended[1]!}`, ended[2]!)
    }
  }
  return new Map([...starts].map(([code, list]) => [code, list.map((s) => ({ ...s, ended: ends.get(`${s.pid} ${s.session}`) ?? null }))]))
}
