// Session admission: over a shared registry the client's and the address's counts are the registry's (units); across
// backends with the registry in PostgreSQL, a client's live sessions are counted once, wherever they were opened,
// resumed or closed, and a session closed through another backend stops counting on the first at once, in its
// admission and in its /api/v1/status.
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeAdmission, sessionAdmission } from "../../src/backend/admission.ts"
import { memoryRegistry, type SessionCaps, type SessionRegistry } from "../../src/backend/registry.ts"
import { SagewsClient } from "../../src/client/connection.ts"
import type { ClientSession } from "../../src/client/session.ts"
import type { EndedEvent } from "../../src/client/types.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack
const LIMIT = 3

type Status = { admission: { sessions: number }; routes: number; workers: Record<string, { local: number; shared: number }> }
const status = async (i: number): Promise<Status> => (await (await fetch(`${stack.backendUrl(i)}/api/v1/status`)).json()) as Status

/** a connection to backend `i`, as the client of `token` when given; resolves once its identity is known */
const connect = async (i: number, token?: string): Promise<SagewsClient> => {
  const c = new SagewsClient(`${stack.backendUrl(i)}/sockjs`, { transports: ["websocket"], ...(token !== undefined ? { token } : {}) })
  await expect.poll(() => c.identity?.token, { timeout: 10_000 }).toBeDefined()
  return c
}

/** the session's ended, or a failure naming `what` after `ms` */
const ended = (s: ClientSession, what = `session ${s.id} ended`, ms = 10_000): Promise<EndedEvent> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms)
    s.onEnded((e) => (clearTimeout(timer), resolve(e)))
  })

const limits = { sessionsPerClient: 2, sessionsPerAddress: 3, sessionsPerBackend: 4, execsPerClient: 1, execsPerAddress: 2, execsPerBackend: 5, retryAfterMs: 1_500 }
const row = (id: string) => ({ id, workerId: "worker:1", kernel: "python" as const })

describe("session admission (units)", () => {
  it("over a shared registry: the registry's counts refuse, naming the limit; this backend's slot is given back", async () => {
    const asked: Array<{ id: string; caps: SessionCaps | undefined }> = []
    const held = 2
    const shared: SessionRegistry = {
      ...memoryRegistry(),
      shared: true,
      reserve: (s, caps) => Effect.sync(() => (asked.push({ id: s.id, caps }), s.id === "full" ? { ok: false, scope: "Client", count: held } : { ok: true })),
    }
    const local = makeAdmission(limits)
    const admission = sessionAdmission(local, shared, limits)
    const who = { client: "id:alice", address: "203.0.113.7" }
    // this backend alone has never seen alice: only the registry knows she holds two
    const refused = await Effect.runPromise(admission.open(who, row("full")))
    expect(refused).toMatchObject({ ok: false, refusal: { limit: "sessionsPerClient", max: 2, retryAfterMs: 1_500 } })
    if (!refused.ok) expect(refused.refusal.message).toBe("limit sessionsPerClient reached: you have 2 live sessions, the most allowed is 2; close one of your sessions, or try again in 1.5 s")
    expect(local.counts().sessions).toBe(0)
    // the per-client count here does not refuse: three sessions of one client on this backend, the registry agreeing
    for (const id of ["s1", "s2", "s3"]) expect((await Effect.runPromise(admission.open(who, row(id)))).ok).toBe(true)
    expect(asked.map((a) => a.caps)).toEqual(Array(4).fill({ Client: 2, Address: 3 }))
    expect(local.counts().sessions).toBe(3)
    // this backend's own total still refuses, without asking the registry
    expect((await Effect.runPromise(admission.open(who, row("s4")))).ok).toBe(true)
    expect(await Effect.runPromise(admission.open(who, row("s5")))).toMatchObject({ ok: false, refusal: { limit: "sessionsPerBackend", max: 4 } })
    expect(asked).toHaveLength(5)
  })

  it("over this backend's memory: as before, every limit counted here, the session recorded", async () => {
    const registry = memoryRegistry()
    const admission = sessionAdmission(makeAdmission(limits), registry, limits)
    const who = { client: "id:bob", address: "198.51.100.1" }
    for (const id of ["m1", "m2"]) expect((await Effect.runPromise(admission.open(who, row(id)))).ok).toBe(true)
    expect(await Effect.runPromise(admission.open(who, row("m3")))).toMatchObject({ ok: false, refusal: { limit: "sessionsPerClient", max: 2 } })
    expect(await Effect.runPromise(registry.find("m1"))).toMatchObject({ workerId: "worker:1", ended: false })
    expect(await Effect.runPromise(registry.find("m3"))).toBeUndefined()
  })
})

describe("admission with a shared registry", () => {
  beforeAll(async () => {
    stack = await startWebStack({ backends: 2, postgres: true, backendConfig: { admission: { sessionsPerClient: LIMIT } } })
  })

  afterAll(async () => {
    const dir = stack?.dataDir
    await stack?.stop()
    if (dir !== undefined) expect(processesOf(dir)).toEqual([])
  })

  it("a session resumed and closed through another backend stops counting on the first at once", async () => {
    const a = await connect(0)
    const b = await connect(1, a.identity?.token)
    try {
      // more cycles than the limit: each would still count on backend 1 if it did not learn of the close
      const onA: Array<Promise<EndedEvent>> = []
      for (let i = 0; i < LIMIT + 1; i++) {
        const opened = await a.open("python")
        onA.push(ended(opened, "backend 1 tells its connection of the close through backend 2"))
        // (resuming at once, before the registry had the session, is registry.test.ts's concern)
        await new Promise((r) => setTimeout(r, 200))
        const there = b.attach(opened.id, "python")
        expect((await there.execute("print('here')")).outputs[0]).toEqual({ kind: "stdout", text: "here\n" })
        const onB = ended(there)
        there.close()
        expect(await onB).toMatchObject({ reason: { _tag: "ClosedByUser" } })
      }
      const fresh = await a.open("python")
      // the first backend told its own connection too: a session's last message is always its ended
      for (const e of await Promise.all(onA)) expect(e).toMatchObject({ reason: { _tag: "ClosedByUser" } })
      const zero = { admission: { sessions: 1 }, routes: 1 }
      await expect.poll(async () => (await status(0)), { timeout: 1_000, interval: 50 }).toMatchObject(zero)
      await expect.poll(async () => (await status(1)).routes, { timeout: 1_000, interval: 50 }).toBe(0)
      // every backend's view of the registry: one live session, the one just opened
      for (const i of [0, 1]) await expect.poll(async () => (await status(i)).workers["worker:1"]?.shared, { timeout: 1_000, interval: 50 }).toBe(1)
      fresh.close()
    } finally {
      a.close()
      b.close()
    }
  })

  it("a client's sessions on both backends count together toward its limit", async () => {
    const a = await connect(0)
    const b = await connect(1, a.identity?.token)
    try {
      const held = [await a.open("python"), await b.open("python")]
      held.push(await a.open("python"))
      for (const c of [a, b]) {
        await expect(c.open("python")).rejects.toMatchObject({
          reply: { type: "error", code: "limit", limit: "sessionsPerClient", max: LIMIT, message: expect.stringMatching(`you have ${LIMIT} live sessions`) },
        })
      }
      // a session closed on one backend frees the slot on the other
      const gone = ended(held[0] as ClientSession)
      held[0]?.close()
      await gone
      held[0] = await b.open("python")
      for (const s of held) s.close()
    } finally {
      a.close()
      b.close()
    }
  })
})
