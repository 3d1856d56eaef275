// The session registry with several backends and PostgreSQL: a session is known to every backend before its `opened`
// goes out; a row ends when the worker says `ended`, whichever backend hears it (a dead backend's sessions included:
// they live on their worker, another backend takes them over), and with WorkerStopped when its worker restarts.
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack
let db: pg.Client

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, postgres: true })
  db = new pg.Client({ connectionString: stack.dbUrl })
  await db.connect()
})

afterAll(async () => {
  await db?.end()
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

const row = async (id: string): Promise<{ ended: boolean; reason: string | null } | undefined> => {
  const result = await db.query<{ ended: boolean; reason: string | null }>("SELECT ended_at IS NOT NULL AS ended, end_reason AS reason FROM sessions WHERE id = $1", [id])
  return result.rows[0]
}

type Status = { workers: Record<string, { shared: number }> }
const status = async (i: number): Promise<Status> => (await (await fetch(`${stack.backendUrl(i)}/api/v1/status`)).json()) as Status

/** one person's identity token: every connection of this file is that person, in one tab or another */
let token: string | undefined
const connect = async (i: number): Promise<SagewsClient> => {
  token ??= ((await (await fetch(`${stack.backendUrl(0)}/api/v1/identity`)).json()) as { token: string }).token
  return new SagewsClient(`${stack.backendUrl(i)}/sockjs`, { transports: ["websocket"], token })
}

/** resumes `session` on `c`; the reply */
const resume = (c: SagewsClient, session: string) => c.request({ type: "resume", id: c.nextId("s"), session, fromSeq: 1 })

describe("the session registry", () => {
  it("a resume through another backend right after opened finds the session", async () => {
    const a = await connect(0)
    const b = await connect(1)
    try {
      await b.ping()
      for (let i = 0; i < 10; i++) {
        const session = await a.open("python")
        expect(await resume(b, session.id)).toMatchObject({ type: "resumed", session: session.id, fromSeq: 1 })
        expect(await b.request({ type: "close", id: b.nextId("c"), session: session.id })).toMatchObject({ type: "ack" })
      }
    } finally {
      a.close()
      b.close()
    }
  })

  it("a dead backend's sessions stay live on their worker: resumable elsewhere, and ended in the registry with their reason", async () => {
    const index = stack.backends.length
    const doomed = await stack.startBackend()
    const c = await connect(index)
    const idle = await c.open("python", { limits: { idle: 3 } })
    const kept = await c.open("python")
    c.close()
    await doomed.stop("SIGKILL")
    expect(await row(idle.id)).toEqual({ ended: false, reason: null })
    const b = await connect(1)
    try {
      expect(await resume(b, kept.id)).toMatchObject({ type: "resumed", session: kept.id })
      // nobody is attached to `idle` when its idle limit ends it: a backend that took it over hears its ended
      await expect.poll(() => row(idle.id), { timeout: 60_000, interval: 500 }).toEqual({ ended: true, reason: "Timeout" })
      expect(await row(kept.id)).toEqual({ ended: false, reason: null })
      expect(await b.request({ type: "close", id: b.nextId("c"), session: kept.id })).toMatchObject({ type: "ack" })
      await expect.poll(() => row(kept.id), { timeout: 5_000 }).toEqual({ ended: true, reason: "ClosedByUser" })
    } finally {
      b.close()
    }
  })

  it("a backend that did not hear a session's end says its recorded reason", async () => {
    const a = await connect(0)
    let fresh: SagewsClient | undefined
    try {
      const session = await a.open("python")
      expect(await a.request({ type: "close", id: a.nextId("c"), session: session.id })).toMatchObject({ type: "ack" })
      await expect.poll(() => row(session.id), { timeout: 5_000 }).toEqual({ ended: true, reason: "ClosedByUser" })
      // started after the end: it heard of it from nobody
      const index = stack.backends.length
      await stack.startBackend()
      fresh = await connect(index)
      // the worker still replays the end for a minute: ask without resuming, on a backend that never routed it
      const reply = await fresh.request({ type: "execute", id: fresh.nextId("e"), session: session.id, code: "1" })
      expect(reply).toMatchObject({ type: "error", code: "session_ended", session: session.id })
      expect(JSON.stringify(reply)).toMatch(/ClosedByUser/)
    } finally {
      a.close()
      fresh?.close()
    }
  })

  it("a worker that restarts: every session it had ends in the registry with WorkerStopped", async () => {
    const a = await connect(0)
    const b = await connect(1)
    try {
      const ids = [(await a.open("python")).id, (await b.open("python")).id]
      const moved = await a.open("python")
      expect(await resume(b, moved.id)).toMatchObject({ type: "resumed" })
      ids.push(moved.id)
      // and one of a backend that died just before: no live backend is attached to it
      const index = stack.backends.length
      const doomed = await stack.startBackend()
      const c = await connect(index)
      ids.push((await c.open("python")).id)
      c.close()
      await doomed.stop("SIGKILL")
      for (const id of ids) expect(await row(id)).toEqual({ ended: false, reason: null })
      await stack.workers[0]?.stop("SIGKILL")
      await stack.startWorker(0)
      for (const id of ids) await expect.poll(() => row(id), { timeout: 30_000, interval: 250 }).toEqual({ ended: true, reason: "WorkerStopped" })
      for (const i of [0, 1]) await expect.poll(async () => (await status(i)).workers["worker:1"]?.shared, { timeout: 10_000 }).toBe(0)
      const fresh = await a.open("python")
      expect((await fresh.execute("print(5)")).outputs[0]).toEqual({ kind: "stdout", text: "5\n" })
      fresh.close()
    } finally {
      a.close()
      b.close()
    }
  })
})
