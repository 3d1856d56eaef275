// Completion and introspection on a real worker (issue 11): `complete` from the session's namespace (Sage's globals,
// attributes of ZZ, of an earlier cell's variable, of a Sage number literal; keywords; file names in a string),
// `inspect` as `obj?` (the docstring) and `obj??` (the source), both answered by the kernel while another cell runs
// without touching that cell's output; bad requests answered with an error that names what was wrong; and a cell's
// `language` carried to the kernel's execute command as it came.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

const displayed = (messages: ReadonlyArray<OutputMessage>): string | undefined =>
  messages.find((m): m is Extract<OutputMessage, { kind: "display" }> => m.kind === "display")?.data["text/plain"]

/** the matches of completing `code` with the cursor at its end */
const completeEnd = async (s: ClientSession, code: string): Promise<Array<string>> => (await s.complete(code, code.length)).matches

describe("completion and introspection", () => {
  let worker: TestWorker
  let client: WorkerClient
  let sage: ClientSession
  let python: ClientSession
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 253_000, last: 253_999 }, kernels: ["sage", "python"], pool: 1 })
    client = await worker.connect()
    ;[sage, python] = await Promise.all([client.open("sage"), client.open("python")])
  }, 180_000)
  afterAll(async () => {
    await Promise.all([sage?.close(), python?.close()])
    client.close()
    await stopAndCheck(worker)
  })

  it("completes Sage's globals, ZZ's attributes, an earlier cell's variable and a number literal", async () => {
    const fac = await sage.complete("fac", 3)
    expect(fac).toMatchObject({ type: "completions", cursorStart: 0, cursorEnd: 3 })
    expect(fac.matches).toContain("factorial")
    expect(fac.matches).toContain("factor")
    expect(fac.matches.every((m) => m.startsWith("fac"))).toBe(true)

    const zz = await sage.complete("n = ZZ.rand", 11)
    expect(zz).toMatchObject({ matches: ["random_element"], cursorStart: 7, cursorEnd: 11 })
    const all = await completeEnd(sage, "ZZ.")
    expect(all).toEqual(expect.arrayContaining(["random_element", "is_field", "gens"]))
    expect(all.some((m) => m.startsWith("_"))).toBe(false) // private names only for a prefix that starts with _
    expect(await completeEnd(sage, "ZZ.__ha")).toEqual(["__hash__"])

    // a variable an earlier cell defined: its own attributes (a Sage rational)
    expect(displayed(await sage.execute("x = 2/3\nx"))).toBe("2/3")
    expect(await completeEnd(sage, "x.numer")).toEqual(["numer", "numerator", "numerical_approx"])
    // in the middle of the code: only what is before the cursor counts
    expect(await sage.complete("y = 1\nx.denom + y", 13)).toMatchObject({ matches: ["denom", "denominator"], cursorStart: 8, cursorEnd: 13 })
    // Sage's preparser makes 2.is_prime() Integer(2).is_prime()
    expect(await completeEnd(sage, "2.is_prim")).toEqual(["is_prime", "is_prime_power"])
    expect(await completeEnd(sage, "for i in ra")).toEqual(expect.arrayContaining(["range"]))
    expect(await completeEnd(sage, "impor")).toContain("import")
    // nothing in a comment; file names of the home in a string
    expect(await completeEnd(sage, "# fac")).toEqual([])
    await sage.execute("_ = open('data-points.csv', 'w').write('1,2')")
    expect(await sage.complete("load('data-p", 12)).toMatchObject({ matches: ["data-points.csv"], cursorStart: 6, cursorEnd: 12 })
    // no such name: no matches (never an error)
    expect(await completeEnd(sage, "no_such_thing.ab")).toEqual([])
  })

  it("counts the cursor in UTF-16 code units, as a browser does", async () => {
    // "𝔽" is one code point but two UTF-16 code units: the positions stay the browser's
    const code = "s = '𝔽'; fact"
    const got = await python.complete(code, code.length)
    expect(got.matches).toContain("factorial")
    expect(got).toMatchObject({ cursorStart: code.length - 4, cursorEnd: code.length })
  })

  it("inspects factorial: its docstring (detail 0) and its source (detail 1)", async () => {
    const help = await sage.inspect("factorial(5)", 4)
    expect(help).toMatchObject({ type: "inspection", found: true, name: "factorial" })
    expect(help.text).toMatch(/Signature: +factorial\(/)
    expect(help.text).toMatch(/Docstring:\n\s+Returns the factorial of n\./)
    const source = await sage.inspect("factorial(5)", 4, 1)
    expect(source.text).toMatch(/Source:\nclass Function_factorial\(GinacFunction\):/)
    // inside a call's parentheses: the function called
    expect(await sage.inspect("factorial(", 10)).toMatchObject({ found: true, name: "factorial" })
    expect(await sage.inspect("ZZ.random_element", 5)).toMatchObject({ found: true, name: "ZZ.random_element", text: expect.stringMatching(/Return a random integer/) })
    // the variable of an earlier cell, and a name nothing defines
    expect((await sage.inspect("x", 1)).text).toMatch(/String form: 2\/3/)
    expect(await sage.inspect("nothing_defines_this", 3)).toEqual({ type: "inspection", session: sage.id, id: expect.any(String), found: false, name: "nothing_defines_this", text: "" })
    expect(await sage.inspect("   ", 1)).toMatchObject({ found: false, name: "", text: "" })
  })

  it("python: completes SymPy's names and a variable's attributes, inspects with inspect and pydoc", async () => {
    expect(await completeEnd(python, "fac")).toEqual(expect.arrayContaining(["factor", "factorial"]))
    await python.execute("numbers = [3, 1, 2]")
    expect(await completeEnd(python, "numbers.so")).toEqual(["sort"])
    expect(await completeEnd(python, "np.linalg.in")).toEqual(["inv"])
    const help = await python.inspect("factorial", 9)
    expect(help).toMatchObject({ found: true, name: "factorial" })
    expect(help.text).toMatch(/Docstring:\nImplementation of factorial function over nonnegative integers/)
    expect((await python.inspect("factorial", 9, 1)).text).toMatch(/Source:\nclass factorial\(CombinatorialFunction\):/)
    // a built-in has no source: its help says so, and gives its docstring
    expect((await python.inspect("len", 3, 1)).text).toMatch(/Source: +not available[^\n]*\nDocstring:\nReturn the number of items in a container\./)
  })

  it("answers while another cell runs, and leaves that cell's output as it is", async () => {
    // Sage: sleep(5), which waits in C with the interpreter lock released
    const sleeping = sage.execute("print('before')\nsleep(5)\nprint('after')")
    const started = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(await completeEnd(sage, "facto")).toEqual(["factor", "factorial"])
    expect(await completeEnd(sage, "x.numer")).toEqual(["numer", "numerator", "numerical_approx"])
    expect((await sage.inspect("factorial", 4)).text).toMatch(/Returns the factorial of n/)
    expect((await sage.inspect("factorial", 4, 1)).text).toMatch(/class Function_factorial/)
    expect(Date.now() - started).toBeLessThan(4_500)
    const slept = await sleeping
    expect(text(slept)).toBe("before\nafter\n")
    expect(text(slept, "stderr")).toBe("")
    expect(slept.filter((m) => m.kind !== "stdout" && m.kind !== "done")).toEqual([])
    expect(slept.at(-1)).toEqual({ kind: "done", status: "ok" })

    // Python: a busy loop in Python code, which lets the other thread in between bytecodes
    const busy = python.execute("import time\nend = time.time() + 4\nn = 0\nwhile time.time() < end:\n    n += 1\nprint('busy done', n > 0)")
    await new Promise((resolve) => setTimeout(resolve, 500))
    const during = Date.now()
    expect(await completeEnd(python, "numbers.so")).toEqual(["sort"])
    expect((await python.inspect("factorial", 9)).found).toBe(true)
    expect(Date.now() - during).toBeLessThan(3_000)
    const looped = await busy
    expect(looped).toEqual([{ kind: "stdout", text: "busy done True\n" }, { kind: "done", status: "ok" }])
  })

  it("refuses a cursor outside the code, huge code and a terminal, saying what was wrong", async () => {
    await expect(sage.complete("fac", 4)).rejects.toThrow(/cursor 4 is outside the code, which is 3 UTF-16 code units long/)
    await expect(sage.inspect("fac", -1)).rejects.toThrow(/cursor -1 is outside the code/)
    const huge = "a".repeat(256 * 1024 + 1)
    await expect(sage.complete(huge, 3)).rejects.toThrow(/262145 bytes of UTF-8, more than the limit of 262144 bytes/)
    const terminal = await client.open("terminal", { cols: 80, rows: 24 })
    await expect(terminal.complete("ls", 2)).rejects.toThrow(/is a terminal session: only a sage or python session can complete code/)
    await expect(terminal.inspect("ls", 2)).rejects.toThrow(/only a sage or python session can inspect code/)
    await terminal.close()
    // the session is fine afterwards
    expect(await completeEnd(sage, "facto")).toEqual(["factor", "factorial"])
  })

  it("carries a cell's language to the kernel's execute command as it came", async () => {
    // the kernel's commands, as its output thread reads them, recorded by the session's own code
    await python.execute([
      "import gc",
      "pipes = next(o for o in gc.get_objects() if type(o).__name__ == 'OutputPipes')",
      "commands = []",
      "handle = pipes.commands",
      "pipes.commands = lambda c: (commands.append(dict(c)), handle(c))[1]",
    ].join("\n"))
    await python.execute("1 + 1", undefined, { language: "python" })
    await python.execute("2 + 2", undefined, { language: "gp" })
    await python.execute("3 + 3")
    const seen = await python.execute("print([(c['code'], c.get('language')) for c in commands if c['type'] == 'execute'][:3])")
    expect(text(seen)).toBe("[('1 + 1', 'python'), ('2 + 2', 'gp'), ('3 + 3', None)]\n")
  })
})
