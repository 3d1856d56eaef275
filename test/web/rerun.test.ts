// A stateless run keeps its word when its parts die (issue 9): a run whose worker is killed mid-run is run again on
// the restarted worker and answers ok; a request that haproxy sends again after its backend died attaches to the run
// already on the worker (the request's X-Request-Id names it), so the code runs once; the same X-Request-Id again
// answers with the same run.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import type { HttpExecuteReply } from "../../src/protocol/browser.ts"
import { connectRaw } from "../protocol/raw.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack

beforeAll(async () => {
  // three backends: each test that kills one leaves two, one to be killed and one to answer
  stack = await startWebStack({ backends: 3, kernels: ["python"], haproxy: true })
})

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** indexes of the backends not killed yet */
const alive = new Set([0, 1, 2])
const kill = async (index: number): Promise<number> => {
  alive.delete(index)
  const at = Date.now()
  await stack.backends[index]?.stop("SIGKILL")
  return at
}
const anyAlive = (): number => [...alive][0]!

const execute = async (url: string, code: string, headers: Record<string, string> = {}): Promise<{ status: number; reply: HttpExecuteReply }> => {
  const res = await fetch(`${url}/api/v1/execute`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ kernel: "python", code, cache: false }) })
  return { status: res.status, reply: (await res.json()) as HttpExecuteReply }
}

/** the texts the run printed */
const printed = (reply: HttpExecuteReply): Array<string> => reply.outputs.flatMap((m) => (m.kind === "stdout" ? m.text.trim().split("\n") : []))

/** prints when it started (ms since the epoch), sleeps, prints "end": a second execution would start later */
const STAMPED = "import time\nprint(int(time.time() * 1000), flush=True)\ntime.sleep(2)\nprint('end')"

