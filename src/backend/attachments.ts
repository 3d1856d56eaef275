// What a backend's worker links know of the sessions whose output comes to them (the attachments), kept true in the
// registry: every `ended` a link hears is recorded; after a lost connection each session that was attached is asked
// for again; the sessions of stopped backends are taken over (adopted) and asked for the same way.
import { Deferred, Duration, Effect, Fiber, Schedule } from "effect"
import type { WorkerFrame } from "../protocol/worker.ts"
import type { WorkerClient } from "../wire/client.ts"
import type { SessionRegistry } from "./registry.ts"
import { type FrameRouter, isStateful } from "./router.ts"

/** the worker's answer to `resume` of a session it does not have (it never had it, or it ended over a minute ago) */
const NO_SESSION = /^no (running )?session /
/** ms a probe (a resume after a loss, or of a session taken over) waits for the worker's answer */
const PROBE_TIMEOUT = Duration.seconds(10)
/** fromSeq of a probe: past any output, so that nothing is replayed; the answer says what the worker has */
const PROBE_FROM = Number.MAX_SAFE_INTEGER
/**
 * ms the workers keep an ended session (their keepEnded default): within this of a loss, a session that was live
 * when the link was lost and that the worker does not know was not ended, it was lost with the worker's restart
 */
const WORKER_KEEPS_ENDED_MS = 60_000
/**
 * the most a session's `ended` waits for its registry row to end before it is routed on (to the route, then the
 * client): a client that opens another session at once is not counted the old one; a slow registry delays no end longer
 */
const ENDED_HOLD = Duration.seconds(1)
/** sessions of stopped backends one round takes over, at most */
const ADOPT_MAX = 100
/** between rounds that take over the sessions of stopped backends (a backend counts as stopped after 20 s silent) */
export const adoptEvery = Schedule.spaced("3 seconds")

type Answer = { readonly alive: true; readonly lastSeq: number } | { readonly alive: false }

/** What one worker address's links know of the sessions whose output comes to them. */
interface Attachments {
  /** stateful sessions whose output comes over the current connection */
  readonly attached: Set<string>
  /** the last connection lost: when, and the sessions attached to it then */
  lost: { readonly at: number; readonly ids: Set<string> } | undefined
  /** answers awaited from the worker on the current connection, per session */
  readonly awaiting: Map<string, Array<(answer: Answer) => void>>
}

/**
 * The registry kept true by the links. Every `ended` a link hears is recorded, whether or not a route is left for it.
 * After a loss, each session that was attached is asked for again (its route resumes it, or the link does): one the
 * worker no longer has ends with WorkerStopped, and when it has none of them it restarted, so every session it had
 * before the loss ends so; a link not back within workerLostGrace ends them too, as their routes do. The sessions of
 * a stopped backend, which nobody hears, are taken over (adopted) and asked for the same way.
 */
