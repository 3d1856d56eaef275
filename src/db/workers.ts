// The worker registry's statements (table `workers`, migrations 2 and 10): a worker registers itself with where it is
// reached and what it runs, and beats; backends read the live ones and, when a host goes silent, declare it lost,
// ending its sessions with WorkerLost. Every change is told on WORKERS_CHANNEL, delivered when its statement commits.
import type pg from "pg"
import { z } from "zod"
import { KernelKind } from "../protocol/worker.ts"
import { SESSIONS_CHANNEL } from "./sessions.ts"
import { inTransaction, rollback } from "./transaction.ts"

/** the channel on which workers and backends tell one another of workers that come, stop and are lost */
export const WORKERS_CHANNEL = "sagews_workers"

/** ms between a worker's heartbeats */
export const WORKER_HEARTBEAT_MS = 1_000
/**
 * s without a heartbeat after which a worker whose links are silent too counts as lost: four missed beats, so that
 * one slow PostgreSQL round does not make a living host look dead
 */
export const WORKER_STALE_SECONDS = 4

/** What workers and backends hear on WORKERS_CHANNEL. */
export const WorkerNotice = z.discriminatedUnion("type", [
  /** registered (first start, a restart, or back after it was declared lost) */
  z.object({ type: z.literal("up"), id: z.string() }),
  /** stopped cleanly: no backend should wait for it */
  z.object({ type: z.literal("down"), id: z.string() }),
  /** declared lost by a backend: its sessions have ended with WorkerLost{host} */
  z.object({ type: z.literal("lost"), id: z.string(), host: z.string() }),
])
export type WorkerNotice = z.infer<typeof WorkerNotice>

const notice = (n: WorkerNotice): string => JSON.stringify(n)

/** A kernel kind a worker runs, with the version of what runs it (the result cache keys on it). */
export const WorkerKernel = z.object({ kind: KernelKind, version: z.string() })
export type WorkerKernel = z.infer<typeof WorkerKernel>

/** A worker as it registers itself. */
export interface WorkerEntry {
  /** cluster-wide: `worker:1` on the store's host, `worker:1@<host>` on a joined one */
  readonly id: string
  readonly host: string
  /** host:port backends connect to */
  readonly address: string
  readonly tls: boolean
  readonly kernels: ReadonlyArray<WorkerKernel>
  /** most sessions it takes at once */
  readonly capacity: number
}

/** A registered worker as backends read it. */
export interface WorkerRow extends WorkerEntry {
  readonly sessions: number
  readonly heartbeatAgeMs: number
  readonly stopped: boolean
  readonly lost: boolean
}

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(":") + 1))

/** Registers (or registers again) `w`: fresh heartbeat, no sessions yet, neither stopped nor lost; told as `up`. */
export const register = async (pool: pg.Pool, w: WorkerEntry): Promise<void> => {
  await pool.query(
    `WITH r AS (
       INSERT INTO workers (id, host, port, address, tls, kernels, capacity, sessions, started_at, heartbeat_at, stopped_at, lost_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 0, now(), now(), NULL, NULL)
       ON CONFLICT (id) DO UPDATE SET host = $2, port = $3, address = $4, tls = $5, kernels = $6, capacity = $7, sessions = 0,
         started_at = now(), heartbeat_at = now(), stopped_at = NULL, lost_at = NULL
       RETURNING id)
     SELECT pg_notify($8, $9) FROM r`,
    [w.id, w.host, portOf(w.address), w.address, w.tls, JSON.stringify(w.kernels), w.capacity, WORKERS_CHANNEL, notice({ type: "up", id: w.id })],
  )
}

/** A heartbeat with the sessions it holds; "lost" when the cluster declared it lost meanwhile, "gone" when its row is. */
export const heartbeat = async (pool: pg.Pool, id: string, sessions: number): Promise<"ok" | "lost" | "gone"> => {
  const result = await pool.query<{ lost: boolean }>(
    "UPDATE workers SET heartbeat_at = now(), sessions = $2 WHERE id = $1 RETURNING lost_at IS NOT NULL AS lost",
    [id, sessions],
  )
  const row = result.rows[0]
  return row === undefined ? "gone" : row.lost ? "lost" : "ok"
}

