// Stateful sessions through haproxy with the real client library: open, streamed execute, interrupt, close; admission
// refusals that name the limit; SIGKILL of the serving backend mid-computation → resumed on another, nothing lost or doubled.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import type { EndedEvent, OutputEvent } from "../../src/client/types.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, postgres: true, haproxy: true, backendConfig: { admission: { sessionsPerClient: 2, execsPerClient: 2 } } })
})

afterAll(async () => {
  const dir = stack?.dataDir
  const alive = stack?.backends.filter((b) => b.proc.exitCode === null && b.proc.signalCode === null) ?? []
  for (const backend of alive) expect(await backend.stop("SIGTERM")).toBe(0)
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

type Transport = "websocket" | "xhr-streaming" | "xhr-polling"
/**
 * Through haproxy by default. Node's sockjs-client keeps no cookies, so its xhr transports cannot follow haproxy's
 * stickiness cookie: those go to a backend directly here (the browser tests take them through haproxy).
 */
const client = (transport: Transport = "websocket") =>
  new SagewsClient(`${transport === "websocket" ? stack.frontUrl() : stack.backendUrl(0)}/sockjs`, { transports: [transport], backoff: 100, maxBackoff: 500 })

describe("stateful sessions", () => {
  it.each(["websocket", "xhr-streaming", "xhr-polling"] as const)("open, execute, interrupt and close over %s", async (transport) => {
    const c = client(transport)
    try {
      const pong = await c.ping()
      expect(pong).toMatchObject({ type: "pong" })
      const session = await c.open("python")
      const seqs: Array<number> = []
      session.onOutput((e) => seqs.push(e.seq))
      const first = await session.execute("x = 20\nprint(x + 1)")
      expect(first.status).toBe("ok")
      expect(first.outputs[0]).toEqual({ kind: "stdout", text: "21\n" })
      expect((await session.execute("x * 2")).outputs[0]).toMatchObject({ kind: "display", data: { "text/plain": "40" } })
      const slow = session.execute("import time\nfor i in range(100):\n    time.sleep(0.1)")
      await new Promise((r) => setTimeout(r, 500))
      session.interrupt()
      expect((await slow).status).toBe("interrupted")
      expect(seqs).toEqual(seqs.map((_, i) => i + 1))
      const ended = new Promise((resolve) => session.onEnded(resolve))
      session.close()
      expect(await ended).toMatchObject({ type: "ended", reason: { _tag: "ClosedByUser" } })
    } finally {
      c.close()
    }
  })

  it("refuses a session or an execution past a per-client limit, naming it and when to retry", async () => {
    const c = client()
    try {
      const a = await c.open("python")
      const b = await c.open("python")
      await expect(c.open("python")).rejects.toMatchObject({ reply: { type: "error", code: "limit", limit: "sessionsPerClient", max: 2, retryAfterMs: 2000 } })
      const sleeps = [a.execute("import time; time.sleep(2)"), b.execute("import time; time.sleep(2)")]
      await new Promise((r) => setTimeout(r, 200))
      const refused = await a.execute("1")
      expect(refused.status).toBe("error")
      expect(refused.outputs[0]).toMatchObject({ kind: "error", ename: "limit" })
      expect(JSON.stringify(refused.outputs[0])).toMatch(/execsPerClient/)
      await Promise.all(sleeps)
      a.close()
      b.close()
    } finally {
      c.close()
    }
  })

  it("a message to a session of another client's connection is served only after a resume, and a stale resume is refused", async () => {
    const c = client()
    try {
      expect(await c.request({ type: "resume", id: "r1", session: "no-such-session", fromSeq: 1 })).toMatchObject({ type: "error", code: "unknown_session" })
      expect(await c.request({ type: "execute", id: "e1", session: "no-such-session", code: "1" })).toMatchObject({ type: "error", code: "unknown_session" })
    } finally {
      c.close()
    }
  })

  it("a limit that ends a session is named in the execution's done and in the ended message, with nothing between", async () => {
    const c = client()
    try {
      const session = await c.open("python", { limits: { exec: 1 } })
      const ended = new Promise<EndedEvent>((resolve) => session.onEnded(resolve))
      const outputs: Array<OutputEvent> = []
      session.onOutput((e) => outputs.push(e))
      const result = await session.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(10)")
      expect(result).toMatchObject({ status: "limit", limit: "exec" })
      expect(result.outputs).toEqual([{ kind: "stdout", text: "sleeping\n" }, { kind: "done", status: "limit", limit: "exec" }])
      expect(await ended).toMatchObject({ type: "ended", reason: { _tag: "Timeout", limit: "exec" }, limit: "exec" })
      expect((await ended).message).toMatch(/exec time limit \(1 s\)/)
      // the done is the session's last output: `ended` is the very next seq
      expect(outputs.at(-1)?.msg).toEqual({ kind: "done", status: "limit", limit: "exec" })
      expect((await ended).seq).toBe((outputs.at(-1)?.seq ?? 0) + 1)
    } finally {
      c.close()
    }
  })

  it("SIGKILL of the serving backend during a computation: the client resumes through another backend with every output once", async () => {
    const c = client()
    try {
      const session = await c.open("python")
      const events: Array<OutputEvent> = []
      session.onOutput((e) => events.push(e))
      const states: Array<string> = []
      c.onState((s, backend) => states.push(`${s}:${backend}`))
      const first = c.backend
      const run = session.execute("import time\nfor i in range(30):\n    print(i, flush=True)\n    time.sleep(0.05)")
      while (events.length < 5) await new Promise((r) => setTimeout(r, 20))
      const victim = stack.backends[Number(first.split(":")[1]) - 1]
      expect(victim).toBeDefined()
      await victim?.stop("SIGKILL")
      const result = await run
      expect(result.status).toBe("ok")
      expect(c.backend).not.toBe(first)
      const printed = events.filter((e) => e.msg.kind === "stdout").map((e) => (e.msg.kind === "stdout" ? e.msg.text : "")).join("")
      expect(printed).toBe(Array.from({ length: 30 }, (_, i) => `${i}\n`).join(""))
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
      expect(states.some((s) => s.startsWith("reconnecting"))).toBe(true)
      expect((await session.execute("print('after')")).outputs[0]).toEqual({ kind: "stdout", text: "after\n" })
      session.close()
    } finally {
      c.close()
    }
  })
})
