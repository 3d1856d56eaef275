// Benchmark of each Sage interface's first use in a new session (the program's start inside the sandbox, and its
// first answer), beside its second use, and beside the floor: the same first use in a plain Sage process on the
// host, outside any sandbox, measured in the same run.
import { execFile } from "node:child_process"
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
import json, os, tempfile, time
os.environ["HOME"] = tempfile.mkdtemp()
os.environ["DOT_SAGE"] = os.path.join(os.environ["HOME"], ".sage")
from sage.all import *
out = {}
for name, code in json.loads(os.environ["CASES"]):
    t = time.perf_counter(); eval(code); out[name] = time.perf_counter() - t
print(json.dumps(out))
`

const failed = (messages: ReadonlyArray<OutputMessage>): string | undefined => {
  const error = messages.find((m) => m.kind === "error")
  return error?.kind === "error" ? `${error.ename}: ${error.evalue}` : undefined
}

export const benchInterfaces = async (): Promise<Record<string, number>> => {
  const results: Record<string, number> = {}
  const worker = await startBenchWorker({ kernels: ["sage"], pool: 1, uidRange: { first: 262_000, last: 262_999 } })
  try {
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
  } finally {
    worker.client.close()
    await worker.stop()
  }
  const { stdout } = await promisify(execFile)("/usr/bin/python3", ["-c", FLOOR_PY], {
    env: { PATH: "/usr/bin:/bin", CASES: JSON.stringify(INTERFACES.map((i) => [i.name, i.code])) },
    maxBuffer: 1 << 20,
  })
  const floor = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, number>
  for (const i of INTERFACES) results[`${i.name} first use in a plain Sage process, floor (ms)`] = round((floor[i.name] ?? NaN) * 1000)
  return results
}
