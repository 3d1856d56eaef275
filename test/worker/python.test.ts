// Python sessions on a real worker: SymPy, NumPy, Matplotlib, streaming, errors, interrupt, interacts,
// stateless runs, resume by sequence number, terminals; nothing left behind afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { WorkerClient } from "../../src/wire/client.ts"
import { removeDataDir, settle, startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

describe("python sessions", () => {
  let worker: TestWorker
  let client: WorkerClient
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 220_000, last: 220_999 }, kernels: ["python"], pool: 1, maxSessionsPerUser: 2 })
    client = await worker.connect()
  })
  afterAll(async () => {
    client.close()
    await stopAndCheck(worker)
  })

  it("evaluates SymPy and NumPy like a notebook cell", async () => {
    const s = await client.open("python", { user: "alice" })
    expect(client.isolation).toBe("full")
    const factor = await s.execute("factor(x**2 - 1)")
    expect(factor[0]).toMatchObject({ kind: "display", data: { "text/plain": "(x - 1)*(x + 1)", "text/latex": expect.stringContaining("\\left(x - 1\\right)") } })
    expect(factor.at(-1)).toEqual({ kind: "done", status: "ok" })
    const numpy = await s.execute("a = np.arange(6).reshape(2, 3)\nprint('sum', a.sum())\na.T @ a")
    expect(text(numpy)).toBe("sum 15\n")
    expect(numpy.find((m) => m.kind === "display")).toMatchObject({ data: { "text/plain": expect.stringContaining("array([[ 9, 12, 15]") } })
    expect(await s.execute("a.shape")).toContainEqual({ kind: "display", data: { "text/plain": "(2, 3)" } })
    const png = await s.execute("plt.plot([1, 4, 9]); plt.title('squares')")
    const image = png.find((m) => m.kind === "display" && "image/png" in m.data)
    expect(image?.kind === "display" && Buffer.from(image.data["image/png"] ?? "", "base64").subarray(1, 4).toString()).toBe("PNG")
    const subprocess = await s.execute("import os, sys\nprint('a')\nos.system('echo from-shell; echo err >&2')\nprint('b', file=sys.stderr)")
    expect(text(subprocess)).toBe("a\nfrom-shell\n")
    expect(text(subprocess, "stderr")).toBe("err\nb\n")
    const html = await s.execute("class H:\n  def _repr_html_(self): return '<b>hi</b>'\nH()")
    expect(html[0]).toMatchObject({ kind: "display", data: { "text/html": "<b>hi</b>" } })
    expect((await s.close()).reason).toEqual({ _tag: "ClosedByUser" })
  })

  it("reports errors with a traceback and keeps the session", async () => {
    const s = await client.open("python")
    const out = await s.execute("def f():\n    return 1/0\nf()")
    expect(out[0]).toMatchObject({ kind: "error", ename: "ZeroDivisionError", evalue: "division by zero" })
    expect(out[0]?.kind === "error" && out[0].traceback.join("")).toContain("line 2, in f")
    expect(out.at(-1)).toEqual({ kind: "done", status: "error" })
    expect(await s.execute("40 + 2")).toContainEqual({ kind: "display", data: { "text/plain": "42" } })
    await s.close()
  })

  it("streams output as it is produced and an interrupt keeps the state", async () => {
    const s = await client.open("python")
    await s.execute("kept = 'still here'")
    let lines = 0
    const running = s.execute("import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.1)", (m) => {
      if (m.kind === "stdout") lines++
    })
    // streamed: the first lines arrive while the cell (10 s in all) is still running, and the interrupt cuts it short
    while (lines < 3) await new Promise((r) => setTimeout(r, 20))
    s.interrupt()
    const out = await running
    expect(out.filter((m) => m.kind === "stdout").length).toBeLessThan(100)
    expect(out.at(-1)).toEqual({ kind: "done", status: "interrupted" })
    expect(out).toContainEqual(expect.objectContaining({ kind: "error", ename: "KeyboardInterrupt" }))
    expect(await s.execute("kept")).toContainEqual({ kind: "display", data: { "text/plain": "'still here'" } })
    // executions queued behind an interrupted one are dropped, and each says so with its own done
    const long = s.execute("import time\nprint('long', flush=True)\ntime.sleep(10)")
    const queued = s.execute("print('never')")
    await new Promise((r) => setTimeout(r, 300))
    s.interrupt()
    expect((await long).at(-1)).toEqual({ kind: "done", status: "interrupted" })
    expect(await queued).toEqual([{ kind: "done", status: "interrupted" }])
    await s.close()
  })

  it("describes interact controls and re-runs the function on a change", async () => {
    const s = await client.open("python")
    const out = await s.execute(
      "@interact\ndef f(n=slider(1, 10, 1, default=3), name=input_box('bob'), loud=checkbox(False), op=selector(['add', 'mul'])):\n    print(name.upper() if loud else name, n, op)",
    )
    const controls = out.find((m) => m.kind === "interact")
    expect(controls).toMatchObject({
      kind: "interact",
      interact: "1",
      controls: [
        { name: "n", control: "slider", default: 3, min: 1, max: 10, step: 1 },
        { name: "name", control: "input_box", default: "bob" },
        { name: "loud", control: "checkbox", default: false },
        { name: "op", control: "selector", default: "add", values: ["add", "mul"] },
      ],
    })
    expect(text(out)).toBe("bob 3 add\n")
    expect(text(await s.interactChange("1", "n", 7))).toBe("bob 7 add\n")
    expect(text(await s.interactChange("1", "loud", true))).toBe("BOB 7 add\n")
    expect(text(await s.interactChange("1", "op", "mul"))).toBe("BOB 7 mul\n")
    await s.close()
  })

  it("runs stateless executions in a fresh session that ends after done", async () => {
    const { messages, ended } = await client.run("python", "import os\nprint(os.getcwd())\n2**100")
    expect(messages).toContainEqual({ kind: "display", data: { "text/plain": String(2n ** 100n) } })
    expect(ended.reason).toEqual({ _tag: "Normal" })
  })

  it("keeps recent output so another connection can resume from a sequence number", async () => {
    const s = await client.open("python")
    await s.execute("print('one')")
    const seqAfterOne = s.lastSeq
    await s.execute("print('two')")
    const other = await worker.connect()
    const resumed = other.resume(s.id, "python", seqAfterOne + 1)
    const replay: Array<string> = []
    resumed.onOutput((f) => f.msg.kind === "stdout" && replay.push(f.msg.text))
    expect(text(await resumed.execute("print('three')"))).toBe("three\n")
    expect(replay).toEqual(["two\n", "three\n"])
    await resumed.close()
    other.close()
  })

  it("runs a terminal with the session's uid and home", async () => {
    const t = await client.open("terminal", { cols: 100, rows: 30 })
    let screen = ""
    t.onOutput((f) => {
      if (f.msg.kind === "terminal") screen += f.msg.data
    })
    t.terminalInput("id -u; pwd; echo done-$((6*7))\n")
    const deadline = Date.now() + 10_000
    while (!screen.includes("done-42") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(screen).toContain("done-42")
    expect(screen).toMatch(/22\d{4}\r?\n/)
    expect(screen).toContain("/home/sagews")
    t.terminalResize(120, 40)
    expect((await t.close()).reason._tag).toBe("ClosedByUser")
  })

  it("ends sessions at their idle and wall limits, and computing is not idle", async () => {
    const busy = await client.open("python", { limits: { idle: 1 } })
    expect(await busy.execute("import time\ntime.sleep(2)\n'finished'")).toContainEqual({ kind: "display", data: { "text/plain": "'finished'" } })
    const ended = await busy.ended
    expect(ended.reason).toEqual({ _tag: "Timeout", limit: "idle" })
    expect(ended.message).toContain("idle time limit (1 s)")
    const short = await client.open("python", { limits: { wall: 1 } })
    const running = short.execute("import time\ntime.sleep(30)").catch(() => [])
    expect((await short.ended).reason).toEqual({ _tag: "Timeout", limit: "wall" })
    await running
  })

  it("enforces maxSessionsPerUser", async () => {
    const opened = await Promise.all(Array.from({ length: 2 }, () => client.open("python", { user: "bob" })))
    await expect(client.open("python", { user: "bob" })).rejects.toThrow(/per-user maximum/)
    await Promise.all(opened.map((s) => s.close()))
  })
})

describe("a worker that is not root", () => {
  it("applies the same limits under its own uid and reports reduced isolation", async () => {
    const nobody = 65_534
    const worker = await startTestWorker({ uidRange: { first: 221_000, last: 221_099 }, kernels: ["python"], pool: 0, limits: { memory: 512 } }, undefined, nobody)
    const client = await worker.connect()
    expect(client.isolation).toBe("reduced")
    const s = await client.open("python")
    const who = await s.execute("import os, resource\n(os.getuid(), resource.getrlimit(resource.RLIMIT_CPU)[0], resource.getrlimit(resource.RLIMIT_FSIZE)[0] > 0)")
    expect(who).toContainEqual({ kind: "display", data: { "text/plain": "(65534, 3600, True)" } })
    const big = await s.execute("b = bytearray(1024**3)")
    expect(big.find((m) => m.kind === "error")).toMatchObject({ ename: "MemoryError" })
    const t = await client.open("terminal")
    await t.close()
    await s.close()
    client.close()
    expect(await worker.stop()).toBe(0)
    const left = await settle(worker)
    expect(left.homes).toEqual([])
    expect(left.kernels).toEqual([])
    await removeDataDir(worker)
  })
})
