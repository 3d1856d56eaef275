// Admission by identity, not by claim (issue 7): client ids a caller chooses, in hello or in X-Forwarded-For, get it
// no further than the per-client and per-address limits; a tampered token is refused and the connection stays up; a
// token issued by one backend is the same client on another, for sessions and for the HTTP API's cookie.
import SockJS from "sockjs-client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import { ServerMessage } from "../../src/protocol/browser.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack

const LIMITS = { sessionsPerClient: 2, sessionsPerAddress: 4, execsPerClient: 1, execsPerAddress: 2 }

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, postgres: true, haproxy: true, backendConfig: { admission: LIMITS } })
})

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

/** A SockJS connection that sends exactly what the test writes, as an attacker's own client would. */
interface Raw {
  send(message: Record<string, unknown>): void
  /** the first message (from now or earlier) with this request id */
  reply(id: string): Promise<ServerMessage>
  /** every message received so far */
  readonly messages: Array<ServerMessage>
  readonly closed: () => boolean
  close(): void
}

const raw = (url: string): Promise<Raw> =>
  new Promise((resolve, reject) => {
    const sock = new SockJS(url, undefined, { transports: ["websocket"] }) as unknown as WebSocket
    const messages: Array<ServerMessage> = []
    const waiting = new Set<() => void>()
    let closed = false
    sock.onmessage = (e: MessageEvent) => {
      messages.push(ServerMessage.parse(JSON.parse(String(e.data))))
      for (const w of waiting) w()
    }
    sock.onclose = () => {
      closed = true
      reject(new Error("closed before it opened"))
    }
    sock.onopen = () =>
      resolve({
        messages,
        closed: () => closed,
        send: (message) => sock.send(JSON.stringify(message)),
        reply: (id) =>
          new Promise((found) => {
            const check = (): void => {
              const m = messages.find((x) => "id" in x && x.id === id)
              if (m === undefined) return
              waiting.delete(check)
              found(m)
            }
            waiting.add(check)
            check()
          }),
        close: () => sock.close(),
      })
  })

/** Closes the sessions a test opened, so that they stop holding this backend's admission slots. */
const closeAll = async (conn: Raw, sessions: ReadonlyArray<string>): Promise<void> => {
  for (const session of sessions) conn.send({ type: "close", id: `close-${session}`, session })
  for (const session of sessions) {
    await expect.poll(() => conn.messages.some((m) => m.type === "ended" && m.session === session), { timeout: 30_000 }).toBe(true)
  }
}

const opened = (m: ServerMessage): string | undefined => (m.type === "opened" ? m.session : undefined)

