// haproxy in front of real backends and a worker (issue 9): a request runs at most once (no proxy retry re-sends one
// that reached a backend), a limit answers first with sagews's JSON, haproxy's own errors are JSON too, raw WebSockets
// are spread over the backends while SockJS's session URLs stay sticky.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { haproxySpec } from "../../actors/haproxy.ts"
import { proxyTimeouts, type ProxyTimeouts } from "../../src/config/proxy.ts"
import { sockjsPing } from "../e2e/sockjs.ts"
import { freePort, processesOf, startSpec, startWebStack, type WebStack } from "./harness.ts"

/** small stateless limits (s), so that a run reaches its exec limit in 2 s */
const STATELESS = { wall: 4, exec: 2, idle: 4, memory: 1024, cpu: 60 }
/** the margin is scaled down with the limits: haproxy waits 4 s + 2 s for an /api answer */
const TIMEOUTS = proxyTimeouts({ sessions: { wallSeconds: 600, idleSeconds: 60, execSeconds: 30 } }, STATELESS, 2_000)

interface Front {
  readonly url: string
  readonly port: number
  stop(): Promise<void>
}

let stack: WebStack
const fronts: Array<Front> = []

/** haproxy for the stack's backends with `timeouts`, in a data dir of its own (so several can run at once). */
const startFront = async (timeouts: ProxyTimeouts): Promise<Front> => {
  const dataDir = mkdtempSync(join(tmpdir(), "sagews-proxy-"))
  const port = await freePort()
  const backends = stack.backends.map((b, i) => ({ name: `b${i + 1}`, port: b.port }))
  // nothing listens on nginx's port: be_static is down, and nothing here asks it
  const haproxy = await startSpec(haproxySpec({ dataDir, port, bind: "127.0.0.1", nginxPort: await freePort(), backends, timeouts }))
  const front: Front = {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await haproxy.stop()
      const left = processesOf(dataDir)
      rmSync(dataDir, { recursive: true, force: true })
      expect(left).toEqual([])
    },
  }
  fronts.push(front)
  return front
}

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, backendConfig: { statelessLimits: STATELESS } })
})

afterAll(async () => {
  for (const front of fronts) await front.stop()
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** stateless runs the worker has ended so far: one log line per run, however it ended */
const runsEnded = (): number => stack.workers[0]?.logs.filter((l) => /ended python session run-/.test(l)).length ?? 0

/** Waits until the worker has ended more than `before` runs, then a little longer, and says how many more it ended. */
const runsSince = async (before: number, settleMs: number): Promise<number> => {
  for (let waited = 0; runsEnded() === before && waited < 10_000; waited += 50) await sleep(50)
  await sleep(settleMs)
  return runsEnded() - before
}

const execute = (front: Front, code: string) =>
  fetch(`${front.url}/api/v1/execute`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ kernel: "python", code, cache: false }) })

describe("haproxy in front of the backends", () => {
  it("a run that reaches its exec limit answers JSON status limit through haproxy, and runs once", async () => {
    const front = await startFront(TIMEOUTS)
    const before = runsEnded()
    const started = performance.now()
    const reply = await execute(front, `while True: pass  # ${Math.random()}`)
    const elapsed = performance.now() - started
    expect(reply.headers.get("content-type")).toBe("application/json")
    expect(reply.status).toBe(200)
    expect(await reply.json()).toMatchObject({ status: "limit", limit: "exec", cached: false })
    expect(elapsed).toBeGreaterThan(STATELESS.exec * 1000)
    expect(elapsed).toBeLessThan(TIMEOUTS.api)
    expect(await runsSince(before, 1_000)).toBe(1)
  })

  it("when haproxy's own timeout strikes first, the client gets a JSON 504 and the request is not sent again", async () => {
    // misconfigured on purpose: haproxy waits less than the run takes
    const front = await startFront({ ...TIMEOUTS, api: 1_500 })
    const before = runsEnded()
    const reply = await execute(front, `import time\ntime.sleep(3)\nprint("late")  # ${Math.random()}`)
    expect(reply.status).toBe(504)
    expect(reply.headers.get("content-type")).toBe("application/json")
    expect(await reply.json()).toEqual({ error: "failed", message: "the backend did not answer within 1.5 s; the request was not sent again" })
    // a retry would have been sent before the 504; its run would end (cancelled) within a second of it
    expect(await runsSince(before, 1_500)).toBe(1)
  })

  it("spreads raw WebSocket connections (/sockjs/websocket) over the backends", async () => {
    const front = fronts[0] ?? (await startFront(TIMEOUTS))
    const sockets: Array<WebSocket> = []
    try {
      const backends: Array<string> = []
      for (let i = 0; i < 6; i++) {
        const ws = new WebSocket(`ws://127.0.0.1:${front.port}/sockjs/websocket`)
        sockets.push(ws)
        // the first message on every connection is the welcome, which names the backend
        const welcome = await new Promise<{ type: string; backend: string }>((resolve, reject) => {
          ws.onmessage = (e) => resolve(JSON.parse(String(e.data)) as { type: string; backend: string })
          ws.onerror = () => reject(new Error("the raw WebSocket failed"))
        })
        expect(welcome.type).toBe("welcome")
        backends.push(welcome.backend)
      }
      expect(new Set(backends)).toEqual(new Set(["backend:1", "backend:2"]))
    } finally {
      for (const ws of sockets) ws.close()
    }
  })

  it("keeps SockJS's session URLs on one backend for clients without cookies (xhr-polling, xhr-streaming)", async () => {
    const front = fronts[0] ?? (await startFront(TIMEOUTS))
    for (let i = 0; i < 4; i++) {
      for (const transport of ["xhr-polling", "xhr-streaming"] as const) {
        const pong = await sockjsPing(`${front.url}/sockjs`, transport, `${transport}-${i}`)
        expect(pong.backend).toMatch(/^backend:[12]$/)
      }
    }
  })
})