describe("a stateless run under faults", () => {
  it("whose worker is SIGKILLed mid-run is run again on the restarted worker and answers ok", async () => {
    const answer = execute(stack.backendUrl(anyAlive()), "import time\ntime.sleep(1.5)\nprint('survived')")
    await sleep(600)
    await stack.workers[0]?.stop("SIGKILL")
    await sleep(300)
    await stack.startWorker(0)
    const { status, reply } = await answer
    expect(status).toBe(200)
    expect(reply).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "survived\n" }, { kind: "done", status: "ok" }] })
  })

  it("over SockJS, whose worker dies after it printed, starts over: runRestarted, then its whole output once", async () => {
    const client = new SagewsClient(`${stack.backendUrl(anyAlive())}/sockjs`, { transports: ["websocket"] })
    try {
      let restarts = 0
      const answer = client.run("import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')", { kernel: "python", cache: false, onRestart: () => restarts++ })
      await sleep(700)
      await stack.workers[0]?.stop("SIGKILL")
      await sleep(300)
      await stack.startWorker(0)
      const { reply, outputs } = await answer
      expect(reply).toMatchObject({ type: "runDone", status: "ok" })
      expect(restarts).toBe(1)
      expect(outputs.flatMap((m) => (m.kind === "stdout" ? [m.text] : []))).toEqual(["a\n", "b\n"])
    } finally {
      client.close()
    }
  })

  it("in flight or sent while its only worker stops (sagews restart) is run on the worker that comes back", async () => {
    const url = stack.backendUrl(anyAlive())
    const inFlight = execute(url, "import time\ntime.sleep(1)\nprint('in flight')")
    await sleep(400)
    const stopped = stack.workers[0]!.stop("SIGTERM")
    await sleep(50)
    const during = execute(url, "print('during')")
    await stopped
    await stack.startWorker(0)
    expect((await inFlight).reply).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "in flight\n" }, { kind: "done" }] })
    expect((await during).reply).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "during\n" }, { kind: "done" }] })
  })

  it("sent to a worker that is down waits for it instead of failing", async () => {
    await stack.workers[0]?.stop("SIGKILL")
    const answer = execute(stack.backendUrl(anyAlive()), "print(6 * 7)")
    await sleep(500)
    await stack.startWorker(0)
    const { status, reply } = await answer
    expect(status).toBe(200)
    expect(printed(reply)).toEqual(["42"])
  })

  it("sent at once to two live backends with the same X-Request-Id runs once: one answers it, the other says so (or, had it ended, gives the same run)", async () => {
    const headers = { "x-request-id": `twice-${Date.now()}` }
    const [a, b] = [...alive]
    const replies = (await Promise.all([execute(stack.backendUrl(a!), STAMPED, headers), execute(stack.backendUrl(b!), STAMPED, headers)])).map((r) => r.reply)
    const failed = replies.filter((r) => r.status !== "ok")
    if (failed.length > 0) {
      expect(replies.map((r) => r.status).sort()).toEqual(["failed", "ok"])
      expect(failed[0]?.message).toMatch(/running through another backend|running on this backend already/)
    } else {
      // a loaded machine may deliver the second only after the run ended: then it answers with that same run
      expect(printed(replies[1]!)).toEqual(printed(replies[0]!))
    }
    // and it ran once: the same id again, now that it ended, answers with that run
    const again = await execute(stack.backendUrl(a!), STAMPED, headers)
    expect(printed(again.reply)).toEqual(printed(replies.find((r) => r.status === "ok")!))
  })

  it("over SockJS, whose backend dies mid-run, is sent again by the client library after it reconnects, and attaches to the same run", async () => {
    const client = new SagewsClient(`${stack.frontUrl()}/sockjs`, { transports: ["websocket"] })
    try {
      const { backend } = (await client.ping()) as { backend: string }
      const answer = client.run(STAMPED, { kernel: "python", cache: false })
      await sleep(800)
      const killedAt = await kill(Number(backend.split(":")[1]) - 1)
      const reply = await answer
      expect(reply.reply).toMatchObject({ type: "runDone", status: "ok" })
      const lines = reply.outputs.flatMap((m) => (m.kind === "stdout" ? m.text.trim().split("\n") : []))
      expect(lines[1]).toBe("end")
      expect(Number(lines[0])).toBeLessThan(killedAt)
    } finally {
      client.close()
    }
  })

  it("over SockJS, sent again on a new connection to the same backend the moment the first connection died, is answered", async () => {
    // as when haproxy dies under a connection: the backend cancels the run and closes its session while the client,
    // reconnected through the new haproxy, sends the same run again to the same backend
    const url = stack.backendUrl(anyAlive())
    for (let round = 0; round < 3; round++) {
      const first = await connectRaw(url)
      const { token } = await first.request({ type: "hello", id: "h1" })
      const second = await connectRaw(url)
      expect(await second.request({ type: "hello", id: "h2", token })).toMatchObject({ type: "identity" })
      const run = { type: "run", id: `again-${Date.now()}-${round}`, kernel: "python", code: STAMPED, cache: false }
      first.send(run)
      await first.next((m) => m.type === "runOutput" && m.id === run.id)
      first.close()
      second.send(run)
      const done = await second.next((m) => m.type === "runDone" && m.id === run.id, 30_000)
      expect(done).toMatchObject({ status: "ok" })
      const lines = second.received.filter((m) => m.type === "runOutput" && m.id === run.id).flatMap((m) => {
        const msg = m.msg as { kind: string; text?: string }
        return msg.kind === "stdout" ? (msg.text ?? "").trim().split("\n") : []
      })
      expect(lines.at(-1)).toBe("end")
      second.close()
    }
  })

  it("whose backend dies mid-run is sent again by haproxy to another backend, which attaches to the same run", async () => {
    // the SRV cookie sends it to that backend first
    const first = anyAlive()
    const answer = execute(stack.frontUrl(), STAMPED, { cookie: `SRV=b${first + 1}` })
    await sleep(800)
    const killedAt = await kill(first)
    const { status, reply } = await answer
    expect(status).toBe(200)
    expect(reply.status).toBe("ok")
    const [started, end] = printed(reply)
    expect(end).toBe("end")
    // the answer is the run that started before the backend died, not a second one
    expect(Number(started)).toBeLessThan(killedAt)
  })

  it("sent twice with the same X-Request-Id to one backend runs once: both answers are the first run's", async () => {
    const headers = { "x-request-id": `same-${Date.now()}` }
    const url = stack.backendUrl(anyAlive())
    const first = execute(url, STAMPED, headers)
    await sleep(500)
    const second = await execute(url, STAMPED, headers)
    const one = await first
    expect(one.reply.status).toBe("ok")
    // the second arrived while the first ran on this backend: it waits for that run and answers with it, not a second run
    expect(second.reply.status).toBe("ok")
    expect(printed(second.reply)).toEqual(printed(one.reply))
    const again = await execute(url, STAMPED, headers)
    expect(again.reply.status).toBe("ok")
    expect(printed(again.reply)).toEqual(printed(one.reply))
    const other = await execute(url, STAMPED.replace("'end'", "'other'"), headers)
    // the same id with other code is another run
    expect(printed(other.reply)[1]).toBe("other")
    const bad = await fetch(`${url}/api/v1/execute`, { method: "POST", headers: { "x-request-id": "x".repeat(129) }, body: "{}" })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ error: "invalid", message: expect.stringContaining("x-request-id header") })
  })
})
