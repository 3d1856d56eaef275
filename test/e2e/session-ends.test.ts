// Each way a session ends, through a whole tree: every limit (wall, idle, exec, CPU, memory by its cgroup) and
// an operator's `sagews kill` reach the session's client as its `ended` reason, and show in `sagews sessions
// --json` and in `sagews logs worker:1` as a supervised exit of the worker's `sessions` supervisor.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EndedFrame } from "../../src/protocol/worker.ts"
import { WorkerClient } from "../../src/wire/client.ts"
import { ensureWorkerSecret } from "../../src/wire/secret.ts"
import { makeStack, type Stack } from "./stack.ts"

const WORKER = "worker:1"

interface Ending {
  readonly name: string
  readonly kernel: "python" | "sage" | "terminal"
  readonly limits: Record<string, number>
  readonly code?: string
  readonly reason: EndedFrame["reason"]
  readonly sentence: RegExp
}

const ENDINGS: ReadonlyArray<Ending> = [
  { name: "wall", kernel: "python", limits: { wall: 3 }, code: "import time\nfor i in range(30):\n    print(i, flush=True)\n    time.sleep(0.5)", reason: { _tag: "Timeout", limit: "wall" }, sentence: /wall time limit \(3 s\)/ },
  { name: "idle", kernel: "python", limits: { idle: 2 }, reason: { _tag: "Timeout", limit: "idle" }, sentence: /idle time limit \(2 s\)/ },
  { name: "exec", kernel: "python", limits: { exec: 2 }, code: "import time\ntime.sleep(60)", reason: { _tag: "Timeout", limit: "exec" }, sentence: /exec time limit \(2 s\)/ },
  { name: "cpu", kernel: "python", limits: { cpu: 2 }, code: "while True: pass", reason: { _tag: "CpuLimit" }, sentence: /CPU time \(2 CPU seconds\)/ },
  { name: "memory", kernel: "python", limits: { memory: 64 }, code: "import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n        b = b'x' * (50 << 20)\n        time.sleep(60)\n        os._exit(0)\ntime.sleep(60)", reason: { _tag: "OutOfMemory" }, sentence: /memory limit \(64 MiB\)/ },
]

describe("each end of a session, seen by its user and by the operator", () => {
  let stack: Stack
  let client: WorkerClient

  beforeAll(async () => {
    stack = await makeStack({ backends: 1 })
    const start = await stack.cli(["start", "--daemon"])
    expect(start.code, start.stderr).toBe(0)
    const worker = (await stack.waitRunning()).find((r) => r.id === WORKER)
    client = await WorkerClient.connect({ port: worker?.port ?? 0, secret: await ensureWorkerSecret(stack.dataDir) })
  })

  afterAll(async () => {
    client?.close()
    await stack?.cleanup()
    expect(stack.processes()).toEqual([])
  })

  const ended = new Map<string, EndedFrame>()

  it("every limit ends its session with its own reason, in words that name the limit's value", async () => {
    await Promise.all(ENDINGS.map(async (e) => {
      const session = await client.open(e.kernel, { session: `limit-${e.name}`, limits: e.limits })
      if (e.code !== undefined) session.execute(e.code).catch(() => undefined)
      const frame = await session.ended
      ended.set(e.name, frame)
    }))
    for (const e of ENDINGS) {
      expect(ended.get(e.name)?.reason, e.name).toEqual(e.reason)
      expect(ended.get(e.name)?.message, e.name).toMatch(e.sentence)
    }
  })

  it("an operator's `sagews kill` ends a session with ClosedByOperator, and its user is told so", async () => {
    const session = await client.open("python", { session: "to-kill", user: "alice" })
    const listed = await stack.cli(["sessions", "--json"])
    expect(listed.code, listed.stderr).toBe(0)
    const live = (JSON.parse(listed.stdout) as { live: Array<{ id: string; user?: string; kind: string }> }).live
    expect(live).toContainEqual(expect.objectContaining({ id: "to-kill", user: "alice", kind: "python" }))
    const kill = await stack.cli(["kill", "to-kill"])
    expect(kill.code, kill.stderr).toBe(0)
    const frame = await session.ended
    expect(frame.reason).toEqual({ _tag: "ClosedByOperator" })
    expect(frame.message).toMatch(/an operator ended this session/)
    const again = await stack.cli(["kill", "to-kill"])
    expect(again.code).not.toBe(0)
    expect(again.stderr).toMatch(/no live session to-kill/)
  })

  it("`sagews sessions --json` lists each end with its reason", async () => {
    const listed = await stack.cli(["sessions", "--json"])
    expect(listed.code, listed.stderr).toBe(0)
    const report = JSON.parse(listed.stdout) as { live: Array<{ id: string }>; ended: Array<{ id: string; worker: string; reason: unknown }> }
    for (const e of ENDINGS) expect(report.ended).toContainEqual(expect.objectContaining({ id: `limit-${e.name}`, worker: WORKER, reason: e.reason }))
    expect(report.ended).toContainEqual(expect.objectContaining({ id: "to-kill", reason: { _tag: "ClosedByOperator" } }))
    expect(report.live.map((s) => s.id)).not.toContain("to-kill")
  })

  it("`sagews status` shows the worker's sessions as a subtree line: live by kind, ended by reason", async () => {
    const keep = await client.open("sage", { session: "kept" })
    const status = await stack.cli(["status"])
    expect(status.code, status.stderr).toBe(0)
    const lines = status.stdout.split("\n")
    const row = lines.findIndex((l) => l.trimStart().startsWith(WORKER))
    expect(row).toBeGreaterThanOrEqual(0)
    expect(lines[row + 1]).toMatch(/└─ sessions\s+live 1 \(sage 1\) · ended in the last hour 6 \(/)
    for (const reason of ["Timeout(wall)", "Timeout(idle)", "Timeout(exec)", "CpuLimit 1", "OutOfMemory 1", "ClosedByOperator 1"]) expect(lines[row + 1]).toContain(reason)
    await keep.close()
  })

  it("`sagews logs worker:1` has each end as an exit event of the worker's sessions supervisor", async () => {
    const expected = [...ENDINGS.map((e) => `limit-${e.name} exited: ${e.reason._tag === "Timeout" ? `Timeout(${e.reason.limit})` : e.reason._tag}`), "to-kill exited: ClosedByOperator"]
    let lines: Array<string> = []
    // logwatch ships within a second or so; give it time on a loaded machine
    for (let i = 0; i < 60; i++) {
      const logs = await stack.cli(["logs", WORKER, "--since", "1h"])
      lines = logs.stdout.split("\n")
      if (expected.every((want) => lines.some((l) => l.includes(want)))) break
      await new Promise((r) => setTimeout(r, 500))
    }
    for (const want of expected) expect(lines.filter((l) => l.includes(want)), want).toHaveLength(1)
    expect(lines.some((l) => /starting limit-idle/.test(l))).toBe(true)
  })
})