export const makeAttachments = (deps: {
  readonly registry: SessionRegistry
  readonly router: FrameRouter
  readonly run: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  readonly now: () => number
  readonly workerLostGrace: number
}) => {
  const { registry, router, run, now } = deps
  const books = new Map<string, Attachments>()
  const of = (address: string): Attachments => {
    let book = books.get(address)
    if (book === undefined) books.set(address, (book = { attached: new Set(), lost: undefined, awaiting: new Map() }))
    return book
  }

  /** the worker's next answer about `id`; `onGone` runs at once, before the frame is routed (its route ends after) */
  const expect = (book: Attachments, id: string, onGone: () => void): Effect.Effect<Answer | undefined> => {
    const answer = Deferred.makeUnsafe<Answer>()
    const waiting = book.awaiting.get(id) ?? []
    waiting.push((a) => {
      if (!a.alive) onGone()
      Deferred.doneUnsafe(answer, Effect.succeed(a))
    })
    book.awaiting.set(id, waiting)
    return Effect.map(Effect.timeoutOption(Deferred.await(answer), PROBE_TIMEOUT), (o) => (o._tag === "Some" ? o.value : undefined))
  }
  const answered = (book: Attachments, id: string, a: Answer): void => {
    const waiting = book.awaiting.get(id)
    book.awaiting.delete(id)
    for (const f of waiting ?? []) f(a)
  }

  /** Asks the worker for a session no route of ours resumes; if it ended lately, its last frame (the `ended`) is replayed too. */
  const probe = (client: WorkerClient, book: Attachments, id: string, onGone: () => void): Effect.Effect<Answer | undefined> =>
    Effect.tap(
      Effect.suspend(() => {
        const answer = expect(book, id, onGone)
        client.send({ type: "resume", session: id, fromSeq: PROBE_FROM })
        return answer
      }),
      (a) => Effect.sync(() => (a?.alive === true && a.lastSeq > 0 ? client.send({ type: "resume", session: id, fromSeq: a.lastSeq }) : undefined)),
    )

  /**
   * The connection is up again: what the worker still has of the sessions attached to the lost one. The answers to
   * the routes' own resumes (router.reconnected, right after this) are awaited from now on; the link asks for the rest.
   */
  const afterLoss = (client: WorkerClient, book: Attachments, lost: NonNullable<Attachments["lost"]>): Effect.Effect<void> => {
    const lately = (): boolean => now() - lost.at < WORKER_KEEPS_ENDED_MS
    const gone = (id: string) => () => run(registry.ended(id, lately() ? "WorkerStopped" : "Gone"))
    const ids = [...lost.ids]
    const routed = ids.filter((id) => isStateful(router.get(id))).map((id) => expect(book, id, gone(id)))
    return Effect.gen(function*() {
      const ours = yield* registry.mine(ids.filter((id) => !isStateful(router.get(id))))
      const probes = [...ours].map((id) => probe(client, book, id, gone(id)))
      const answers = yield* Effect.all([...routed, ...probes], { concurrency: "unbounded" })
      const lostOnes = answers.filter((a) => a?.alive === false).length
      if (answers.some((a) => a?.alive === true) || lostOnes === 0 || !lately()) return
      yield* Effect.logInfo(`${client.worker} restarted: it has none of the ${lostOnes} session(s) it had; every session it had before ends with WorkerStopped`)
      yield* registry.workerRestarted(client.worker, now() - lost.at)
    })
  }

  return {
    /** Sees each frame before it is routed; false when it routes the frame itself, later (an `ended`, once recorded). */
    watch: (address: string) => (frame: WorkerFrame): boolean => {
      if (!("session" in frame) || frame.session === undefined) return true
      const book = of(address)
      const id = frame.session
      switch (frame.type) {
        case "opened":
          if (isStateful(router.get(id))) book.attached.add(id)
          return true
        case "resumed":
          if (!book.attached.has(id)) {
            book.attached.add(id)
            run(registry.attached(id))
          }
          answered(book, id, { alive: true, lastSeq: frame.lastSeq })
          return true
        case "ended": {
          if (!book.attached.delete(id)) return true
          const recording = run(registry.ended(id, frame.reason._tag, frame))
          run(Effect.andThen(Effect.timeoutOption(Fiber.join(recording), ENDED_HOLD), Effect.sync(() => router.dispatch(frame))))
          return false
        }
        case "error":
          if (NO_SESSION.test(frame.message)) {
            book.attached.delete(id)
            answered(book, id, { alive: false })
          }
          return true
        default:
          return true
      }
    },
    /** The connection to `address` is up again; what to find out about the sessions of the lost one, if any. */
    connected: (address: string, client: WorkerClient): Effect.Effect<void> | undefined => {
      const book = of(address)
      const lost = book.lost
      book.lost = undefined
      return lost === undefined || lost.ids.size === 0 ? undefined : afterLoss(client, book, lost)
    },
    lost: (address: string): void => {
      const book = of(address)
      const lost = { at: now(), ids: new Set([...(book.lost?.ids ?? []), ...book.attached]) }
      book.lost = lost
      book.attached.clear()
      book.awaiting.clear()
      // lost for good: a worker not back within the grace has lost them, as their routes report
      run(Effect.delay(Effect.sync(() => {
        if (book.lost !== lost) return
        for (const id of lost.ids) if (!isStateful(router.get(id))) run(registry.ended(id, "WorkerStopped"))
      }), Duration.millis(deps.workerLostGrace)))
    },
    /** another backend recorded this: the session's output no longer comes to us */
    elsewhere: (id: string): void => {
      for (const book of books.values()) {
        book.attached.delete(id)
        book.lost?.ids.delete(id)
      }
    },
    /** Takes over the sessions of stopped backends on the connected workers, and asks each worker for them. */
    adopt: (up: ReadonlyMap<string, WorkerClient>) =>
      Effect.gen(function*() {
        const links = [...up]
        const claimed = yield* registry.adopt(links.map(([, c]) => c.worker), ADOPT_MAX)
        for (const { id, workerId, createdAt } of claimed) {
          const link = links.find(([, c]) => c.worker === workerId)
          if (link === undefined) continue
          const [address, client] = link
          // recorded before this worker started: it lived on the worker that stopped; else it ended unheard over a
          // minute ago, and when and why nobody can tell any more
          const reason = createdAt < client.startedAt ? "WorkerStopped" : "Gone"
          run(Effect.asVoid(probe(client, of(address), id, () => run(registry.ended(id, reason)))))
        }
        if (claimed.length > 0) yield* Effect.logInfo(`took over ${claimed.length} session(s) of stopped backends`)
      }),
  }
}
