// The session registry's statements (tables `sessions`, `workers`, `backends`: migrations 2 and 3). A session is
// admitted and recorded in one transaction, serialised per client and per address; every end, take-over and new
// session is also told to every backend (NOTIFY on SESSIONS_CHANNEL, delivered when its transaction commits).
import type pg from "pg"
import { inTransaction, rollback } from "./transaction.ts"

/** the channel on which backends tell one another what they recorded (payload: a RegistryNotice as JSON) */
export const SESSIONS_CHANNEL = "sagews_sessions"

/**
 * What one backend recorded, as the others hear it. `frame`: the worker's own `ended` frame, when it was heard (a
 * backend that routes the session can pass it on); it is left out of a notice that would not fit NOTIFY's 8000 bytes.
 */
export type RegistryNotice =
  | { readonly type: "opened"; readonly id: string; readonly backend: string }
  | { readonly type: "ended"; readonly id: string; readonly backend: string; readonly frame?: unknown }
  | { readonly type: "attached"; readonly id: string; readonly backend: string }

/** bytes of a NOTIFY payload PostgreSQL accepts, less room to spare */
const MAX_NOTICE_BYTES = 7_900

const notice = (n: RegistryNotice): string => {
  const text = JSON.stringify(n)
  if (Buffer.byteLength(text) <= MAX_NOTICE_BYTES || n.type !== "ended") return text
  const { frame: _frame, ...rest } = n
  return JSON.stringify(rest)
}

/**
 * pg_advisory_xact_lock(class, hashtext(key)) classes: an admission holds its client's and its address's lock until
 * it commits, so two backends admitting for one client count each other's new session (client first, then address:
 * one order for all, so no two admissions wait on each other in a cycle)
 */
const LOCK_CLIENT = 7_301
const LOCK_ADDRESS = 7_302

/** a row counts as live when it has not ended and is younger than `maxAge` s (no session outlives the wall limit) */
const LIVE = "ended_at IS NULL AND created_at > now() - make_interval(secs => $3)"

export interface NewRow {
  readonly id: string
  readonly workerId: string
  readonly kernel: string
  readonly client: string
  readonly address: string
  readonly backend: string
}

export type Admitted = { readonly ok: true } | { readonly ok: false; readonly scope: "Client" | "Address"; readonly count: number }

/** Records `row` if its client holds fewer than `caps.Client` live sessions and its address fewer than `caps.Address`. */
export const admit = async (
  pool: pg.Pool,
  row: NewRow,
  caps: { readonly Client: number; readonly Address: number },
  maxAgeSeconds: number,
): Promise<Admitted> =>
  inTransaction<Admitted>(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2)), pg_advisory_xact_lock($3, hashtext($4))", [LOCK_CLIENT, row.client, LOCK_ADDRESS, row.address])
    const counted = await client.query<{ by_client: string; by_address: string }>(
      `SELECT count(*) FILTER (WHERE client = $1) AS by_client, count(*) FILTER (WHERE address = $2) AS by_address
       FROM sessions WHERE (client = $1 OR address = $2) AND ${LIVE}`,
      [row.client, row.address, maxAgeSeconds],
    )
    const byClient = Number(counted.rows[0]?.by_client ?? 0)
    const byAddress = Number(counted.rows[0]?.by_address ?? 0)
    if (byClient >= caps.Client) return rollback({ ok: false, scope: "Client", count: byClient })
    if (byAddress >= caps.Address) return rollback({ ok: false, scope: "Address", count: byAddress })
    // with a heartbeat: a backend that records a session is alive, whenever its last load read was
    await client.query(
      `WITH beat AS (INSERT INTO backends (id, seen_at) VALUES ($6, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now()),
       i AS (INSERT INTO sessions (id, worker_id, kernel, client, address, backend) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id)
       SELECT pg_notify($7, $8) FROM i`,
      [row.id, row.workerId, row.kernel, row.client, row.address, row.backend, SESSIONS_CHANNEL, notice({ type: "opened", id: row.id, backend: row.backend })],
    )
    return { ok: true }
  })

/** Ends the row (once: a later end keeps the first reason); true when this call ended it. */
export const end = async (pool: pg.Pool, id: string, reason: string, backend: string, frame: unknown): Promise<boolean> => {
  const result = await pool.query(
    `WITH e AS (UPDATE sessions SET ended_at = now(), end_reason = $2 WHERE id = $1 AND ended_at IS NULL RETURNING id)
     SELECT pg_notify($3, $4) FROM e`,
    [id, reason, SESSIONS_CHANNEL, notice({ type: "ended", id, backend, ...(frame !== undefined ? { frame } : {}) })],
  )
  return (result.rowCount ?? 0) > 0
}

