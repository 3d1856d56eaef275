// Completion, help and a cell's language through a backend (issue 11): `complete` and `inspect` over the raw WebSocket
// and the client library reach the session's kernel and come back, also while a cell of the session runs (whose
// output they leave alone); bad requests are answered at once with an error naming the field; `language` passes
// through `execute`, `run` and POST /api/v1/execute, an unknown one is refused by name, and the result cache keeps a
// language's result apart.
import { createHash } from "node:crypto"
import { afterAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import { cacheKey } from "../../src/backend/cache.ts"
import { connectRaw, type Msg, type RawClient } from "../protocol/raw.ts"
import { postJson, webStackFor } from "./harness.ts"

const stack = webStackFor({ kernels: ["sage", "python"], cache: true })
const open: Array<RawClient> = []
afterAll(() => {
  for (const c of open) c.close()
})

let counter = 0
const id = (prefix: string): string => `${prefix}${++counter}`

const connect = async (): Promise<RawClient> => {
  const c = await connectRaw(stack().backendUrl())
  open.push(c)
  return c
}

const openSession = async (c: RawClient, kernel: string): Promise<string> => {
  const opened = await c.request({ type: "open", id: id("o"), kernel }, 60_000)
  expect(opened).toMatchObject({ type: "opened", kernel })
  return String(opened["session"])
}

/** runs `code` in `session`, resolving with its outputs (the done last) */
const run = async (c: RawClient, session: string, code: string, extra: Record<string, unknown> = {}): Promise<Array<Msg>> => {
  const x = id("x")
  expect(await c.request({ type: "execute", id: x, session, code, ...extra })).toMatchObject({ type: "ack" })
  const outputs: Array<Msg> = []
  for (;;) {
    const m = await c.next((o) => o.type === "output" && o.id === x, 60_000)
    const msg = m["msg"] as Msg & { kind: string }
    outputs.push(msg)
    if (msg.kind === "done") return outputs
  }
}

describe("completion and help through the backend", () => {
  it("completes and inspects in a Sage session, also while a cell of it runs", async () => {
    const c = await connect()
    const session = await openSession(c, "sage")
    const fac = await c.request({ type: "complete", id: id("k"), session, code: "fac", cursor: 3 })
    expect(fac).toMatchObject({ type: "completions", session, cursorStart: 0, cursorEnd: 3 })
    expect(fac["matches"]).toEqual(expect.arrayContaining(["factor", "factorial"]))
    expect(await c.request({ type: "complete", id: id("k"), session, code: "n = ZZ.rand", cursor: 11 })).toMatchObject({ matches: ["random_element"], cursorStart: 7, cursorEnd: 11 })

    const help = await c.request({ type: "inspect", id: id("q"), session, code: "factorial(3)", cursor: 2 })
    expect(help).toMatchObject({ type: "inspection", session, found: true, name: "factorial", text: expect.stringMatching(/Docstring:\n\s+Returns the factorial of n\./) })
    // detail left out is 0; detail 1 is the source
    expect(await c.request({ type: "inspect", id: id("q"), session, code: "factorial", cursor: 9, detail: 1 })).toMatchObject({ text: expect.stringMatching(/Source:\nclass Function_factorial/) })
    expect(await c.request({ type: "inspect", id: id("q"), session, code: "undefined_name", cursor: 3 })).toMatchObject({ type: "inspection", found: false, text: "" })

    // while a cell sleeps: the answers come, and the cell's output is only its own
    const x = id("x")
    expect(await c.request({ type: "execute", id: x, session, code: "v = 7\nprint('start')\nsleep(4)\nprint('end')" })).toMatchObject({ type: "ack" })
    await c.next((m) => m.type === "output" && m.id === x)
    const during = Date.now()
    expect(await c.request({ type: "complete", id: id("k"), session, code: "v.is_pri", cursor: 8 })).toMatchObject({ matches: ["is_prime", "is_prime_power"] })
    expect(await c.request({ type: "inspect", id: id("q"), session, code: "factorial", cursor: 1 })).toMatchObject({ found: true })
    expect(Date.now() - during).toBeLessThan(3_000)
    const outputs: Array<unknown> = []
    for (;;) {
      const msg = (await c.next((o) => o.type === "output" && o.id === x, 30_000))["msg"] as { kind: string }
      outputs.push(msg)
      if (msg.kind === "done") break
    }
    expect(outputs).toEqual([{ kind: "stdout", text: "end\n" }, { kind: "done", status: "ok" }])
  })

  it("holds up nothing: an interrupt sent after a completion that waits for a busy kernel is answered at once", async () => {
    const c = await connect()
    const session = await openSession(c, "sage")
    const x = id("x")
    // C code that holds Python's interpreter lock: the kernel's output thread cannot answer until it ends
    expect(await c.request({ type: "execute", id: x, session, code: "factorial(10^9)" })).toMatchObject({ type: "ack" })
    await new Promise((resolve) => setTimeout(resolve, 500))
    const k = id("k")
    c.send({ type: "complete", id: k, session, code: "fac", cursor: 3 })
    const sent = Date.now()
    const ack = await c.request({ type: "interrupt", id: id("i"), session })
    expect(ack).toMatchObject({ type: "ack" })
    expect(Date.now() - sent).toBeLessThan(2_000)
    expect(await c.next((m) => m.type === "output" && m.id === x && (m["msg"] as { kind: string }).kind === "done", 30_000)).toMatchObject({ msg: { kind: "done", status: "interrupted" } })
    // and the completion is answered once the kernel is free
    const completions = await c.next((m) => m.id === k, 15_000)
    expect(completions).toMatchObject({ type: "completions", matches: expect.arrayContaining(["factorial"]) })
    expect(c.received.indexOf(completions)).toBeGreaterThan(c.received.indexOf(ack))
  })

  it("the client library's session.complete and session.inspect", async () => {
    const client = new SagewsClient(`${stack().backendUrl()}/sockjs`, { transports: ["websocket"] })
    try {
      const session = await client.open("python")
      await session.execute("numbers = [3, 1, 2]")
      expect(await session.complete("numbers.so", 10)).toMatchObject({ type: "completions", matches: ["sort"], cursorStart: 8, cursorEnd: 10 })
      expect(await session.inspect("len(numbers)", 1)).toMatchObject({ type: "inspection", found: true, name: "len", text: expect.stringMatching(/Return the number of items in a container/) })
      session.close()
    } finally {
      client.close()
    }
  })

  it("refuses bad requests at once, naming what was wrong; the connection stays", async () => {
    const c = await connect()
    const session = await openSession(c, "sage")
    const past = await c.request({ type: "complete", id: id("k"), session, code: "fac", cursor: 9 })
    expect(past).toMatchObject({ type: "error", code: "invalid", message: "invalid message: cursor: is 9, past the end of code (3 UTF-16 code units); send a cursor from 0 to the code's length" })
    expect(await c.request({ type: "inspect", id: id("q"), session, code: "fac", cursor: -1 })).toMatchObject({ code: "invalid", message: expect.stringMatching(/^invalid message: cursor: /) })
    expect(await c.request({ type: "inspect", id: id("q"), session, code: "fac", cursor: 1, detail: 2 })).toMatchObject({ code: "invalid", message: expect.stringMatching(/^invalid message: detail: /) })
    const huge = await c.request({ type: "complete", id: id("k"), session, code: "a".repeat(300_000), cursor: 1 })
    expect(huge).toMatchObject({ code: "invalid", message: expect.stringMatching(/^invalid message: code: is 300,000 bytes of UTF-8, more than the limit of 262,144 bytes/) })
    expect(await c.request({ type: "complete", id: id("k"), session: "no-such-session", code: "fac", cursor: 3 })).toMatchObject({ code: "unknown_session", session: "no-such-session" })
    const terminal = await openSession(c, "terminal")
    const refused = await c.request({ type: "complete", id: id("k"), session: terminal, code: "ls", cursor: 2 })
    expect(refused).toMatchObject({ code: "wrong_kind", kernel: "terminal", message: expect.stringMatching(/is a terminal session: it takes terminalInput, terminalResize, interrupt, close \(and resume\), not complete/) })
    // all of that changed nothing: the session still completes
    expect(await c.request({ type: "complete", id: id("k"), session, code: "facto", cursor: 5 })).toMatchObject({ matches: ["factor", "factorial"] })
  })
})

describe("a cell's language through the backend", () => {
  it("refuses an unknown language by name, listing the ones there are", async () => {
    const c = await connect()
    const session = await openSession(c, "python")
    const refused = await c.request({ type: "execute", id: id("x"), session, code: "1", language: "fortran" })
    expect(refused).toMatchObject({
      type: "error",
      code: "invalid",
      message: "invalid message: language: \"fortran\" is not a language a cell can be written in; use one of sage, python, gap, gp, maxima, singular, r, octave, html (or leave it out for the kernel's own)",
    })
    expect((await c.request({ type: "run", id: id("r"), code: "1", language: "cobol" }))["message"]).toMatch(/language: "cobol" is not a language/)
    const http = await postJson(`${stack().backendUrl()}/api/v1/execute`, { code: "1", kernel: "python", language: "Python" })
    expect(http).toMatchObject({ status: 400, json: { error: "invalid", message: expect.stringMatching(/language: "Python" is not a language .* use one of sage, python, gap/) } })
  })

  it("passes a language through execute to the kernel", async () => {
    const c = await connect()
    const session = await openSession(c, "python")
    // the session records the commands its kernel reads (its output thread passes each to pipes.commands)
    await run(c, session, [
      "import gc",
      "pipes = next(o for o in gc.get_objects() if type(o).__name__ == 'OutputPipes')",
      "commands = []",
      "handle = pipes.commands",
      "pipes.commands = lambda c: (commands.append(dict(c)), handle(c))[1]",
    ].join("\n"))
    await run(c, session, "print('in python')", { language: "python" })
    await run(c, session, "1 + 1")
    const seen = await run(c, session, "print([c.get('language') for c in commands if c['type'] == 'execute'][:2])")
    expect(seen[0]).toEqual({ kind: "stdout", text: "['python', None]\n" })
  })

  it("keys the result cache by language: the same code in another language is not answered from the cache", async () => {
    const code = `print(6 * 7)  # ${Date.now()}`
    const url = `${stack().backendUrl()}/api/v1/execute`
    expect((await postJson(url, { code, kernel: "python" })).json).toMatchObject({ status: "ok", cached: false })
    expect((await postJson(url, { code, kernel: "python" })).json).toMatchObject({ status: "ok", cached: true })
    const inPython = await postJson(url, { code, kernel: "python", language: "python" })
    expect(inPython.json).toMatchObject({ status: "ok", cached: false, outputs: [{ kind: "stdout", text: "42\n" }, { kind: "done", status: "ok" }] })
    expect((await postJson(url, { code, kernel: "python", language: "python" })).json).toMatchObject({ cached: true })
    // a cell without a language keys as it did before languages were part of the key
    const limits = { wall: 60, idle: 60, exec: 30, memory: 1024, cpu: 60 }
    expect(cacheKey("sage", "v", limits, "1")).not.toBe(cacheKey("sage", "v", limits, "1", "sage"))
    expect(cacheKey("sage", "v", limits, "1", "gp")).not.toBe(cacheKey("sage", "v", limits, "1", "gap"))
    const before = createHash("sha256").update(JSON.stringify([1, "sage", "v", { cpu: 60, exec: 30, idle: 60, memory: 1024, wall: 60 }, "1"])).digest("hex")
    expect(cacheKey("sage", "v", limits, "1")).toBe(`sagews:r:${before}`)
  })
})
