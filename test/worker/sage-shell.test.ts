// A Sage session behaves as Sage's own shell and notebook do: Sage's display manager, `?`/`??`/help, IPython's
// magics, `!cmd` inside the sandbox, `_`/`__`, %hist, %reset, load/attach in the home, tracebacks at the cell's
// lines, one KeyboardInterrupt per interrupt, and cells in other languages through Sage's interfaces.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { displays, startTestWorker, status, stopAndCheck, type TestWorker, text, value } from "./harness.ts"

type ErrorMessage = Extract<OutputMessage, { kind: "error" }>
const errors = (messages: ReadonlyArray<OutputMessage>): Array<ErrorMessage> => messages.filter((m): m is ErrorMessage => m.kind === "error")

describe("a sage session is Sage's shell", () => {
  let worker: TestWorker
  let client: WorkerClient
  let s: ClientSession
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 254_000, last: 254_999 }, kernels: ["sage", "python"], pool: 1 })
    client = await worker.connect()
    s = await client.open("sage")
  })
  afterAll(async () => {
    await s?.close()
    client?.close()
    await stopAndCheck(worker)
  })

  it("prints values through Sage's display manager: matrices side by side, %display modes", async () => {
    expect(value(await s.execute("[matrix(2, [1,2,3,4]), matrix(2, [5,6,7,8])]"))).toBe("[\n[1 2]  [5 6]\n[3 4], [7 8]\n]")
    expect(displays(await s.execute("x^2/2"))).toEqual([{ "text/plain": "1/2*x^2" }])
    await s.execute("%display latex")
    expect(displays(await s.execute("x^2/2"))).toEqual([{ "text/latex": expect.stringContaining("\\frac{1}{2} \\, x^{2}"), "text/plain": "1/2*x^2" }])
    await s.execute("%display ascii_art")
    expect(value(await s.execute("x^2/2"))).toBe(" 2\nx \n--\n2 ")
    await s.execute("%display plain")
    expect(displays(await s.execute("x^2/2"))).toEqual([{ "text/plain": "1/2*x^2" }])
    await s.execute("%display None")
  })

  it("typesets show() once, with no text line beside it; graphics and animations are images only; html() is HTML", async () => {
    const shown = await s.execute("show(x^2/2)")
    expect(text(shown)).toBe("")
    expect(displays(shown)).toEqual([{ "text/latex": expect.stringContaining("\\frac{1}{2} \\, x^{2}"), "text/plain": "1/2*x^2" }])
    const plotted = await s.execute("plot(sin(x), (x, 0, pi))")
    expect(text(plotted)).toBe("")
    expect(displays(plotted)).toHaveLength(1)
    expect(Buffer.from(displays(plotted)[0]?.["image/png"] ?? "", "base64").subarray(1, 4).toString()).toBe("PNG")
    expect(displays(await s.execute("html('<b>bold</b>')"))[0]?.["text/html"]).toContain("<b>bold</b>")
    // an animation is one GIF picture, not HTML around one
    const animated = displays(await s.execute("animate([plot(sin(x + k), (x, 0, 6)) for k in [0, 1, 2]])"))
    expect(animated).toEqual([{ "image/gif": expect.any(String), "text/plain": "Animation with 3 frames" }])
    expect(Buffer.from(animated[0]?.["image/gif"] ?? "", "base64").subarray(0, 6).toString()).toMatch(/^GIF8[79]a$/)
  })

  it("answers obj? with the docstring, obj?? with the source, and help(obj)", async () => {
    await s.execute('def twice(n):\n    "Doubles n, as a test of help."\n    return 2*n')
    expect(text(await s.execute("twice?"))).toContain("Doubles n, as a test of help.")
    // the source as the cell ran it, preparsed, as Sage's own shell shows it
    expect(text(await s.execute("twice??"))).toMatch(/Source:\s+def twice\(n\):[\s\S]*return Integer\(2\)\*n/)
    expect(text(await s.execute("help(twice)"))).toContain("Doubles n, as a test of help.")
    expect(text(await s.execute("factorial?"))).toContain("Returns the factorial of n.")
  })

  it("has IPython's magics: %time, %%time, %timeit, %hist, and _ and __", async () => {
    const timed = await s.execute("%time factor(2^64+1)")
    expect(text(timed)).toContain("Wall time")
    expect(value(timed)).toBe("274177 * 67280421310721")
    const cellTimed = await s.execute("%%time\n2/3 + 1/3")
    expect(text(cellTimed)).toContain("Wall time")
    expect(value(cellTimed)).toBe("1")
    expect(text(await s.execute("%timeit -n 3 -r 2 factor(91)"))).toMatch(/per loop/)
    await s.execute("5")
    await s.execute("6")
    expect(value(await s.execute("_ + __"))).toBe("11")
    expect(text(await s.execute("%hist"))).toContain("%time factor(2^64+1)")
  })

  it("keeps Sage across %reset, and forgets what the user defined", async () => {
    await s.execute("forgotten = 1")
    await s.execute("%reset -f")
    expect(errors(await s.execute("forgotten"))[0]).toMatchObject({ ename: "NameError" })
    expect(value(await s.execute("factor(x^2 - 1)"))).toBe("(x + 1)*(x - 1)")
  })

  it("runs !cmd inside the session's sandbox", async () => {
    const out = text(await s.execute("!id -u; echo $HOME; pwd"))
    const [uid, home, cwd] = out.trim().split("\n")
    expect(Number(uid)).toBeGreaterThanOrEqual(254_000)
    expect(Number(uid)).toBeLessThanOrEqual(254_999)
    expect([home, cwd]).toEqual(["/home/sagews", "/home/sagews"])
  })

  it("loads and attaches files relative to the home, and reloads an attached file when it changes", async () => {
    await s.execute("open('defs.sage', 'w').write('loaded = 2^10\\n')")
    await s.execute("load('defs.sage')")
    expect(value(await s.execute("loaded"))).toBe("1024")
    await s.execute("open('watched.sage', 'w').write('watched = 1\\n')\nattach('watched.sage')")
    expect(value(await s.execute("watched"))).toBe("1")
    // a later modification time than the first version's, whatever the file system's resolution
    await s.execute("import os\nopen('watched.sage', 'w').write('watched = 2\\n')\nos.utime('watched.sage', (os.stat('watched.sage').st_mtime + 5,) * 2)")
    expect(value(await s.execute("watched"))).toBe("2")
    await s.execute("detach('watched.sage')")
  })

  it("points a traceback at the cell's own lines", async () => {
    const out = await s.execute("def broken():\n    return 1/0\n\nbroken()")
    const [error] = errors(out)
    expect(error).toMatchObject({ ename: "ZeroDivisionError", evalue: "rational division by zero" })
    const trace = error?.traceback.join("") ?? ""
    expect(trace).toMatch(/line 4\n/)
    expect(trace).toMatch(/line 2, in broken/)
    expect(status(out)).toBe("error")
  })

  it("says KeyboardInterrupt once when a cell is interrupted, with no C backtrace", async () => {
    const running = s.execute("factorial(10^9)")
    await new Promise((resolve) => setTimeout(resolve, 700))
    s.interrupt()
    const out = await running
    expect(status(out)).toBe("interrupted")
    expect(errors(out)).toEqual([{ kind: "error", ename: "KeyboardInterrupt", evalue: "interrupted", traceback: [] }])
    const printed = text(out) + text(out, "stderr")
    expect(printed).not.toMatch(/KeyboardInterrupt|backtrace|gdb|cysignals/i)
  })

  it("runs %%gap, a first line %gp, and the run's language through Sage's interfaces in this session", async () => {
    expect(text(await s.execute("%%gap\nSymmetricGroup(3);\nSize(last);"))).toBe("Sym( [ 1 .. 3 ] )\n6\n")
    expect(text(await s.execute("%gp\nfactor(91)"))).toBe("\n[ 7 1]\n\n[13 1]\n\n")
    expect(text(await s.execute("2 + 3", undefined, { language: "gp" }))).toBe("5\n")
    expect(text(await s.execute("factor(x^2-1);", undefined, { language: "maxima" }))).toBe("(x-1)*(x+1)\n")
    // python in a sage session: Sage's preparser is off for the cell, and on again after it
    expect(value(await s.execute("2/3", undefined, { language: "python" }))).toBe("0.6666666666666666")
    expect(value(await s.execute("2/3"))).toBe("2/3")
    expect(displays(await s.execute("<i>it</i>", undefined, { language: "html" }))[0]?.["text/html"]?.trim()).toBe("<i>it</i>")
  })

  it("refuses a language its kernel cannot run, naming it", async () => {
    const py = await client.open("python")
    try {
      const out = await py.execute("SymmetricGroup(3)", undefined, { language: "gap" })
      expect(errors(out)[0]).toMatchObject({ ename: "LanguageError", evalue: expect.stringContaining("gap runs in a sage session") })
      expect(value(await py.execute("1 + 1"))).toBe("2")
    } finally {
      await py.close()
    }
  })
})
