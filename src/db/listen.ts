// One connection that LISTENs on a channel for as long as its scope is open, connecting again after a loss on a
// named schedule. Notifications sent while it was away are missed: nothing may depend on hearing all of them.
import { Deferred, Effect, Schedule, type Scope } from "effect"
import { closeClient, connectRaw, DbError, quoteIdent, toDbError } from "./client.ts"

/** between attempts to get a lost LISTEN connection back: soon, then no more than every 5 s */
export const LISTEN_RETRY = Schedule.min([Schedule.exponential("200 millis", 2), Schedule.spaced("5 seconds")])

/** One connection's life: LISTEN, then hand each payload to `onNotify` until the connection fails. */
const listenOnce = (url: string, channel: string, onNotify: (payload: string) => void, onListening: () => void): Effect.Effect<never, DbError> =>
  Effect.scoped(Effect.gen(function*() {
    const lost = yield* Deferred.make<never, DbError>()
    const fail = (operation: string) => (error: unknown): void => void Deferred.doneUnsafe(lost, Effect.fail(toDbError(operation)(error)))
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => connectRaw(url, {}, fail("listen connection")), catch: toDbError("connect to listen") }),
      (c) => Effect.promise(() => closeClient(c)),
    )
    client.on("notification", (message) => {
      if (message.channel === channel && message.payload !== undefined) onNotify(message.payload)
    })
    client.on("end", () => fail("listen connection")(new Error("the connection ended")))
    yield* Effect.tryPromise({ try: () => client.query(`LISTEN ${quoteIdent(channel)}`), catch: toDbError(`LISTEN ${channel}`) })
    onListening()
    return yield* Deferred.await(lost)
  }))

/**
 * Listens until the scope closes; each loss is passed to `onLost` (to be logged) and the connection is made again
 * after LISTEN_RETRY. `onListening` runs each time LISTEN took effect: what was missed meanwhile can be read then.
 */
export const listen = (
  url: string,
  channel: string,
  onNotify: (payload: string) => void,
  onLost: (error: DbError) => Effect.Effect<void>,
  onListening: () => void = () => undefined,
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.asVoid(Effect.forkScoped(
    listenOnce(url, channel, onNotify, onListening).pipe(
      Effect.tapError(onLost),
      Effect.retry(LISTEN_RETRY),
      Effect.ignore,
    ),
  ))
