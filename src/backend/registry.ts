// The session registry in PostgreSQL (tables `workers` and `sessions`): which worker holds which session, so any
// backend can route a resumed session. Without a database it is this backend's memory only (one backend, tests).
import pg from "pg"
import type { SessionKind } from "../protocol/browser.ts"
import type { JsonLogger } from "../log/line.ts"

export interface SessionRecord {
  readonly id: string
  readonly workerId: string
  readonly kernel: SessionKind
  /** host:port of the worker, when the registry knows it */
  readonly address?: string | undefined
  readonly ended: boolean
}

export interface Registry {
  /** the worker is known (FK target of sessions.worker_id); called when this backend connects to it */
  worker(workerId: string, address: string): Promise<void>
  opened(record: Omit<SessionRecord, "ended" | "address">): Promise<void>
  ended(id: string, reason: string): Promise<void>
  find(id: string): Promise<SessionRecord | undefined>
  /** live sessions per worker id, over every backend */
  load(): Promise<Map<string, number>>
  close(): Promise<void>
}

export const memoryRegistry = (): Registry => {
  const sessions = new Map<string, SessionRecord>()
  return {
    worker: async () => undefined,
    opened: async (r) => void sessions.set(r.id, { ...r, ended: false }),
    ended: async (id) => {
      const r = sessions.get(id)
      if (r !== undefined) sessions.set(id, { ...r, ended: true })
    },
    find: async (id) => sessions.get(id),
    load: async () => {
      const load = new Map<string, number>()
      for (const r of sessions.values()) if (!r.ended) load.set(r.workerId, (load.get(r.workerId) ?? 0) + 1)
      return load
    },
    close: async () => undefined,
  }
}

/** Each call is best effort: a registry that is down is logged, and routing falls back to this backend's memory. */
/**
 * `maxAgeSeconds`: no session lives longer than the workers' wall limit; a row older than that whose end nobody
 * recorded (its backend died first) is not counted as load.
 */
export const postgresRegistry = (url: string, log: JsonLogger, maxAgeSeconds: number): Registry => {
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 2_000, query_timeout: 5_000, idleTimeoutMillis: 10_000 })
  pool.on("error", (e) => log.warn(`registry connection: ${e.message}`))
  const local = memoryRegistry()
  let warned = 0
  const guarded = async <T>(what: string, run: () => Promise<T>, fallback: () => Promise<T>): Promise<T> => {
    try {
      return await run()
    } catch (error) {
      if (Date.now() - warned > 10_000) {
        warned = Date.now()
        log.warn(`session registry (${what}) failed, using this backend's memory: ${error instanceof Error ? error.message : String(error)}`)
      }
      return fallback()
    }
  }
  return {
    worker: (workerId, address) => {
      const colon = address.lastIndexOf(":")
      return guarded("worker", async () => {
        await pool.query(
          `INSERT INTO workers (id, host, port) VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, heartbeat_at = now()`,
          [workerId, address.slice(0, colon), Number(address.slice(colon + 1))],
        )
      }, async () => undefined)
    },
    opened: async (r) => {
      await local.opened(r)
      await guarded("open", async () => {
        await pool.query("INSERT INTO sessions (id, worker_id, kernel) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING", [r.id, r.workerId, r.kernel])
      }, async () => undefined)
    },
    ended: async (id, reason) => {
      await local.ended(id, reason)
      await guarded("end", async () => {
        await pool.query("UPDATE sessions SET ended_at = now(), end_reason = $2 WHERE id = $1 AND ended_at IS NULL", [id, reason])
      }, async () => undefined)
    },
    find: (id) =>
      guarded("find", async () => {
        const result = await pool.query<{ worker_id: string | null; kernel: SessionKind; ended: boolean; host: string | null; port: number | null }>(
          `SELECT s.worker_id, s.kernel, s.ended_at IS NOT NULL AS ended, w.host, w.port
           FROM sessions s LEFT JOIN workers w ON w.id = s.worker_id WHERE s.id = $1`,
          [id],
        )
        const row = result.rows[0]
        if (row === undefined || row.worker_id === null) return local.find(id)
        const address = row.host !== null && row.port !== null ? `${row.host}:${row.port}` : undefined
        return { id, workerId: row.worker_id, kernel: row.kernel, address, ended: row.ended }
      }, () => local.find(id)),
    load: () =>
      guarded("load", async () => {
        const result = await pool.query<{ worker_id: string; n: string }>(
          `SELECT worker_id, count(*) AS n FROM sessions
           WHERE ended_at IS NULL AND worker_id IS NOT NULL AND created_at > now() - make_interval(secs => $1)
           GROUP BY worker_id`,
          [maxAgeSeconds],
        )
        return new Map(result.rows.map((r) => [r.worker_id, Number(r.n)]))
      }, () => local.load()),
    close: () => pool.end().catch(() => undefined),
  }
}
