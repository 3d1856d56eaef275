// Workers found in the registry (issue 12): they register themselves in PostgreSQL, a backend with no --workers list
// learns them by LISTEN/NOTIFY and places sessions on both; a worker gone silent (SIGSTOP: no pong, no heartbeat, as
// a host cut off) is declared lost and its sessions end WorkerLost{host} while the other's go on; let go, it ends the
// lost sessions itself, registers again and takes new ones; a worker that stops is dropped without waiting.
import { hostname } from "node:os"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import type { ClientSession } from "../../src/client/session.ts"
import type { EndedEvent } from "../../src/client/types.ts"
import { postJson, processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack
let db: pg.Pool

beforeAll(async () => {
  stack = await startWebStack({ postgres: true, registry: true, workers: 2, backends: 1 })
  db = new pg.Pool({ connectionString: stack.dbUrl, max: 2 })
})

afterAll(async () => {
  await db?.end()
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

const workerOf = async (session: string): Promise<string | undefined> =>
  (await db.query<{ worker_id: string }>("SELECT worker_id FROM sessions WHERE id = $1", [session])).rows[0]?.worker_id

const waitUntil = async (what: string, f: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("workers from the registry", () => {
  it("registers both workers with their address, kernels and capacity", async () => {
    const rows = (await db.query<{ id: string; host: string; address: string; tls: boolean; kernels: Array<{ kind: string; version: string }>; capacity: number }>(
      "SELECT id, host, address, tls, kernels, capacity FROM workers ORDER BY id",
    )).rows
    expect(rows.map((r) => r.id)).toEqual(["worker:1", "worker:2"])
    for (const r of rows) {
      expect(r.host).toBe(hostname())
      expect(r.address).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(r.tls).toBe(false)
      expect(r.kernels).toEqual([{ kind: "python", version: expect.stringMatching(/^python3 /) }])
      expect(r.capacity).toBeGreaterThan(0)
    }
  })

  it("spreads sessions over both; a silent worker is declared lost, its sessions end WorkerLost, the other's go on; let go, it rejoins", async () => {
    const client = new SagewsClient(`${stack.backendUrl()}/sockjs`, { transports: ["websocket"] })
    try {
      const sessions: Array<ClientSession> = []
      for (let i = 0; i < 4; i++) sessions.push(await client.open("python"))
      const placed = await Promise.all(sessions.map((s) => workerOf(s.id)))
      expect(new Set(placed)).toEqual(new Set(["worker:1", "worker:2"]))
      const onFirst = sessions.filter((_, i) => placed[i] === "worker:1")
      const onSecond = sessions.filter((_, i) => placed[i] === "worker:2")
      const ends = onFirst.map((s) => new Promise<EndedEvent>((resolve) => s.onEnded(resolve)))
      for (const s of onFirst) expect((await s.execute("lost_state = 41")).status).toBe("ok")

      const first = stack.workers[0]!
      first.proc.kill("SIGSTOP")
      try {
        const ended = await Promise.all(ends)
        for (const e of ended) {
          expect(e.reason).toEqual({ _tag: "WorkerLost", host: hostname() })
          expect(e.message).toMatch(/was lost/)
        }
        const lost = (await db.query<{ lost: boolean }>("SELECT lost_at IS NOT NULL AS lost FROM workers WHERE id = 'worker:1'")).rows[0]
        expect(lost?.lost).toBe(true)
        // the other worker's sessions are untouched, new sessions and stateless runs go to it
        for (const s of onSecond) expect((await s.execute("print('still here')")).outputs[0]).toEqual({ kind: "stdout", text: "still here\n" })
        const fresh = await client.open("python")
        expect(await workerOf(fresh.id)).toBe("worker:2")
        fresh.close()
        const run = await postJson(`${stack.backendUrl()}/api/v1/execute`, { kernel: "python", code: "print(6 * 7)" })
        expect(run.json).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "42\n" }, { kind: "done" }] })
      } finally {
        first.proc.kill("SIGCONT")
      }

      // back: it ends there what the cluster ended for it (nothing resumes half-way), registers again, takes sessions
      await first.waitFor(/declared this worker lost while it was cut off: ended \d+ session/)
      await waitUntil("worker:1 registered again", async () =>
        (await db.query<{ lost: boolean }>("SELECT lost_at IS NOT NULL AS lost FROM workers WHERE id = 'worker:1'")).rows[0]?.lost === false)
      await waitUntil("the backend linked worker:1 again", () => stack.backends[0]!.logs.filter((l) => /connected to worker:1 /.test(l)).length >= 2)
      // a lost session is not resumed half-way: a client asking for it again is told its end
      const again = client.attach(onFirst[0]!.id, "python")
      expect((await new Promise<EndedEvent>((resolve) => again.onEnded(resolve))).reason._tag).toBe("WorkerLost")
      const later: Array<ClientSession> = []
      // worker:2 holds more sessions now: the least loaded, worker:1, takes the next
      later.push(await client.open("python"))
      expect(await workerOf(later[0]!.id)).toBe("worker:1")
      expect((await later[0]!.execute("print(lost_state if 'lost_state' in dir() else 'fresh')")).outputs[0]).toEqual({ kind: "stdout", text: "fresh\n" })
      for (const s of [...later, ...onSecond]) s.close()
    } finally {
      client.close()
    }
  })

  it("a worker that stops is told down: its link ends, and new sessions go to the other", async () => {
    const second = stack.workers[1]!
    await second.stop("SIGTERM")
    await waitUntil("the backend dropped worker:2's link", () => stack.backends[0]!.logs.some((l) => /worker:2 at .* stopped: its link ends|the link to .* ends: worker:2 stopped/.test(l)))
    const stopped = (await db.query<{ stopped: boolean }>("SELECT stopped_at IS NOT NULL AS stopped FROM workers WHERE id = 'worker:2'")).rows[0]
    expect(stopped?.stopped).toBe(true)
    const client = new SagewsClient(`${stack.backendUrl()}/sockjs`, { transports: ["websocket"] })
    try {
      const s = await client.open("python")
      expect(await workerOf(s.id)).toBe("worker:1")
      s.close()
    } finally {
      client.close()
    }
    // started again on its port, it registers again and the backend links it again
    await stack.startWorker(1)
    await waitUntil("the backend linked worker:2 again", () => stack.backends[0]!.logs.filter((l) => /connected to worker:2 /.test(l)).length >= 2)
  })
})