/** Of `ids` (sessions this worker holds), those whose rows have ended: the cluster ended them while it was away. */
export const endedOf = async (pool: pg.Pool, id: string, ids: ReadonlyArray<string>): Promise<ReadonlyArray<string>> => {
  if (ids.length === 0) return []
  const result = await pool.query<{ id: string }>(
    "SELECT id FROM sessions WHERE worker_id = $1 AND id = ANY($2::text[]) AND ended_at IS NOT NULL",
    [id, [...ids]],
  )
  return result.rows.map((r) => r.id)
}

/** The worker stops: told as `down`. */
export const stopped = async (pool: pg.Pool, id: string): Promise<void> => {
  await pool.query(
    `WITH s AS (UPDATE workers SET stopped_at = now() WHERE id = $1 RETURNING id) SELECT pg_notify($2, $3) FROM s`,
    [id, WORKERS_CHANNEL, notice({ type: "down", id })],
  )
}

interface Raw {
  id: string
  host: string
  address: string | null
  port: number
  tls: boolean
  kernels: unknown
  capacity: number | null
  sessions: number
  age_ms: string
  stopped: boolean
  lost: boolean
}

const toRow = (r: Raw): WorkerRow => {
  const kernels = z.array(WorkerKernel).safeParse(r.kernels)
  return {
    id: r.id,
    host: r.host,
    address: r.address ?? `${r.host}:${r.port}`,
    tls: r.tls,
    kernels: kernels.success ? kernels.data : [],
    capacity: r.capacity ?? 0,
    sessions: r.sessions,
    heartbeatAgeMs: Number(r.age_ms),
    stopped: r.stopped,
    lost: r.lost,
  }
}

const SELECT = `SELECT id, host, address, port, tls, kernels, capacity, sessions,
  (extract(epoch FROM now() - heartbeat_at) * 1000)::bigint AS age_ms, stopped_at IS NOT NULL AS stopped, lost_at IS NOT NULL AS lost
  FROM workers`

/** Every worker that registered itself (an address) and has not stopped or been declared lost. */
export const live = async (pool: pg.Pool): Promise<ReadonlyArray<WorkerRow>> =>
  (await pool.query<Raw>(`${SELECT} WHERE address IS NOT NULL AND stopped_at IS NULL AND lost_at IS NULL ORDER BY id`)).rows.map(toRow)

/**
 * Declares `id` lost if its heartbeat is older than `staleSeconds` and nobody did yet: in one transaction its row is
 * marked, its live sessions end with WorkerLost (each told on the sessions channel) and the loss is told on
 * WORKERS_CHANNEL, on which every backend ends its routes of those sessions. The host, when this call declared it.
 */
export const declareLost = (pool: pg.Pool, id: string, staleSeconds: number, backend: string): Promise<{ host: string; sessions: ReadonlyArray<string> } | undefined> =>
  inTransaction(pool, async (client) => {
    const marked = await client.query<{ host: string }>(
      "UPDATE workers SET lost_at = now() WHERE id = $1 AND lost_at IS NULL AND stopped_at IS NULL AND heartbeat_at < now() - make_interval(secs => $2) RETURNING host",
      [id, staleSeconds],
    )
    const host = marked.rows[0]?.host
    if (host === undefined) return rollback(undefined)
    const ended = await client.query<{ id: string }>(
      `UPDATE sessions SET ended_at = now(), end_reason = 'WorkerLost' WHERE worker_id = $1 AND ended_at IS NULL RETURNING id`,
      [id],
    )
    for (const { id: session } of ended.rows) {
      await client.query("SELECT pg_notify($1, $2)", [SESSIONS_CHANNEL, JSON.stringify({ type: "ended", id: session, backend })])
    }
    await client.query("SELECT pg_notify($1, $2)", [WORKERS_CHANNEL, notice({ type: "lost", id, host })])
    return { host, sessions: ended.rows.map((r) => r.id) }
  })