/** The live session's output now goes to `backend` (it resumed it). */
export const attach = async (pool: pg.Pool, id: string, backend: string): Promise<void> => {
  await pool.query(
    `WITH beat AS (INSERT INTO backends (id, seen_at) VALUES ($2, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now()),
     a AS (UPDATE sessions SET backend = $2 WHERE id = $1 AND ended_at IS NULL AND backend IS DISTINCT FROM $2 RETURNING id)
     SELECT pg_notify($3, $4) FROM a`,
    [id, backend, SESSIONS_CHANNEL, notice({ type: "attached", id, backend })],
  )
}

/** This backend is alive; the live sessions per worker over every backend. One round trip. */
export const beatAndLoad = async (pool: pg.Pool, backend: string, maxAgeSeconds: number): Promise<Map<string, number>> => {
  const result = await pool.query<{ worker_id: string; n: string }>(
    `WITH beat AS (INSERT INTO backends (id, seen_at) VALUES ($1, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now())
     SELECT worker_id, count(*) AS n FROM sessions
     WHERE worker_id IS NOT NULL AND ended_at IS NULL AND created_at > now() - make_interval(secs => $2)
     GROUP BY worker_id`,
    [backend, maxAgeSeconds],
  )
  return new Map(result.rows.map((r) => [r.worker_id, Number(r.n)]))
}

/** Ends, with WorkerStopped, every live session of the worker recorded more than `agoSeconds` ago; their ids. */
export const endWorkerSessions = async (pool: pg.Pool, workerId: string, agoSeconds: number, backend: string): Promise<ReadonlyArray<string>> => {
  const result = await pool.query<{ id: string }>(
    `WITH e AS (
       UPDATE sessions SET ended_at = now(), end_reason = 'WorkerStopped'
       WHERE worker_id = $1 AND ended_at IS NULL AND created_at < now() - make_interval(secs => $2) RETURNING id)
     SELECT id, pg_notify($3, json_build_object('type', 'ended', 'id', id, 'backend', $4::text)::text) FROM e`,
    [workerId, agoSeconds, SESSIONS_CHANNEL, backend],
  )
  return result.rows.map((r) => r.id)
}

/** a session taken over: its id, its worker, when it was recorded (ms since the epoch) */
export interface Adopted {
  readonly id: string
  readonly workerId: string
  readonly createdAt: number
}

/**
 * Claims for `backend` up to `max` live sessions on `workers` whose backend is gone: none recorded, or one whose
 * heartbeat is older than `staleSeconds`. Each row goes to one claimant (rows another claimant holds are skipped).
 */
export const adopt = async (
  pool: pg.Pool,
  backend: string,
  workers: ReadonlyArray<string>,
  staleSeconds: number,
  maxAgeSeconds: number,
  max: number,
): Promise<ReadonlyArray<Adopted>> => {
  const result = await pool.query<{ id: string; worker_id: string; created_ms: string }>(
    `WITH orphans AS (
       SELECT s.id FROM sessions s
       WHERE s.ended_at IS NULL AND s.created_at > now() - make_interval(secs => $4) AND s.worker_id = ANY($2::text[])
         AND s.backend IS DISTINCT FROM $1
         AND NOT EXISTS (SELECT 1 FROM backends b WHERE b.id = s.backend AND b.seen_at > now() - make_interval(secs => $3))
       ORDER BY s.created_at LIMIT $5 FOR UPDATE SKIP LOCKED)
     UPDATE sessions s SET backend = $1 FROM orphans o WHERE s.id = o.id
     RETURNING s.id, s.worker_id, floor(extract(epoch FROM s.created_at) * 1000)::bigint AS created_ms`,
    [backend, [...workers], staleSeconds, maxAgeSeconds, max],
  )
  return result.rows.map((r) => ({ id: r.id, workerId: r.worker_id, createdAt: Number(r.created_ms) }))
}

/** Of `ids`, the live sessions whose output goes to `backend`. */
export const mine = async (pool: pg.Pool, backend: string, ids: ReadonlyArray<string>): Promise<ReadonlySet<string>> => {
  const result = await pool.query<{ id: string }>("SELECT id FROM sessions WHERE id = ANY($1::text[]) AND backend = $2 AND ended_at IS NULL", [[...ids], backend])
  return new Set(result.rows.map((r) => r.id))
}

/** Gives up `backend`'s live sessions (it starts, or stops): nobody's, so another backend takes them over. */
export const release = async (pool: pg.Pool, backend: string): Promise<void> => {
  await pool.query("UPDATE sessions SET backend = NULL WHERE backend = $1 AND ended_at IS NULL", [backend])
}
