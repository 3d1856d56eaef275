// What the browser-facing code of a running backend (connection, session, stateless, http) shares, built from the
// services in the server's scope: the registry, session admission, the cache, the log and timers are run on the
// server's fibers (so they use the backend's logger and Clock, and stop with the server); the rest is the services.
// It also remembers the ends it hears of, so a message to an ended session is told why it ended.
import { Cause, Effect, Fiber, FiberSet, type Scope } from "effect"
import type { KernelKind, OutputMsg } from "../protocol/browser.ts"
import type { EndedFrame } from "../protocol/worker.ts"
import { Auth, type AuthCalls, authCalls } from "./auth.ts"
import { Admission, type AdmissionControl, type Grant, type Requester, type SessionAdmission, sessionAdmission } from "./admission.ts"
import { ResultCache } from "./cache.ts"
import { Identities, type IdentityService } from "./identity.ts"
import { type Links, WorkerLinks } from "./links.ts"
import { type BackendOptions, Options } from "./options.ts"
import { Registry, type SessionRecord } from "./registry.ts"
import { type FrameRouter, Router } from "./router.ts"
import { SessionRoute } from "./session.ts"
import { Worksheets, type WorksheetCalls, worksheetCalls } from "../worksheets/service.ts"
import { OidcClients } from "../accounts/oidc.ts"
import { LinkedAccounts } from "../accounts/oidc-identities.ts"
import { makeOidcSignIn } from "../accounts/oidc-signin.ts"
import { type OidcCalls, oidcCalls } from "./oidc.ts"

/** ends of sessions remembered for `session_ended` errors, the newest kept (an `ended` frame is a few hundred bytes) */
const ENDS_KEPT = 10_000

/** The ends this backend heard of, by session id, the newest ENDS_KEPT. */
export interface EndsHeard {
  add(frame: EndedFrame): void
  get(id: string): EndedFrame | undefined
}

export const makeEndsHeard = (max = ENDS_KEPT): EndsHeard => {
  const ends = new Map<string, EndedFrame>()
  return {
    add: (frame) => {
      ends.delete(frame.session)
      ends.set(frame.session, frame)
      if (ends.size > max) ends.delete(ends.keys().next().value ?? frame.session)
    },
    get: (id) => ends.get(id),
  }
}

export interface BackendContext {
  readonly options: BackendOptions
  readonly links: Links
  readonly router: FrameRouter
  readonly registry: {
    /** recorded in the background; the registry never fails (it falls back to memory) */
    ended(id: string, reason: string): void
    /** rejects only when the backend is stopping */
    find(id: string): Promise<SessionRecord | undefined>
  }
  /** admission of stateful sessions, with their registry rows (sessionAdmission) */
  readonly sessions: {
    /** rejects only when the backend is stopping */
    open(who: Requester, session: Parameters<SessionAdmission["open"]>[1]): Promise<Grant>
    route(who: Requester): (() => void) | undefined
  }
  readonly cache: {
    /** rejects only when the backend is stopping */
    get(key: string): Promise<ReadonlyArray<OutputMsg> | undefined>
    set(key: string, outputs: ReadonlyArray<OutputMsg>): void
    stats(): { hits: number; misses: number }
  }
  readonly admission: AdmissionControl
  readonly identities: IdentityService
  /** accounts: sign-in, web sessions and API tokens */
  readonly auth: AuthCalls
  /** sign-in through the OpenID Connect providers of signIn.providers */
  readonly oidc: OidcCalls
  /** an account's saved worksheets (src/worksheets/); `available` is false without PostgreSQL */
  readonly worksheets: WorksheetCalls
  /** sessions' ends this backend heard (its routes', and through the registry other backends') */
  readonly ends: EndsHeard
  readonly versions: Record<KernelKind, string>
  readonly log: { info(msg: string): void; warn(msg: string): void; error(msg: string): void }
  /** Runs `f` once `ms` have passed on Effect's Clock; the function returned cancels it. */
  after(ms: number, f: () => void): () => void
}

export const makeContext: Effect.Effect<
  BackendContext,
  never,
  Scope.Scope | Options | WorkerLinks | Router | Registry | ResultCache | Admission | Identities | Auth | Worksheets | OidcClients | LinkedAccounts
> = Effect.gen(function*() {
  const options = yield* Options
  const registry = yield* Registry
  const cache = yield* ResultCache
  const admission = yield* Admission
  const sessions = sessionAdmission(admission, registry, options.admission)
  // Fibers of this set are interrupted when the scope closes: nothing started by a handler outlives the server.
  const runFork = yield* FiberSet.makeRuntime<never>()
  const promise = <A>(effect: Effect.Effect<A>): Promise<A> => Effect.runPromise(Fiber.join(runFork(effect)))
  const background = (effect: Effect.Effect<void>): void => void runFork(effect)
  const router = yield* Router
  const ends = makeEndsHeard()
  yield* registry.subscribe((event) => {
    if (event.type === "ended" && event.frame !== undefined) ends.add(event.frame)
    // a connection of another backend resumed it: the output goes there now, and our connection is told
    if (event.type === "attached" && !event.mine) {
      const route = router.get(event.id)
      if (route instanceof SessionRoute) route.attachedElsewhere()
    }
  })
  return {
    options,
    links: yield* WorkerLinks,
    router,
    registry: {
      ended: (id, reason) => background(registry.ended(id, reason)),
      find: (id) => promise(registry.find(id)),
    },
    sessions: {
      open: (who, session) => promise(sessions.open(who, session)),
      route: sessions.route,
    },
    cache: {
      get: (key) => promise(cache.get(key)),
      set: (key, outputs) => background(cache.set(key, outputs)),
      stats: () => cache.stats(),
    },
    admission,
    identities: yield* Identities,
    auth: authCalls(yield* Auth, promise),
    oidc: oidcCalls(makeOidcSignIn(yield* OidcClients, yield* LinkedAccounts, yield* Auth), promise),
    worksheets: worksheetCalls(yield* Worksheets, promise),
    ends,
    versions: cache.versions,
    log: {
      info: (msg) => background(Effect.logInfo(msg)),
      warn: (msg) => background(Effect.logWarning(msg)),
      error: (msg) => background(Effect.logError(msg)),
    },
    after: (ms, f) => {
      let fired = false
      const fiber = runFork(Effect.sleep(ms).pipe(
        Effect.andThen(Effect.sync(() => {
          fired = true
          f()
        })),
        Effect.catchCause((cause) => Effect.logError(`a timer's callback failed: ${Cause.pretty(cause)}`)),
      ))
      return () => {
        if (!fired) fiber.interruptUnsafe()
      }
    },
  }
})
