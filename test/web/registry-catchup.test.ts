// PostgreSQL away (issue 9): live sessions and stateless runs keep working, a session can still be opened, and what
// happened meanwhile (a session opened, one closed) reaches the registry once PostgreSQL answers again, so that no
// ended session counts as live for ever. PostgreSQL is made to hang (SIGSTOP to it and every process it forked).
import { existsSync, readFileSync } from "node:fs"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import { postJson, processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack
let stopped = false

beforeAll(async () => {
  // its liveness checks would kill the hung PostgreSQL (no supervisor here brings it back): not within this test
  stack = await startWebStack({ backends: 1, postgres: true, postgresLiveness: { interval: 60_000, timeout: 2_000, failures: 3 } })
})

afterAll(async () => {
  if (stopped) signalPostgres("SIGCONT")
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

/** Signals the postmaster and each of its processes (every one is a session of its own: a group signal is not enough). */
const signalPostgres = (signal: NodeJS.Signals): void => {
  const pid = stack.pgPid!
  if (!existsSync(`/proc/${pid}`)) return
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((p) => p !== "").map(Number)
  for (const p of [pid, ...children]) {
    try {
      process.kill(p, signal)
    } catch {
      // a connection's process that has just ended
    }
  }
}

/** the session's row, read on a connection of its own (made after PostgreSQL is back) */
const row = async (id: string): Promise<{ ended: boolean; reason: string | null } | undefined> => {
  const db = new pg.Client({ connectionString: stack.dbUrl })
  await db.connect()
  try {
    const result = await db.query<{ ended: boolean; reason: string | null }>("SELECT ended_at IS NOT NULL AS ended, end_reason AS reason FROM sessions WHERE id = $1", [id])
    return result.rows[0]
  } finally {
    await db.end()
  }
}

describe("the session registry while PostgreSQL is away", () => {
  it("sessions and runs keep working, and the registry catches up with what happened meanwhile", async () => {
    const client = new SagewsClient(`${stack.backendUrl()}/sockjs`, { transports: ["websocket"] })
    try {
      const before = await client.open("python")
      expect(await row(before.id)).toEqual({ ended: false, reason: null })
      signalPostgres("SIGSTOP")
      stopped = true
      expect((await before.execute("print(1)")).outputs[0]).toEqual({ kind: "stdout", text: "1\n" })
      const run = await postJson(`${stack.backendUrl()}/api/v1/execute`, { kernel: "python", code: "print(2)", cache: false })
      expect(run.json).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "2\n" }, { kind: "done" }] })
      // opened while PostgreSQL hangs: admission waits for its query timeout, then counts this backend's own sessions
      const during = await client.open("python")
      expect((await during.execute("print(3)")).outputs[0]).toEqual({ kind: "stdout", text: "3\n" })
      await before.close()
      signalPostgres("SIGCONT")
      stopped = false
      await expect.poll(() => row(before.id), { timeout: 20_000, interval: 500 }).toEqual({ ended: true, reason: "ClosedByUser" })
      await expect.poll(() => row(during.id), { timeout: 20_000, interval: 500 }).toEqual({ ended: false, reason: null })
      await during.close()
      await expect.poll(() => row(during.id), { timeout: 10_000, interval: 250 }).toEqual({ ended: true, reason: "ClosedByUser" })
    } finally {
      client.close()
    }
  })

  // last: PostgreSQL stays dead
  it("PostgreSQL dying while a session is being admitted does not take the backend with it", async () => {
    const client = new SagewsClient(`${stack.backendUrl()}/sockjs`, { transports: ["websocket"] })
    try {
      await client.ping()
      signalPostgres("SIGSTOP")
      stopped = true
      // its admission transaction holds a connection of the pool, waiting on the hung PostgreSQL
      const opening = client.open("python")
      await new Promise((r) => setTimeout(r, 500))
      signalPostgres("SIGKILL")
      stopped = false
      const session = await opening
      expect((await session.execute("print(4)")).outputs[0]).toEqual({ kind: "stdout", text: "4\n" })
      expect(stack.backends[0]?.proc.exitCode).toBe(null)
      await session.close()
    } finally {
      client.close()
    }
  })
})
