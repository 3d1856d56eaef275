// Benchmark of the cluster's registry (issue 12), on one machine: two workers that register in PostgreSQL and a
// backend that learns them there. How long a worker that starts takes to get its first session (its process start,
// its forkserver warming, its registration, the backend's link); how evenly sessions spread; how long a silent worker
// (SIGSTOP: no pong, no heartbeat, as a host cut off) takes to be reported lost to its clients (WorkerLost), and to
// rejoin once let go. The bound docs/OPERATIONS.md promises for the loss is LOST_BOUND_MS.
import pg from "pg"
import { SagewsClient } from "../src/client/connection.ts"
import type { ClientSession } from "../src/client/session.ts"
import type { EndedEvent } from "../src/client/types.ts"
import { startWebStack } from "../test/web/harness.ts"

/** sessions opened to see the spread */
const SPREAD_SESSIONS = 20
/** what docs/OPERATIONS.md promises for reporting a lost host */
const LOST_BOUND_MS = 10_000

const until = async (f: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export const benchCluster = async (): Promise<Record<string, number>> => {
  const stack = await startWebStack({ postgres: true, registry: true, workers: 2, backends: 1, backendConfig: { admission: { sessionsPerClient: 100, sessionsPerAddress: 100 } }, workerConfig: { pool: 2 } })
  const db = new pg.Pool({ connectionString: stack.dbUrl, max: 2 })
  const client = new SagewsClient(`${stack.backendUrl()}/sockjs`, { transports: ["websocket"] })
  const workerOf = async (session: string): Promise<string | undefined> =>
    (await db.query<{ worker_id: string }>("SELECT worker_id FROM sessions WHERE id = $1", [session])).rows[0]?.worker_id
  try {
    // spread: sessions opened one after another over two idle workers
    const opened: Array<ClientSession> = []
    for (let i = 0; i < SPREAD_SESSIONS; i++) opened.push(await client.open("python"))
    const placed = await Promise.all(opened.map((s) => workerOf(s.id)))
    const onFirst = placed.filter((w) => w === "worker:1").length
    for (const s of opened) s.close()

    // a worker that starts: from its spawn to its first session (with nothing else placed meanwhile)
    await stack.workers[1]!.stop("SIGTERM")
    await until(async () => (await db.query<{ stopped: boolean }>("SELECT stopped_at IS NOT NULL AS stopped FROM workers WHERE id = 'worker:2'")).rows[0]?.stopped === true)
    const started = performance.now()
    await stack.startWorker(1)
    const ready = performance.now() - started
    await until(() => stack.backends[0]!.logs.filter((l) => /connected to worker:2 /.test(l)).length >= 2)
    const linked = performance.now() - started
    // sessions until one is on the new worker: the least loaded takes each, so the first or the second
    const tries: Array<ClientSession> = []
    let onNew = false
    while (!onNew && tries.length < 3) {
      const s = await client.open("python")
      tries.push(s)
      onNew = (await workerOf(s.id)) === "worker:2"
    }
    const firstSession = performance.now() - started
    for (const s of tries) s.close()

    // a silent worker: from SIGSTOP to its sessions' WorkerLost at the client; then from SIGCONT to its new link
    const victims: Array<ClientSession> = []
    while (victims.length < 2) {
      const s = await client.open("python")
      if ((await workerOf(s.id)) === "worker:1") victims.push(s)
    }
    const ends = victims.map((s) => new Promise<EndedEvent>((resolve) => s.onEnded(resolve)))
    const links = stack.backends[0]!.logs.filter((l) => /connected to worker:1 /.test(l)).length
    const stopped = performance.now()
    stack.workers[0]!.proc.kill("SIGSTOP")
    const ended = await Promise.all(ends)
    const lostMs = performance.now() - stopped
    const allLost = ended.every((e) => e.reason._tag === "WorkerLost")
    const resumed = performance.now()
    stack.workers[0]!.proc.kill("SIGCONT")
    await until(() => stack.backends[0]!.logs.filter((l) => /connected to worker:1 /.test(l)).length > links)
    const rejoinMs = performance.now() - resumed
    if (!allLost || !onNew) throw new Error(`placement or loss went wrong: every end WorkerLost ${allLost}, first session on the new worker ${onNew}`)
    return {
      spread_sessions: SPREAD_SESSIONS,
      spread_on_worker1: onFirst,
      spread_on_worker2: SPREAD_SESSIONS - onFirst,
      new_worker_ready_ms: Math.round(ready),
      new_worker_linked_ms: Math.round(linked),
      new_worker_first_session_ms: Math.round(firstSession),
      lost_host_reported_ms: Math.round(lostMs),
      lost_host_bound_ms: LOST_BOUND_MS,
      lost_host_rejoined_ms: Math.round(rejoinMs),
    }
  } finally {
    client.close()
    await db.end()
    await stack.stop()
  }
}
