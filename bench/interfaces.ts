// Benchmark of each Sage interface's first use in a new session (the program's start inside the sandbox, and its
// first answer), beside its second use, and beside the floor: the same first use in a plain Sage process on the
// host, outside any sandbox, measured in the same run. GAP's floor twice: in a new home (GAP builds its workspace
// there, as Sage does the first time) and again in that home (it starts from the saved workspace); sessions start
// from the workspace their forkserver built once (kernel.py), which the bench waits for. And the first help
// (Shift-Tab, `obj?`) in a new session, beside the first sage_getdoc in a plain Sage process.
import { execFile } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import type { OutputMessage } from "../src/protocol/worker.ts"
import { round, sleep, startBenchWorker } from "./worker.ts"

const INTERFACES = [
  { name: "gp", code: "gp('1+1')" },
  { name: "singular", code: "singular('1+1')" },
  { name: "maxima", code: "maxima('1+1')" },
  { name: "r", code: "r('1+1')" },
  { name: "gap", code: "gap('1+1')" },
]

const FLOOR_PY = `
import json, os, time
os.environ["DOT_SAGE"] = os.path.join(os.environ["HOME"], ".sage")
from sage.all import *
out = {}
for name, code in json.loads(os.environ["CASES"]):
    t = time.perf_counter(); eval(code); out[name] = time.perf_counter() - t
from sage.misc.sageinspect import sage_getdoc
t = time.perf_counter(); sage_getdoc(factorial); out["help"] = time.perf_counter() - t
print(json.dumps(out))
`

/** How long after the forkserver is ready its GAP workspace is there (built in the background the first time). */
const gapWorkspace = async (dataDir: string): Promise<number> => {
  const dir = join(dataDir, "shared", "gap")
  const started = performance.now()
  while (!(existsSync(dir) && readdirSync(dir).some((n) => n.startsWith("gap-workspace-")))) {
    if (performance.now() - started > 60_000) throw new Error(`no GAP workspace in ${dir} after 60 s`)
    await sleep(20)
  }
  return performance.now() - started
}

const failed = (messages: ReadonlyArray<OutputMessage>): string | undefined => {
  const error = messages.find((m) => m.kind === "error")
  return error?.kind === "error" ? `${error.ename}: ${error.evalue}` : undefined
}

export const benchInterfaces = async (): Promise<Record<string, number>> => {
  const results: Record<string, number> = {}
  const worker = await startBenchWorker({ kernels: ["sage"], pool: 1, uidRange: { first: 262_000, last: 262_999 } })
  try {
    results["GAP workspace there, after the forkserver is ready (ms)"] = round(await gapWorkspace(worker.dataDir))
    for (const i of INTERFACES) {
      await sleep(300) // the pool refills between sessions
      const session = await worker.client.open("sage")
      try {
        const first = performance.now()
        const out = await session.execute(i.code)
        const firstMs = performance.now() - first
        const why = failed(out)
        if (why !== undefined) throw new Error(`${i.name} failed in a session: ${why}`)
        const second = performance.now()
        await session.execute(i.code)
        results[`${i.name} first use in a new session (ms)`] = round(firstMs)
        results[`${i.name} second use (ms)`] = round(performance.now() - second)
      } finally {
        await session.close()
      }
    }
    await sleep(300)
    const session = await worker.client.open("sage")
    try {
      const first = performance.now()
      const help = await session.inspect("factorial(5)", 4)
      if (!help.found) throw new Error("no help for factorial in a session")
      results["help (Shift-Tab) first use in a new session (ms)"] = round(performance.now() - first)
      const second = performance.now()
      await session.inspect("factorial(5)", 4)
      results["help (Shift-Tab) second use (ms)"] = round(performance.now() - second)
    } finally {
      await session.close()
    }
  } finally {
    worker.client.close()
    await worker.stop()
  }
  const home = await mkdtemp(join(tmpdir(), "sagews-bench-home-"))
  try {
    const plain = async (): Promise<Record<string, number>> => {
      const { stdout } = await promisify(execFile)("/usr/bin/python3", ["-c", FLOOR_PY], {
        env: { PATH: "/usr/bin:/bin", HOME: home, CASES: JSON.stringify(INTERFACES.map((i) => [i.name, i.code])) },
        maxBuffer: 1 << 20,
      })
      return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, number>
    }
    const floor = await plain()
    for (const i of INTERFACES) results[`${i.name} first use in a plain Sage process, floor (ms)`] = round((floor[i.name] ?? NaN) * 1000)
    results["gap first use in a plain Sage process whose home has its saved workspace (ms)"] = round(((await plain())["gap"] ?? NaN) * 1000)
    results["help first use in a plain Sage process, floor (ms)"] = round((floor["help"] ?? NaN) * 1000)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
  return results
}
