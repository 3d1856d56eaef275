// logwatch's side of PostgreSQL: load the committed file offsets, and COPY a batch of rows and move the offsets
// in one transaction, so the rows and the positions after them are committed together or not at all.
import type pg from "pg"
import type { Batch } from "./files.ts"
import { copyField, copyFrom } from "../db/copy.ts"
import { type LogRow, parseLine } from "./parse.ts"

/** first key of the per-host advisory lock ("lw" in ASCII); the second is hashtext(host) */
const HOST_LOCK = 0x6c77

/**
 * Takes the session-level lock that makes this connection the only logwatch shipping for `host`: two of them
 * (the same host name on two machines) would overwrite each other's offsets and lose or double lines.
 */
export const lockHost = async (client: pg.ClientBase, host: string): Promise<void> => {
  const result = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked", [HOST_LOCK, host])
  if (result.rows[0]?.locked !== true) {
    throw new Error(`another logwatch is shipping for host "${host}" (the same --host on two machines?); waiting for it to stop`)
  }
}

export const loadOffsets = async (client: pg.ClientBase, host: string): Promise<Map<number, number>> => {
  const result = await client.query<{ inode: string; offset: string }>(
    `SELECT inode, "offset" FROM log_offsets WHERE host = $1`,
    [host],
  )
  return new Map(result.rows.map((row) => [Number(row.inode), Number(row.offset)]))
}

const COPY_ROWS = "COPY log (host, component, pid, ts, level, msg) FROM STDIN"

const UPSERT_OFFSETS = `
  INSERT INTO log_offsets (host, inode, file, "offset", updated_at)
  SELECT $1, *, now() FROM unnest($2::bigint[], $3::text[], $4::bigint[])
  ON CONFLICT (host, inode) DO UPDATE SET file = excluded.file, "offset" = excluded."offset", updated_at = now()`

const FORGET_OFFSETS = `DELETE FROM log_offsets WHERE host = $1 AND inode = ANY($2::bigint[])`

/** The batch's lines, parsed, in COPY's text format. */
const copyData = (host: string, batch: Batch, now: number, rowOf: RowOf): Buffer => {
  const prefix = `${copyField(host)}\t`
  const parts: Array<string> = []
  for (const slice of batch.slices) {
    for (const line of slice.lines) {
      const row = rowOf(line, slice.component, now)
      parts.push(
        `${prefix}${copyField(row.component)}\t${copyField(row.pid)}\t${row.ts}\t${copyField(row.level)}\t${copyField(row.msg)}\n`,
      )
    }
  }
  return Buffer.from(parts.join(""))
}

export type RowOf = (line: string, fileComponent: string, now: number) => LogRow

/** Inserts every line of the batch (parsed here by `rowOf`) and moves the offsets, atomically. */
export const commitBatch = async (
  client: pg.ClientBase,
  host: string,
  batch: Batch,
  now: number,
  rowOf: RowOf = parseLine,
): Promise<void> => {
  const data = copyData(host, batch, now, rowOf)
  await client.query("BEGIN")
  try {
    if (data.length > 0) await copyFrom(client, COPY_ROWS, data)
    if (batch.slices.length > 0) {
      await client.query(UPSERT_OFFSETS, [
        host,
        batch.slices.map((s) => s.ino),
        batch.slices.map((s) => s.name),
        batch.slices.map((s) => s.end),
      ])
    }
    if (batch.forget.length > 0) await client.query(FORGET_OFFSETS, [host, batch.forget])
    await client.query("COMMIT")
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {})
    throw error
  }
}

/**
 * PostgreSQL refused the data itself (SQLSTATE class 22 data exception, 54 program limit): retrying the same
 * rows would fail forever, so the batch is stored verbatim instead.
 */
export const isDataError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" &&
  /^(22|54)/.test(error.code)
