// `sagews logs [ID] [-f] [--since 10m]`: reads the log that logwatch shipped into PostgreSQL.
import pg from "pg"
import { redact } from "../db/client.ts"
import { UsageError } from "./args.ts"

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 }

/** "10m" -> 600 seconds; names the bad value otherwise. */
export const parseSince = (raw: string): number => {
  const m = /^(\d+)([smhd])$/.exec(raw)
  if (!m) throw new UsageError(`--since expects a duration such as 30s, 10m, 2h or 1d, got ${JSON.stringify(raw)}`)
  return Number(m[1]) * UNITS[m[2]!]!
}

interface Row {
  readonly id: string
  readonly ts: Date
  readonly host: string
  readonly component: string
  readonly level: string
  readonly msg: string
}

const FOLLOW_POLL_MS = 500
const PAGE = 5000

export const showLogs = async (
  dbUrl: string,
  options: { readonly id?: string | undefined; readonly sinceSeconds: number; readonly follow: boolean; readonly out: (line: string) => void; readonly signal?: AbortSignal },
): Promise<void> => {
  const client = new pg.Client({ connectionString: dbUrl, connectionTimeoutMillis: 3000 })
  client.on("error", () => undefined)
  try {
    await client.connect()
  } catch (e) {
    throw new Error(`cannot reach PostgreSQL at ${redact(dbUrl)}: ${(e as Error).message}. Is sagews running? (sagews status)`)
  }
  try {
    let lastId = "0"
    let first = true
    for (;;) {
      const params: unknown[] = [lastId, PAGE]
      let where = "id > $1"
      if (first) {
        params.push(options.sinceSeconds)
        where += ` AND ts > now() - make_interval(secs => $${params.length})`
      }
      if (options.id) {
        params.push(options.id)
        where += ` AND component = $${params.length}`
      }
      const { rows } = await client.query<Row>(`SELECT id, ts, host, component, level, msg FROM log WHERE ${where} ORDER BY id LIMIT $2`, params)
      for (const r of rows) options.out(`${r.ts.toISOString()} ${r.component} ${r.level.toUpperCase()} ${r.msg}`)
      // the --since window holds until the first row: a quiet component must not get its whole history later
      if (rows.length > 0) {
        lastId = rows[rows.length - 1]!.id
        first = false
      }
      if (rows.length === PAGE) continue
      if (!options.follow || options.signal?.aborted) return
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS))
      if (options.signal?.aborted) return
    }
  } finally {
    await client.end().catch(() => undefined)
  }
}
