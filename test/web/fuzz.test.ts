// Fuzzing the backend's edges: random JSON, wrong types and huge strings over SockJS and as HTTP bodies each get an
// error; the connection stays up and the backend still serves real work afterwards.
import SockJS from "sockjs-client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ServerMessage } from "../../src/protocol/browser.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack

beforeAll(async () => {
  stack = await startWebStack({ backends: 1 })
})

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

/** mulberry32: a seeded generator, so a failure can be replayed */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const TYPES = ["hello", "ping", "run", "open", "execute", "interrupt", "close", "resume", "interact", "terminalInput", "terminalResize", "nope", ""]

const randomValue = (r: () => number, depth = 0): unknown => {
  const k = Math.floor(r() * (depth > 2 ? 6 : 8))
  switch (k) {
    case 0: return null
    case 1: return r() < 0.5
    case 2: return Math.floor((r() - 0.5) * 2 ** (r() * 60))
    case 3: return "x".repeat(Math.floor(r() * 40))
    case 4: return r() < 0.1 ? "é\u0000\ud800".repeat(1000) : String(r())
    case 5: return -0.5
    case 6: return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1))
    default: return Object.fromEntries(Array.from({ length: Math.floor(r() * 5) }, (_, i) => [["type", "id", "session", "code", "kernel", "fromSeq", "limits", `k${i}`][Math.floor(r() * 8)] ?? "k", randomValue(r, depth + 1)]))
  }
}

/** A message that is often almost right: a real type with fields of random types. */
const fuzzMessage = (r: () => number): string => {
  const roll = r()
  if (roll < 0.1) return "{not json" + "\"".repeat(Math.floor(r() * 3))
  if (roll < 0.15) return JSON.stringify({ type: "run", id: "big", code: "x".repeat(2 * 1024 * 1024) })
  if (roll < 0.25) return JSON.stringify(randomValue(r))
  const message: Record<string, unknown> = { type: TYPES[Math.floor(r() * TYPES.length)] }
  for (const key of ["id", "session", "code", "kernel", "fromSeq", "limits", "cols", "value", "extra"]) if (r() < 0.5) message[key] = randomValue(r)
  return JSON.stringify(message)
}

const connect = (url: string): Promise<{ sock: WebSocket; messages: Array<unknown> }> =>
  new Promise((resolve, reject) => {
    const sock = new SockJS(url, undefined, { transports: ["websocket"] }) as unknown as WebSocket
    const messages: Array<unknown> = []
    sock.onmessage = (e: MessageEvent) => messages.push(JSON.parse(String(e.data)))
    sock.onopen = () => resolve({ sock, messages })
    sock.onclose = () => reject(new Error("closed"))
  })

describe("fuzzed input", () => {
  it("every bad SockJS message gets an error; the connection stays open and still answers", async () => {
    const { sock, messages } = await connect(`${stack.backendUrl()}/sockjs`)
    const r = rng(4242)
    let closed = false
    sock.onclose = () => (closed = true)
    const N = 400
    for (let i = 0; i < N; i++) sock.send(fuzzMessage(r))
    sock.send(JSON.stringify({ type: "ping", id: "final" }))
    const deadline = Date.now() + 20_000
    while (!messages.some((m) => (m as { id?: string }).id === "final") && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50))
    expect(closed).toBe(false)
    expect(messages.at(-1)).toMatchObject({ type: "pong", id: "final" })
    for (const m of messages) expect(ServerMessage.safeParse(m).success).toBe(true)
    const errors = messages.filter((m) => (m as { type: string }).type === "error")
    expect(errors.length).toBeGreaterThan(N / 2)
    expect(errors.every((e) => typeof (e as { message: string }).message === "string")).toBe(true)
    sock.close()
  })

  it("every bad HTTP body gets a 4xx JSON error; the backend still executes afterwards", async () => {
    const r = rng(7)
    const url = `${stack.backendUrl()}/api/v1/execute`
    for (let i = 0; i < 150; i++) {
      const roll = r()
      const body = roll < 0.1 ? "x".repeat(600 * 1024) : roll < 0.2 ? "{\"code\":" : JSON.stringify(roll < 0.6 ? randomValue(r) : { code: randomValue(r), kernel: randomValue(r), cache: randomValue(r), limits: randomValue(r) })
      const response = await fetch(url, { method: "POST", body })
      if (response.status === 200) continue // a random body that happens to be a valid request
      expect([400, 413]).toContain(response.status)
      expect(await response.json()).toMatchObject({ error: "invalid", message: expect.any(String) })
    }
    expect((await fetch(url, { method: "GET" })).status).toBe(405)
    const ok = await fetch(url, { method: "POST", body: JSON.stringify({ kernel: "python", code: "print('still here')" }) })
    expect(await ok.json()).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "still here\n" }, { kind: "done" }] })
    expect(stack.backends[0]?.proc.exitCode).toBe(null)
    expect(stack.backends[0]?.logs.filter((l) => /"level":"(fatal|error)"/.test(l))).toEqual([])
  })
})
