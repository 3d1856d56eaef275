// The shipping loop: read complete lines, commit rows and offsets together, repeat. On any failure the connection is
// dropped, and after a capped backoff logwatch reconnects and continues from the offsets that PostgreSQL holds.
import * as path from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { Scope } from "effect"
import type pg from "pg"
import { closeClient, connectRaw, redact } from "../db/client.ts"
import { LogFiles } from "./files.ts"
import { log } from "./logger.ts"
import { verbatim } from "./parse.ts"
import { commitBatch, isDataError, loadOffsets, lockHost } from "./store.ts"

/** rows per transaction: large enough for ~100k rows/s, small enough to keep a transaction short */
export const BATCH_LINES = 10_000
export const BATCH_BYTES = 8 << 20
/** how often an idle logwatch looks for new lines */
export const IDLE_POLL = "100 millis"
/** between reconnect attempts while PostgreSQL is down: 100 ms doubling, never more than 5 s */
export const reconnectBackoff = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])
/** ms a query may take before the connection is considered hung */
const QUERY_TIMEOUT = 10_000
/** ms the SIGTERM flush may take (the process actor's shutdown is 5 s) */
const FINAL_FLUSH = 2_000

export interface ShipperOptions {
  readonly dataDir: string
  readonly dbUrl: string
  readonly host: string
}

/** A cycle failed (database or file system); the cycle is retried from the committed offsets. */
class ShipFailure extends Data.TaggedError("ShipFailure")<{ readonly message: string }> {}

export const ship = (options: ShipperOptions): Effect.Effect<never, never, Scope.Scope> =>
  Effect.gen(function*() {
    const files = new LogFiles(path.join(options.dataDir, "log"), (event) => {
      if (event.kind !== "opened" && event.kind !== "closed") log("info", `${event.name}: ${event.kind}`)
    })
    let client: pg.Client | undefined
    let outageSince: number | undefined

    const drop = async (): Promise<void> => {
      const old = client
      client = undefined
      if (old !== undefined) await closeClient(old)
    }

    /** One read-and-commit; the number of lines shipped (0 = nothing to do). */
    const cycleOnce = async (): Promise<number> => {
      if (client === undefined) {
        const fresh = await connectRaw(options.dbUrl, { queryTimeout: QUERY_TIMEOUT })
        try {
          await lockHost(fresh, options.host)
          files.resetOffsets(await loadOffsets(fresh, options.host))
        } catch (error) {
          await closeClient(fresh)
          throw error
        }
        client = fresh
        if (outageSince !== undefined) {
          log("info", `database reachable again after ${((Date.now() - outageSince) / 1000).toFixed(1)} s; resuming`)
          outageSince = undefined
        }
      }
      const now = Date.now()
      await files.sync(now)
      const batch = await files.read(BATCH_LINES, BATCH_BYTES, now)
      if (batch.slices.length === 0 && batch.forget.length === 0) return 0
      try {
        await commitBatch(client, options.host, batch, now)
      } catch (error) {
        if (!isDataError(error)) throw error
        log("error", `PostgreSQL rejected a batch of ${batch.lineCount} lines (${String(error)}); storing them verbatim`)
        await commitBatch(client, options.host, batch, now, verbatim)
      }
      files.committedBatch(batch)
      return batch.lineCount
    }

    // A cycle is never interrupted halfway: SIGTERM waits for the commit in flight, then the final flush runs.
    const cycle = Effect.tryPromise({
      try: cycleOnce,
      catch: (error) => new ShipFailure({ message: error instanceof Error ? error.message : String(error) }),
    }).pipe(
      Effect.tapError((error) =>
        Effect.promise(async () => {
          if (outageSince === undefined) {
            outageSince = Date.now()
            log("warn", `cannot ship (database ${redact(options.dbUrl)}): ${error.message}; retrying with backoff`)
          }
          await drop()
        })
      ),
      Effect.uninterruptible,
    )

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const deadline = Date.now() + FINAL_FLUSH
        try {
          while (client !== undefined && Date.now() < deadline && (await cycleOnce()) > 0) {}
        } catch (error) {
          log("warn", `final flush failed (the next start resumes from the committed offsets): ${String(error)}`)
        }
        await drop()
        await files.close()
      })
    )

    return yield* cycle.pipe(
      Effect.retry(reconnectBackoff),
      Effect.orDie, // unreachable: the backoff never gives up
      Effect.flatMap((shipped) => (shipped === 0 ? Effect.sleep(IDLE_POLL) : Effect.void)),
      Effect.forever,
    )
  })
