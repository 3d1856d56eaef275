// The browser protocol as docs/PROTOCOL.md states it, tried over the raw WebSocket against a real worker, two real
// backends and PostgreSQL: which error a session message gets and why (not attached, ended, unknown, wrong kind),
// sizes in UTF-8 bytes, resume's fromSeq, and a connection told when another one resumes its session.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import { processesOf, postJson, startWebStack, type WebStack } from "../web/harness.ts"
import { connectRaw, type Msg, type RawClient } from "./raw.ts"

let stack: WebStack
const open: Array<RawClient> = []

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, postgres: true })
})

afterAll(async () => {
  for (const c of open) c.close()
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

/** the identity token of the one person this file's connections are (its first connection was issued it) */
let mine: string | undefined

/** a connection of that person (by `hello` with its token), or of a `stranger`: a new identity */
const connect = async (backend = 0, as: "me" | "stranger" = "me"): Promise<RawClient> => {
  const c = await connectRaw(stack.backendUrl(backend))
  open.push(c)
  if (as === "me") {
    const identity = await c.request({ type: "hello", id: id("h"), ...(mine !== undefined ? { token: mine } : {}) })
    expect(identity).toMatchObject({ type: "identity" })
    mine = String(identity.token)
  }
  return c
}

let counter = 0
const id = (prefix: string): string => `${prefix}${++counter}`

const openSession = async (c: RawClient, kernel: "python" | "terminal" = "python"): Promise<string> => {
  const reply = await c.request({ type: "open", id: id("o"), kernel })
  expect(reply).toMatchObject({ type: "opened", kernel })
  return String(reply.session)
}

/** runs `code` and waits for its done; the outputs */
const execute = async (c: RawClient, session: string, code: string): Promise<Array<Msg>> => {
  const x = id("x")
  expect(await c.request({ type: "execute", id: x, session, code })).toMatchObject({ type: "ack", id: x })
  const outputs: Array<Msg> = []
  for (;;) {
    const output = await c.next((m) => m.type === "output" && m.id === x)
    outputs.push(output)
    if ((output.msg as { kind: string }).kind === "done") return outputs
  }
}

const closeSession = async (c: RawClient, session: string): Promise<Msg> => {
  expect(await c.request({ type: "close", id: id("c"), session })).toMatchObject({ type: "ack" })
  return c.next((m) => m.type === "ended" && m.session === session)
}

describe("which error a session message gets", () => {
  it("a made-up session id: unknown_session, for resume and for execute", async () => {
    const c = await connect()
    const resume = await c.request({ type: "resume", id: id("s"), session: "made-up", fromSeq: 1 })
    expect(resume).toMatchObject({ type: "error", code: "unknown_session", session: "made-up" })
    expect(resume.message).not.toMatch(/resume it first/)
    const execute = await c.request({ type: "execute", id: id("x"), session: "made-up", code: "1" })
    expect(execute).toMatchObject({ type: "error", code: "unknown_session", session: "made-up" })
    expect(execute.message).toMatch(/no session made-up/)
  })

  it("a live session this connection has not resumed: not_attached, on its own backend and on another", async () => {
    const owner = await connect(0)
    const session = await openSession(owner)
    for (const backend of [0, 1]) {
      const other = await connect(backend)
      const reply = await other.request({ type: "execute", id: id("x"), session, code: "print('stolen')" })
      expect(reply).toMatchObject({ type: "error", code: "not_attached", session })
      expect(reply.message).toMatch(/resume/)
    }
    // and the owner still has it
    expect((await execute(owner, session, "print(1)"))[0]).toMatchObject({ msg: { kind: "stdout", text: "1\n" } })
    await closeSession(owner, session)
  })

  it("an ended session: session_ended with its reason, on the connection that had it and on others", async () => {
    const owner = await connect(0)
    const session = await openSession(owner)
    await closeSession(owner, session)
    for (const c of [owner, await connect(0), await connect(1)]) {
      const reply = await c.request({ type: "execute", id: id("x"), session, code: "1" })
      expect(reply).toMatchObject({ type: "error", code: "session_ended", session, reason: { _tag: "ClosedByUser" } })
      expect(reply.message).toMatch(/ended.*the session was closed/)
    }
    // a resume within the worker's minute replays up to its ended
    const late = await connect(1)
    expect(await late.request({ type: "resume", id: id("s"), session, fromSeq: 1 })).toMatchObject({ type: "resumed", session })
    expect(await late.next((m) => m.type === "ended" && m.session === session)).toMatchObject({ reason: { _tag: "ClosedByUser" } })
  })

  it("another identity: unknown_session for a live and for an ended session, by resume and by execute, as for a made-up id", async () => {
    const owner = await connect(0)
    const live = await openSession(owner)
    const ended = await openSession(owner)
    await closeSession(owner, ended)
    for (const backend of [0, 1]) {
      const stranger = await connect(backend, "stranger")
      for (const session of [live, ended]) {
        const resume = await stranger.request({ type: "resume", id: id("s"), session, fromSeq: 1 })
        expect(resume).toMatchObject({ type: "error", code: "unknown_session", session })
        expect(resume.message).toBe(`no session ${session} exists: the session registry has no record of that id; check it, or open a new session`)
        const execute = await stranger.request({ type: "execute", id: id("x"), session, code: "print('stolen')" })
        expect(execute).toMatchObject({ type: "error", code: "unknown_session", session })
        for (const type of ["interrupt", "close"]) expect(await stranger.request({ type, id: id("m"), session })).toMatchObject({ code: "unknown_session" })
      }
      // and the stranger heard nothing of the owner's session
      expect(stranger.received.filter((m) => m.session === live && m.type !== "error")).toEqual([])
    }
    // the owner still has it, untouched
    expect((await execute(owner, live, "print(1)"))[0]).toMatchObject({ msg: { kind: "stdout", text: "1\n" } })
    await closeSession(owner, live)
  })

  it("a message a session's kind does not take: wrong_kind, naming the kind and what it accepts", async () => {
    const c = await connect()
    const terminal = await openSession(c, "terminal")
    const kernel = await openSession(c, "python")
    const onTerminal = await c.request({ type: "execute", id: id("x"), session: terminal, code: "ls" })
    expect(onTerminal).toMatchObject({ type: "error", code: "wrong_kind", session: terminal, kernel: "terminal" })
    expect(onTerminal.message).toMatch(/terminal session.*terminalInput/)
    const interact = await c.request({ type: "interact", id: id("i"), session: terminal, interact: "1", control: "n", value: 1 })
    expect(interact).toMatchObject({ type: "error", code: "wrong_kind" })
    const onKernel = await c.request({ type: "terminalInput", id: id("t"), session: kernel, data: "ls\r" })
    expect(onKernel).toMatchObject({ type: "error", code: "wrong_kind", session: kernel, kernel: "python" })
    expect(onKernel.message).toMatch(/python session.*execute/)
    expect(await c.request({ type: "terminalResize", id: id("t"), session: kernel, cols: 80, rows: 24 })).toMatchObject({ type: "error", code: "wrong_kind" })
    await closeSession(c, terminal)
    await closeSession(c, kernel)
  })
})

describe("sizes are UTF-8 bytes", () => {
  it("code over 256 KiB of UTF-8 is refused, though it is fewer characters", async () => {
    const c = await connect()
    const session = await openSession(c)
    const code = `x = "${"é".repeat(140_000)}"` // 140,006 characters, 280,006 bytes
    const reply = await c.request({ type: "execute", id: id("x"), session, code })
    expect(reply).toMatchObject({ type: "error", code: "invalid" })
    expect(reply.message).toMatch(/code.*280,?006 bytes.*262,?144/)
    const http = await postJson(`${stack.backendUrl(0)}/api/v1/execute`, { code, kernel: "python" })
    expect(http.status).toBe(400)
    expect(http.json.message).toMatch(/code.*280,?006 bytes.*262,?144/)
    await closeSession(c, session)
  })

  it("a message over 1 MiB of UTF-8 is refused before it is parsed", async () => {
    const c = await connect()
    const text = JSON.stringify({ type: "ping", id: "big", pad: "é".repeat(600_000) })
    c.sendText(text)
    const reply = await c.next((m) => m.type === "error")
    expect(reply).toMatchObject({ code: "invalid", id: null })
    expect(reply.message).toMatch(/1,?200,?0\d\d bytes.*1,?048,?576 bytes/)
  })
})

describe("resume's fromSeq", () => {
  it("fromSeq 0 is invalid; past the session's last seq the reply starts lower than asked and output follows from there", async () => {
    const owner = await connect(0)
    const session = await openSession(owner)
    await execute(owner, session, "print(1)")
    const c = await connect(1)
    const zero = await c.request({ type: "resume", id: id("s"), session, fromSeq: 0 })
    expect(zero).toMatchObject({ type: "error", code: "invalid" })
    expect(zero.message).toMatch(/fromSeq/)
    const resumed = await c.request({ type: "resume", id: id("s"), session, fromSeq: 1_000 })
    expect(resumed).toMatchObject({ type: "resumed", session, fromSeq: 3, lastSeq: 2 })
    const outputs = await execute(c, session, "print(2)")
    expect(outputs.map((m) => m.seq)).toEqual([3, 4])
    await closeSession(c, session)
  })
})

describe("a run sent twice on one connection", () => {
  it("is one run with one answer, not a cancelled one and another", async () => {
    const c = await connect(0)
    const run = { type: "run", id: id("r"), kernel: "python", code: "import time\ntime.sleep(0.5)\nprint('once')", cache: false }
    c.send(run)
    c.send(run)
    const done = await c.next((m) => m.type === "runDone" && m.id === run.id)
    expect(done).toMatchObject({ status: "ok" })
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    expect(c.received.filter((m) => m.type === "runDone" && m.id === run.id)).toHaveLength(1)
    const printed = c.received.filter((m) => m.type === "runOutput" && m.id === run.id && (m.msg as { kind: string }).kind === "stdout")
    expect(printed.map((m) => (m.msg as { text: string }).text)).toEqual(["once\n"])
  })
})

describe("a resume elsewhere", () => {
  it("tells the connection that had the session, on the same backend and on another", async () => {
    const a = await connect(0)
    const session = await openSession(a)
    const b = await connect(0)
    expect(await b.request({ type: "resume", id: id("s"), session, fromSeq: 1 })).toMatchObject({ type: "resumed" })
    expect(await a.next((m) => m.type === "detached")).toEqual({ type: "detached", session, reason: "resumed by another connection", message: expect.stringMatching(/resume/) })
    const c = await connect(1)
    expect(await c.request({ type: "resume", id: id("s"), session, fromSeq: 1 })).toMatchObject({ type: "resumed" })
    expect(await b.next((m) => m.type === "detached")).toMatchObject({ type: "detached", session, reason: "resumed by another connection" })
    const refused = await b.request({ type: "execute", id: id("x"), session, code: "1" })
    expect(refused).toMatchObject({ type: "error", code: "not_attached" })
    expect(refused.message).toMatch(/another connection resumed it/)
    const ended = await closeSession(c, session)
    // the connections it was taken from still hear its end: ended stays every connection's last word of a session
    for (const former of [a, b]) expect(await former.next((m) => m.type === "ended" && m.session === session)).toEqual(ended)
  })

  it("the client library ends a running execution with status detached and says so, instead of waiting", async () => {
    await connect(0) // `mine` is known
    const client = new SagewsClient(`${stack.backendUrl(0)}/sockjs`, { transports: ["websocket"], ...(mine !== undefined ? { token: mine } : {}) })
    try {
      const session = await client.open("python")
      const detached = new Promise((resolve) => session.onDetached(resolve))
      const running = session.execute("import time\nprint('start', flush=True)\ntime.sleep(30)")
      while (session.lastSeq < 1) await new Promise((r) => setTimeout(r, 20))
      const thief = await connect(1)
      expect(await thief.request({ type: "resume", id: id("s"), session: session.id, fromSeq: 1 })).toMatchObject({ type: "resumed" })
      const result = await running
      expect(result).toMatchObject({ status: "detached", outputs: [{ kind: "stdout", text: "start\n" }] })
      expect(await detached).toMatchObject({ type: "detached", session: session.id })
      expect(session.detached).toBeDefined()
      await closeSession(thief, session.id)
    } finally {
      client.close()
    }
  })
})