describe("admission by identity", () => {
  it("one connection naming a new client in hello before each open is held to sessionsPerClient", async () => {
    const conn = await raw(`${stack.backendUrl(0)}/sockjs`)
    try {
      const sessions: Array<string> = []
      const refusals: Array<ServerMessage> = []
      const hellos: Array<ServerMessage> = []
      for (let i = 0; i < 12; i++) {
        conn.send({ type: "hello", id: `h${i}`, client: `attacker-${i}-${"x".repeat(8)}` })
        hellos.push(await conn.reply(`h${i}`))
        conn.send({ type: "open", id: `o${i}`, kernel: "python" })
        const reply = await conn.reply(`o${i}`)
        const session = opened(reply)
        if (session !== undefined) sessions.push(session)
        else refusals.push(reply)
      }
      expect(sessions).toHaveLength(LIMITS.sessionsPerClient)
      expect(refusals).toHaveLength(12 - LIMITS.sessionsPerClient)
      for (const r of refusals) expect(r).toMatchObject({ type: "error", code: "limit", limit: "sessionsPerClient", max: 2 })
      // a hello that names a client is not the protocol any more: refused, and the connection stays up
      for (const h of hellos) expect(h).toMatchObject({ type: "error", code: "invalid", message: expect.stringMatching(/client/) })
      await closeAll(conn, sessions)
    } finally {
      conn.close()
    }
  })

  it("12 connections, each with its own client id and a forged token, are held to sessionsPerAddress together", async () => {
    const conns = await Promise.all(Array.from({ length: 12 }, () => raw(`${stack.backendUrl(0)}/sockjs`)))
    try {
      const sessions: Array<{ conn: Raw; session: string }> = []
      const refusals: Array<ServerMessage> = []
      const forged: Array<ServerMessage> = []
      for (const [i, conn] of conns.entries()) {
        conn.send({ type: "hello", id: "claim", client: `attacker-${i}-${"x".repeat(8)}` })
        conn.send({ type: "hello", id: "forged", token: `v1.${`attacker${i}`.padEnd(22, "A")}.${Date.now()}.${"A".repeat(43)}` })
        forged.push(await conn.reply("forged"))
        conn.send({ type: "open", id: "o", kernel: "python" })
        const reply = await conn.reply("o")
        const session = opened(reply)
        if (session !== undefined) sessions.push({ conn, session })
        else refusals.push(reply)
      }
      expect(sessions.length).toBe(LIMITS.sessionsPerAddress)
      for (const r of refusals) expect(r).toMatchObject({ type: "error", code: "limit", limit: "sessionsPerAddress", max: 4, message: expect.stringContaining("your address (127.0.0.1) has 4 live sessions") })
      expect(refusals).toHaveLength(12 - LIMITS.sessionsPerAddress)
      for (const f of forged) expect(f).toMatchObject({ type: "error", code: "identity", message: expect.stringMatching(/signature does not match/) })
      for (const { conn, session } of sessions) await closeAll(conn, [session])
    } finally {
      for (const conn of conns) conn.close()
    }
  })

  it("a tampered token is refused, naming what is wrong; the connection stays up and gets an identity of its own", async () => {
    const first = new SagewsClient(`${stack.backendUrl(0)}/sockjs`, { transports: ["websocket"] })
    await first.ping()
    const issued = first.identity
    first.close()
    expect(issued?.client).toMatch(/^[A-Za-z0-9_-]{22}$/)
    const token = issued?.token ?? ""
    const conn = await raw(`${stack.backendUrl(1)}/sockjs`)
    try {
      const [version, , issuedAt, mac] = token.split(".")
      conn.send({ type: "hello", id: "other-client", token: `${version}.${"B".repeat(22)}.${issuedAt}.${mac}` })
      expect(await conn.reply("other-client")).toMatchObject({ type: "error", code: "identity", message: expect.stringMatching(/signature does not match: it was altered/) })
      conn.send({ type: "hello", id: "older", token: `${version}.${issued?.client}.${Number(issuedAt) - 1}.${mac}` })
      expect(await conn.reply("older")).toMatchObject({ type: "error", code: "identity", message: expect.stringMatching(/signature does not match/) })
      conn.send({ type: "hello", id: "junk", token: "c-5f1a2b3c4d" })
      expect(await conn.reply("junk")).toMatchObject({ type: "error", code: "identity", message: expect.stringMatching(/malformed/) })
      conn.send({ type: "ping", id: "still-up" })
      expect(await conn.reply("still-up")).toMatchObject({ type: "pong" })
      expect(conn.closed()).toBe(false)
      conn.send({ type: "hello", id: "fresh" })
      const fresh = await conn.reply("fresh")
      expect(fresh).toMatchObject({ type: "identity", client: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) })
      if (fresh.type === "identity") expect(fresh.client).not.toBe(issued?.client)
    } finally {
      conn.close()
    }
  })

  it("a token issued by one backend is the same client on another: its session resumes there and its limits follow it", async () => {
    const a = new SagewsClient(`${stack.backendUrl(0)}/sockjs`, { transports: ["websocket"], backoff: 100 })
    const clients: Array<SagewsClient> = [a]
    try {
      const session = await a.open("python")
      expect((await session.execute("x = 41")).status).toBe("ok")
      const identity = a.identity
      expect(identity).toBeDefined()
      const token = identity?.token ?? ""

      const b = new SagewsClient(`${stack.backendUrl(1)}/sockjs`, { transports: ["websocket"], token })
      clients.push(b)
      await b.ping()
      expect(b.identity).toEqual(identity)
      const resumed = b.attach(session.id, "python", session.lastSeq + 1)
      expect((await resumed.execute("print(x + 1)")).outputs[0]).toEqual({ kind: "stdout", text: "42\n" })
      // the resumed session and one more are this client's two on backend 2, whichever connection asks next
      await b.open("python")
      const c = new SagewsClient(`${stack.backendUrl(1)}/sockjs`, { transports: ["websocket"], token })
      clients.push(c)
      await expect(c.open("python")).rejects.toMatchObject({ reply: { type: "error", code: "limit", limit: "sessionsPerClient", max: 2 } })
      expect(c.identity?.client).toBe(identity?.client)
      const stranger = new SagewsClient(`${stack.backendUrl(1)}/sockjs`, { transports: ["websocket"] })
      clients.push(stranger)
      const theirs = await stranger.open("python")
      expect(stranger.identity?.client).not.toBe(identity?.client)
      theirs.close()
      for (const s of [...b.sessions.values()]) s.close()
      await expect.poll(() => b.sessions.size + stranger.sessions.size, { timeout: 30_000 }).toBe(0)
    } finally {
      for (const client of clients) client.close()
    }
  })
})

