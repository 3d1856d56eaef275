// What haproxy should serve besides this host's own backends: the registry's live backends (table `backends`, each
// backend's own heartbeat) that other haproxies can reach. Read only; the backends write their rows themselves.
import { Duration, Effect } from "effect"
import { connect, type DbError, query } from "../db/client.ts"

/** The channel a backend NOTIFYs when it registers (`up`) and when it stops (`down`): src/db/backends.ts writes it. */
export { BACKENDS_CHANNEL } from "../db/backends.ts"

/**
 * A backend whose heartbeat (every ~2 s) is older than this is gone: its host died or lost its link, and could not
 * say so. Five missed beats, so one slow beat under load does not take a live backend out of every haproxy.
 */
export const STALE_AFTER = Duration.seconds(10)

/** ms to wait for PostgreSQL: a registry that does not answer soon is treated as down (haproxy keeps what it has). */
const CONNECT_TIMEOUT_MS = 2_000
const QUERY_TIMEOUT_MS = 5_000

export interface LiveBackend {
  /** the registry id, e.g. `backend:1@web2` */
  readonly id: string
  /** `host:port` as the backend registered it */
  readonly address: string
  /** its heartbeat is within STALE_AFTER */
  readonly fresh: boolean
}

/**
 * Every backend that runs (not stopped) and has an address for other hosts, except `local` (this host's, which the
 * config names statically), each saying whether it beats (seen within STALE_AFTER, by PostgreSQL's clock, so the
 * hosts' clocks do not matter).
 */
export const runningBackends = (url: string, local: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<LiveBackend>, DbError> =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* connect(url, { connectTimeout: CONNECT_TIMEOUT_MS, queryTimeout: QUERY_TIMEOUT_MS })
    const result = yield* query(
      client,
      `SELECT id, address, seen_at > now() - make_interval(secs => $1) AS fresh FROM backends
       WHERE address IS NOT NULL AND stopped_at IS NULL AND NOT (id = ANY($2::text[]))
       ORDER BY id`,
      [Duration.toSeconds(STALE_AFTER), [...local]],
    )
    return result.rows.map((row: { id: string; address: string; fresh: boolean }) => ({ id: row.id, address: row.address, fresh: row.fresh }))
  }))
