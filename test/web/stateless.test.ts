// Stateless single-cell execution against real workers, backends and memcached: HTTP and SockJS, the cache hit on the
// second identical request (also from another backend), opt-out, errors not cached, memcached down = uncached, cancel,
// a run a limit ended (status limit, naming it).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import { postJson, processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, cache: true })
})

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

const execute = (i: number, body: unknown) => postJson(`${stack.backendUrl(i)}/api/v1/execute`, body)

describe("stateless execution", () => {
  it("POST /api/v1/execute runs the code and the second identical request comes from memcached, also on another backend", async () => {
    const code = `print(6*7)  # ${Date.now()}`
    const first = await execute(0, { kernel: "python", code })
    expect(first.status).toBe(200)
    expect(first.json).toMatchObject({ status: "ok", cached: false, outputs: [{ kind: "stdout", text: "42\n" }, { kind: "done", status: "ok" }] })
    const second = await execute(0, { kernel: "python", code })
    expect(second.json).toMatchObject({ status: "ok", cached: true, outputs: first.json["outputs"] })
    const other = await execute(1, { kernel: "python", code })
    expect(other.json).toMatchObject({ status: "ok", cached: true, outputs: first.json["outputs"] })
  })

  it("does not cache failed runs, opted-out code or requests with cache: false", async () => {
    const failing = `raise ValueError("no") # ${Date.now()}`
    expect((await execute(0, { kernel: "python", code: failing })).json).toMatchObject({ status: "error", cached: false })
    expect((await execute(0, { kernel: "python", code: failing })).json).toMatchObject({ status: "error", cached: false })
    const optOut = `# sagews: nocache\nprint(1) # ${Date.now()}`
    await execute(0, { kernel: "python", code: optOut })
    expect((await execute(0, { kernel: "python", code: optOut })).json).toMatchObject({ cached: false })
    const code = `print(2) # ${Date.now()}`
    await execute(0, { kernel: "python", code, cache: false })
    expect((await execute(0, { kernel: "python", code, cache: false })).json).toMatchObject({ cached: false })
  })

  it("over SockJS: runOutput messages then runDone with cached; a newer run cancels the running one", async () => {
    const client = new SagewsClient(`${stack.backendUrl(1)}/sockjs`, { transports: ["websocket"] })
    try {
      const code = `print("hi") # ${Date.now()}`
      const first = await client.run(code, { kernel: "python" })
      expect(first.reply).toMatchObject({ type: "runDone", status: "ok", cached: false })
      expect(first.outputs[0]).toEqual({ kind: "stdout", text: "hi\n" })
      const second = await client.run(code, { kernel: "python" })
      expect(second.reply).toMatchObject({ type: "runDone", status: "ok", cached: true })
      expect(second.outputs).toEqual(first.outputs)

      const slow = client.run(`import time\ntime.sleep(30) # ${Date.now()}`, { kernel: "python" })
      await new Promise((r) => setTimeout(r, 300))
      const fast = await client.run(`print(3) # ${Date.now()}`, { kernel: "python" })
      expect(fast.reply).toMatchObject({ status: "ok" })
      expect((await slow).reply).toMatchObject({ type: "runDone", status: "cancelled" })
    } finally {
      client.close()
    }
  })

  it("a run ended by a limit answers status limit naming it, its outputs ending with done(limit), over HTTP and SockJS", async () => {
    const code = `import time\nprint('sleeping', flush=True)\ntime.sleep(30) # ${Date.now()}`
    const done = { kind: "done", status: "limit", limit: "exec" }
    const http = await execute(0, { kernel: "python", code, limits: { exec: 1 } })
    expect(http.status).toBe(200)
    expect(http.json).toMatchObject({ status: "limit", limit: "exec", cached: false, message: expect.stringMatching(/exec time limit \(1 s\)/) })
    expect(http.json["outputs"]).toEqual([{ kind: "stdout", text: "sleeping\n" }, done])
    const client = new SagewsClient(`${stack.backendUrl(1)}/sockjs`, { transports: ["websocket"] })
    try {
      const run = await client.run(code, { kernel: "python", limits: { exec: 1 } })
      expect(run.reply).toMatchObject({ type: "runDone", status: "limit", limit: "exec", cached: false })
      expect(run.outputs).toEqual([{ kind: "stdout", text: "sleeping\n" }, done])
      // a run a limit ended is not cached: the same code runs, and is cut off, again
      expect((await client.run(code, { kernel: "python", limits: { exec: 1 } })).reply).toMatchObject({ status: "limit", cached: false })
    } finally {
      client.close()
    }
  })

  it("a hung memcached (SIGSTOP) does not hang requests: they run uncached", async () => {
    const pid = stack.cachePid()
    expect(pid).toBeDefined()
    process.kill(pid ?? 0, "SIGSTOP")
    try {
      const code = `print(7) # ${Date.now()}`
      const first = await execute(0, { kernel: "python", code })
      expect(first.json).toMatchObject({ status: "ok", cached: false })
      const second = await execute(0, { kernel: "python", code })
      expect(second.json).toMatchObject({ status: "ok", cached: false })
    } finally {
      try {
        process.kill(pid ?? 0, "SIGCONT")
      } catch {
        // the actor's liveness probe may already have killed the stopped memcached (after ~3 s)
      }
    }
  })

  it("with memcached down every request still works, uncached", async () => {
    await stack.stopCache()
    const code = `print(5) # ${Date.now()}`
    for (let i = 0; i < 2; i++) {
      const reply = await execute(i, { kernel: "python", code })
      expect(reply.status).toBe(200)
      expect(reply.json).toMatchObject({ status: "ok", cached: false, outputs: [{ kind: "stdout", text: "5\n" }, { kind: "done", status: "ok" }] })
    }
  })
})
