// One transaction on a connection of a pool: BEGIN, the work, COMMIT; on any failure ROLLBACK, and the connection
// is dropped rather than reused. The work returns `rollback(value)` to end without committing (a refused admission).
import type pg from "pg"

const ROLLBACK = Symbol("rollback")

export interface RolledBack<A> {
  readonly [ROLLBACK]: true
  readonly value: A
}

/** what the work returns to roll the transaction back and still answer `value` */
export const rollback = <A>(value: A): RolledBack<A> => ({ [ROLLBACK]: true, value })

const isRolledBack = <A>(v: A | RolledBack<A>): v is RolledBack<A> => typeof v === "object" && v !== null && ROLLBACK in v

export const inTransaction = async <A>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<A | RolledBack<A>>): Promise<A> => {
  const client = await pool.connect()
  let broken: Error | undefined
  // a checked-out client has no error listener of the pool's: PostgreSQL dying mid-transaction would be an unhandled
  // 'error' event, and take the process with it
  const onError = (error: Error): void => void (broken ??= error)
  client.on("error", onError)
  try {
    await client.query("BEGIN")
    const result = await work(client)
    if (isRolledBack(result)) {
      await client.query("ROLLBACK")
      return result.value
    }
    await client.query("COMMIT")
    return result
  } catch (error) {
    broken = error instanceof Error ? error : new Error(String(error))
    await client.query("ROLLBACK").catch(() => undefined)
    throw error
  } finally {
    // a connection whose transaction failed half-way is dropped, not reused
    client.removeListener("error", onError)
    client.release(broken)
  }
}
