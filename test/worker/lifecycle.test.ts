// Deaths and churn: a forkserver's death ends its sessions with a reason and it comes back; a SIGKILLed
// worker takes every session process with it and its clients hear WorkerStopped; many sessions leave nothing.
import { readFile } from "node:fs/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { WorkerClient } from "../../src/wire/client.ts"
import { leftovers, NO_LEFTOVERS, removeDataDir, settle, startTestWorker, stopAndCheck, type TestWorker } from "./harness.ts"

/** Sessions the churn test starts and ends; the issue asks for 1,000 (SAGEWS_CHURN=1000), CI runs fewer. */
export const CHURN_SESSIONS = Number(process.env["SAGEWS_CHURN"] ?? 200)
const CHURN_CONCURRENCY = 4

const parentOf = async (pid: number): Promise<number> => Number((await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ")[1])
/** The forkserver above a kernel: its container's init and holder (forked from it, so named like it) stand between. */
const forkserverOf = async (pid: number): Promise<number> => {
  let found: number | undefined
  for (let p = await parentOf(pid); p > 1; p = await parentOf(p)) {
    const comm = (await readFile(`/proc/${p}/comm`, "utf8")).trim()
    if (comm.startsWith("python")) found = p
  }
  if (found === undefined) throw new Error(`no forkserver above pid ${pid}`)
  return found
}

describe("session churn and forkserver death", () => {
  let worker: TestWorker
  let client: WorkerClient
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 240_000, last: 240_099 }, kernels: ["python"], pool: 2 })
    client = await worker.connect()
  })
  afterAll(async () => {
    client.close()
    await stopAndCheck(worker)
  })

  it(`starts and ends ${CHURN_SESSIONS} sessions leaving no zombie, uid process or home`, async () => {
    let next = 0
    const lane = async (): Promise<void> => {
      while (next < CHURN_SESSIONS) {
        const n = next++
        const s = n % 10 === 9 ? undefined : await client.open("python")
        if (s === undefined) {
          const { messages } = await client.run("python", `${n} * 2`)
          expect(messages[0]).toEqual({ kind: "display", data: { "text/plain": String(n * 2) } })
          continue
        }
        expect(await s.execute(`${n} + 1`)).toContainEqual({ kind: "display", data: { "text/plain": String(n + 1) } })
        if (n % 7 === 0) s.execute("import os\nos.fork() or os.fork()\nimport time; time.sleep(60)").catch(() => undefined)
        await s.close()
      }
    }
    await Promise.all(Array.from({ length: CHURN_CONCURRENCY }, lane))
    const left = await settle(worker)
    expect(left.uidProcesses).toEqual([])
    expect(left.zombies).toEqual([])
    expect(left.homes).toEqual([])
  }, 60_000 + CHURN_SESSIONS * 500)

  it("a forkserver's death ends its sessions with a reason, and it is restarted", async () => {
    const s = await client.open("python")
    expect(s.pid).toBeDefined()
    const forkserver = await forkserverOf(s.pid ?? 0)
    process.kill(forkserver, "SIGKILL")
    const ended = await s.ended
    expect(ended.reason).toMatchObject({ _tag: "Crash", detail: expect.stringContaining("forkserver died") })
    await worker.waitForLog(/forkserver:python: restart #1/)
    const again = await client.open("python")
    expect(await again.execute("6 * 7")).toContainEqual({ kind: "display", data: { "text/plain": "42" } })
    expect(await forkserverOf(again.pid ?? 0)).not.toBe(forkserver)
    await again.close()
  })
})

describe("worker SIGTERM", () => {
  it("ends every session with WorkerStopped, tells the client, exits 0 and leaves nothing", async () => {
    const worker = await startTestWorker({ uidRange: { first: 242_000, last: 242_099 }, kernels: ["python"], pool: 1 })
    const client = await worker.connect()
    const sessions = await Promise.all([client.open("python"), client.open("terminal")])
    void sessions[0]?.execute("while True: pass").catch(() => undefined)
    const stopped = worker.stop()
    for (const s of sessions) {
      const ended = await s.ended
      expect(ended.reason).toEqual({ _tag: "WorkerStopped" })
      expect(ended.message).toContain("the worker running this session stopped")
    }
    expect(await stopped).toBe(0)
    expect(await settle(worker)).toEqual(NO_LEFTOVERS)
    await removeDataDir(worker)
  })
})

describe("worker SIGKILL", () => {
  it("takes every session process with it, tells the client WorkerStopped, and a restart clears the rest", async () => {
    const range = { first: 241_000, last: 241_099 }
    const worker = await startTestWorker({ uidRange: range, kernels: ["python"], pool: 1 })
    const client = await worker.connect()
    const sessions = await Promise.all([client.open("python"), client.open("python"), client.open("terminal")])
    await sessions[0]?.execute("import subprocess\nsubprocess.Popen(['sleep', '300'])")
    worker.proc.kill("SIGKILL")
    for (const s of sessions) expect((await s.ended).reason).toEqual({ _tag: "WorkerStopped" })
    const left = await settle(worker, 10_000, ["uidProcesses", "kernels"])
    expect(left.uidProcesses).toEqual([])
    expect(left.kernels).toEqual([])
    // Nothing could remove the dead worker's cgroups; its next life does (and the homes an unprivileged one left).
    expect(left.cgroups.length).toBeGreaterThan(0)
    const back = await startTestWorker({ uidRange: range, kernels: ["python"], pool: 1 }, { dataDir: worker.dataDir, port: worker.port })
    expect((await leftovers(worker)).cgroups).toEqual([])
    const again = await back.connect()
    expect(await (await again.open("python")).execute("1")).toContainEqual({ kind: "display", data: { "text/plain": "1" } })
    again.close()
    expect(await back.stop()).toBe(0)
    expect(await settle(back)).toEqual(NO_LEFTOVERS)
    await removeDataDir(back)
  })
})
