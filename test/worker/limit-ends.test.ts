// An execution ended by a limit, on a real worker: its last message is one `done` with status `limit` naming the
// limit, nothing of that session follows but `ended` with the limit's reason, and no backtrace or debugger text of
// the kill (Sage's cysignals answers SIGQUIT with one) reaches the user; executions queued behind it get nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EndReason, KernelKind, OutputFrame, SessionLimits } from "../../src/protocol/worker.ts"
import type { WorkerClient } from "../../src/wire/client.ts"
import { startTestWorker, stopAndCheck, type TestWorker } from "./harness.ts"

/** What the kill of a kernel must never show the user. */
const KILL_NOISE = /gdb|cysignals|Attaching|Traceback|backtrace|SIGQUIT|Unhandled/i

interface Ending {
  readonly kernel: KernelKind
  readonly limits: SessionLimits
  readonly code: string
  /** the limit `done` and `ended` name */
  readonly limit: "exec" | "wall" | "cpu" | "memory"
  readonly reason: EndReason
}

describe("an execution ended by a limit", () => {
  let worker: TestWorker
  let client: WorkerClient
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 280_000, last: 280_999 }, kernels: ["sage", "python"], pool: 1 })
    client = await worker.connect()
  })
  afterAll(async () => {
    client.close()
    await stopAndCheck(worker)
  })

  /** Runs `code` (and `queued` behind it) until a limit ends the session; every frame of the session, in order. */
  const endByLimit = async (e: Ending, queued: ReadonlyArray<string> = []) => {
    const s = await client.open(e.kernel, { limits: e.limits })
    const frames: Array<OutputFrame> = []
    s.onOutput((frame) => frames.push(frame))
    const running = s.execute(e.code)
    const behind = queued.map((code) => s.execute(code).then(() => "done", () => "ended"))
    const ended = await s.ended
    // `execute` resolves at its `done`: a limit answers it, it is not left to the session's end.
    const messages = await running
    return { ended, frames, messages, behind: await Promise.all(behind) }
  }

  const expectLimitEnd = (e: Ending, run: Awaited<ReturnType<typeof endByLimit>>): void => {
    const { ended, frames, messages } = run
    const done = { kind: "done", status: "limit", limit: e.limit }
    expect(messages.at(-1)).toEqual(done)
    expect(messages.filter((m) => m.kind === "done")).toEqual([done])
    // the done is the session's last output; the one frame after it is `ended`, with the limit's reason
    expect(frames.at(-1)?.msg).toEqual(done)
    expect(frames.at(-1)?.id).toBe("e1")
    expect(ended.reason).toEqual(e.reason)
    expect(ended.seq).toBe((frames.at(-1)?.seq ?? 0) + 1)
    expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i + 1))
    const shown = frames.map((f) => JSON.stringify(f.msg)).join("\n")
    expect(shown).not.toMatch(KILL_NOISE)
    expect(frames.some((f) => f.msg.kind === "done" && f.msg.status === "interrupted")).toBe(false)
  }

  it("a Sage `while True: pass` under exec 2 s ends with done(limit exec), then Timeout(exec), and no cysignals backtrace", async () => {
    const e: Ending = { kernel: "sage", limits: { exec: 2 }, code: "while True: pass", limit: "exec", reason: { _tag: "Timeout", limit: "exec" } }
    expectLimitEnd(e, await endByLimit(e))
  })

  it("a Python `time.sleep(60)` under exec 2 s ends the same way; the executions queued behind it get nothing", async () => {
    const e: Ending = { kernel: "python", limits: { exec: 2 }, code: "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", limit: "exec", reason: { _tag: "Timeout", limit: "exec" } }
    const run = await endByLimit(e, ["print('second')", "print('third')"])
    expectLimitEnd(e, run)
    expect(run.messages[0]).toEqual({ kind: "stdout", text: "sleeping\n" })
    expect(run.frames.every((f) => f.id === "e1")).toBe(true)
    expect(run.behind).toEqual(["ended", "ended"])
  })

  it("a CPU hog past its CPU seconds ends with done(limit cpu), then CpuLimit", async () => {
    const e: Ending = { kernel: "python", limits: { cpu: 1 }, code: "while True: pass", limit: "cpu", reason: { _tag: "CpuLimit" } }
    expectLimitEnd(e, await endByLimit(e))
  })

  it("the wall limit, reached while Sage computes in C code, ends with done(limit wall), then Timeout(wall)", async () => {
    const e: Ending = { kernel: "sage", limits: { wall: 4 }, code: "print('computing', flush=True)\nfactorial(10^10)", limit: "wall", reason: { _tag: "Timeout", limit: "wall" } }
    expectLimitEnd(e, await endByLimit(e))
  })

  it("children past the memory limit end it with done(limit memory), then OutOfMemory", async () => {
    const code = "import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n        b = b'x' * (50 << 20)\n        time.sleep(60)\n        os._exit(0)\ntime.sleep(60)"
    const e: Ending = { kernel: "python", limits: { memory: 64 }, code, limit: "memory", reason: { _tag: "OutOfMemory" } }
    expectLimitEnd(e, await endByLimit(e))
  })
})
