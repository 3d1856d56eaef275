// The fault-injection harness as an acceptance test: `npm run chaos -- --duration 120` with every component in the
// kill set and the faults SIGKILL and SIGSTOP, on a tree of its own. Every promise must hold: exit 0, and no wrong
// answer, lost or doubled output, double execution, request past its deadline, unexcused stateless failure,
// unhealed component or leftover process. What broke, with examples, is in the printed table.
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const ROOT = resolve(import.meta.dirname, "../..")
const DURATION_S = 120

describe("chaos: 120 s of SIGKILL and SIGSTOP of every component under load", () => {
  const dir = mkdtempSync(join(tmpdir(), "sagews-chaos-test-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("keeps every promise", async () => {
    const json = join(dir, "chaos.json")
    const child = spawn(process.execPath, [join(ROOT, "src/chaos/main.ts"), "--duration", String(DURATION_S), "--faults", "sigkill,sigstop", "--json", json], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    const code = await new Promise<number | null>((ok) => child.once("exit", ok))
    const report = JSON.parse(readFileSync(json, "utf8")) as { results: Record<string, number>; broken: ReadonlyArray<{ promise: string; count: number }>; left: ReadonlyArray<string> }
    expect(report.broken, output).toEqual([])
    const r = report.results
    for (const key of ["runs executed more than sent", "seq gaps", "seq repeats", "lines missing", "lines doubled", "faults not healed", "processes left after stop"]) expect(r[key], key).toBe(0)
    for (const kind of ["http", "run", "open", "execute", "terminal", "close"]) {
      expect(r[`${kind} wrong`] ?? 0, `${kind} wrong`).toBe(0)
      expect(r[`${kind} hung`] ?? 0, `${kind} hung`).toBe(0)
    }
    expect(r.requests).toBeGreaterThan(100)
    expect(r.faults).toBeGreaterThan(10)
    expect(code, output).toBe(0)
  }, (DURATION_S + 300) * 1000)
})
