// The backends' rows of the registry (table `backends`, migrations 3 and 10) as haproxies on every web host read them:
// a backend announces where it is reached once it serves, beats with every load read (src/db/sessions.ts), and
// retires when it stops. Each announce and retire is told on BACKENDS_CHANNEL (src/front/ listens).
import type pg from "pg"

export const BACKENDS_CHANNEL = "sagews_backends"

export type BackendNotice = { readonly type: "up" | "down"; readonly id: string }

/** `id` serves at `address` (host:port) on `host`: fresh heartbeat, not stopped; told as `up`. */
export const announce = async (pool: pg.Pool, b: { readonly id: string; readonly host: string; readonly address: string }): Promise<void> => {
  await pool.query(
    `WITH a AS (
       INSERT INTO backends (id, seen_at, host, address, stopped_at) VALUES ($1, now(), $2, $3, NULL)
       ON CONFLICT (id) DO UPDATE SET seen_at = now(), host = $2, address = $3, stopped_at = NULL RETURNING id)
     SELECT pg_notify($4, $5) FROM a`,
    [b.id, b.host, b.address, BACKENDS_CHANNEL, JSON.stringify({ type: "up", id: b.id } satisfies BackendNotice)],
  )
}

/** `id` stopped: told as `down`. */
export const retire = async (pool: pg.Pool, id: string): Promise<void> => {
  await pool.query(
    `WITH r AS (UPDATE backends SET stopped_at = now() WHERE id = $1 RETURNING id) SELECT pg_notify($2, $3) FROM r`,
    [id, BACKENDS_CHANNEL, JSON.stringify({ type: "down", id } satisfies BackendNotice)],
  )
}