describe("the HTTP API's identity", () => {
  const front = () => `${stack.frontUrl()}/api/v1/execute`
  const post = (url: string, code: string, headers: Record<string, string>, signal?: AbortSignal) =>
    fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ kernel: "python", code, cache: false }), ...(signal ? { signal } : {}) })
  const execs = async (i: number): Promise<number> => ((await (await fetch(`${stack.backendUrl(i)}/api/v1/status`)).json()) as { admission: { execs: number } }).admission.execs

  it("X-Forwarded-For written by the caller does not make it another address behind haproxy", async () => {
    // pinned to backend 1 by haproxy's stickiness cookie, so one backend counts every request
    const headers = (i: number) => ({ cookie: "SRV=b1", "x-forwarded-for": `198.51.100.${i}` })
    // haproxy does not pass a client's abort on to the backend: these two end by themselves, long after the refusals
    const running = [1, 2].map((i) => post(front(), `import time\ntime.sleep(8) # ${i} ${Date.now()}`, headers(i)))
    await expect.poll(() => execs(0), { timeout: 30_000 }).toBe(LIMITS.execsPerAddress)
    for (const i of [3, 4]) {
      const refused = await post(front(), `print(${i})`, headers(i))
      expect(refused.status).toBe(429)
      expect(await refused.json()).toMatchObject({ error: "limit", limit: "execsPerAddress", max: 2 })
    }
    expect(await execs(0)).toBe(LIMITS.execsPerAddress) // still running: the refusals were not a race with their end
    for (const reply of await Promise.all(running)) expect(await reply.json()).toMatchObject({ status: "ok" })
    expect(await execs(0)).toBe(0)
  })

  it("a caller without a cookie is issued one; with it, its executions count as one client from any address or backend", async () => {
    const identity = await fetch(`${stack.backendUrl(0)}/api/v1/identity`)
    const setCookie = identity.headers.get("set-cookie") ?? ""
    expect(setCookie).toMatch(/^sagews_id=v1\.[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/)
    const cookie = setCookie.split(";")[0] ?? ""
    const body = (await identity.json()) as { client: string; token: string }
    expect(cookie).toBe(`sagews_id=${body.token}`)
    const again = await fetch(`${stack.backendUrl(1)}/api/v1/identity`, { headers: { cookie } })
    expect(again.headers.get("set-cookie")).toBe(null)
    expect(await again.json()).toMatchObject({ client: body.client, token: body.token })

    const abort = new AbortController()
    // a local proxy's X-Forwarded-For: two different addresses, one client
    const running = post(`${stack.backendUrl(1)}/api/v1/execute`, `import time\ntime.sleep(60) # ${Date.now()}`, { cookie, "x-forwarded-for": "198.51.100.20" }, abort.signal).catch(() => undefined)
    try {
      await expect.poll(() => execs(1), { timeout: 30_000 }).toBe(1)
      const refused = await post(`${stack.backendUrl(1)}/api/v1/execute`, "print(1)", { cookie, "x-forwarded-for": "198.51.100.21" })
      expect(refused.status).toBe(429)
      expect(refused.headers.get("set-cookie")).toBe(null)
      expect(await refused.json()).toMatchObject({ error: "limit", limit: "execsPerClient", max: 1 })
      const tampered = await post(`${stack.backendUrl(1)}/api/v1/execute`, "print(2)", { cookie: `${cookie.slice(0, -1)}${cookie.endsWith("A") ? "B" : "A"}`, "x-forwarded-for": "198.51.100.21" })
      expect(tampered.status).toBe(200)
      expect(tampered.headers.get("set-cookie")).toMatch(/^sagews_id=v1\./)
      expect(tampered.headers.get("set-cookie")).not.toContain(body.token)
    } finally {
      abort.abort()
      await running
    }
    await expect.poll(() => execs(1), { timeout: 30_000 }).toBe(0)
  })
})
