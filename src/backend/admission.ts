// The Admission service: per-client, per-address and per-backend counts of live sessions and executions in flight.
// A refusal names the limit, its value and when to retry; a grant is a release function, safe to call twice. With a
// shared registry, a client's and an address's live sessions are counted there, over every backend (sessionAdmission).
import { Context, Effect, Layer } from "effect"
import { Options } from "./options.ts"
import type { NewSession, SessionRegistry } from "./registry.ts"

export interface AdmissionLimits {
  readonly sessionsPerClient: number
  readonly sessionsPerAddress: number
  readonly sessionsPerBackend: number
  readonly execsPerClient: number
  readonly execsPerAddress: number
  readonly execsPerBackend: number
  readonly retryAfterMs: number
}

/**
 * Who asks. `client` is a server-issued identity (src/backend/identity.ts), never a name the caller chose; since
 * anyone can be issued new identities, `address` (src/backend/address.ts) caps what all of them together may hold.
 */
export interface Requester {
  readonly client: string
  readonly address: string
}

export interface Refusal {
  readonly limit: keyof Omit<AdmissionLimits, "retryAfterMs">
  readonly max: number
  readonly retryAfterMs: number
  readonly message: string
}

export type Grant = { readonly ok: true; readonly release: () => void } | { readonly ok: false; readonly refusal: Refusal }

type Kind = "sessions" | "execs"
type Scope = "Client" | "Address"
/** the limits a grant is checked against: all of them, or only this backend's total */
export type Check = "all" | "backend"

const WHAT: Record<Kind, string> = { sessions: "live sessions", execs: "executions running at once" }
const ADVICE: Record<Kind, string> = { sessions: "close one of your sessions, or ", execs: "" }

/** counts per key; a key whose count drops to 0 is forgotten */
const counter = () => {
  const counts = new Map<string, number>()
  const get = (key: string): number => counts.get(key) ?? 0
  return {
    get,
    add: (key: string, delta: number): void => {
      const next = get(key) + delta
      if (next <= 0) counts.delete(key)
      else counts.set(key, next)
    },
  }
}

export interface AdmissionControl {
  /** `check` "backend": only this backend's total may refuse (the registry counts the client and the address) */
  session(who: Requester, check?: Check): Grant
  execution(who: Requester): Grant
  counts(): { sessions: number; execs: number }
}

const refusal = (limits: AdmissionLimits, limit: Refusal["limit"], max: number, situation: string, advice = ""): Refusal => {
  const retryAfterMs = limits.retryAfterMs
  return { limit, max, retryAfterMs, message: `limit ${limit} reached: ${situation}, the most allowed is ${max}; ${advice}try again in ${retryAfterMs / 1000} s` }
}

/** the refusal of a `kind` past its per-client or per-address limit, `held` being what the client or address has */
const overLimit = (limits: AdmissionLimits, kind: Kind, scope: Scope, held: number, who: Requester): Refusal => {
  const limit = `${kind}Per${scope}` as const
  const holder = scope === "Client" ? "you have" : `your address (${who.address}) has`
  return refusal(limits, limit, limits[limit], `${holder} ${held} ${WHAT[kind]}`, ADVICE[kind])
}

export const makeAdmission = (limits: AdmissionLimits): AdmissionControl => {
  const held: Record<Kind, Record<Scope, ReturnType<typeof counter>>> = {
    sessions: { Client: counter(), Address: counter() },
    execs: { Client: counter(), Address: counter() },
  }
  const total: Record<Kind, number> = { sessions: 0, execs: 0 }

  const take = (kind: Kind, who: Requester, check: Check): Grant => {
    const counters = held[kind]
    const keys: Record<Scope, string> = { Client: who.client, Address: who.address }
    if (check === "all") {
      for (const scope of ["Client", "Address"] as const) {
        const mine = counters[scope].get(keys[scope])
        if (mine >= limits[`${kind}Per${scope}`]) return { ok: false, refusal: overLimit(limits, kind, scope, mine, who) }
      }
    }
    const backendMax = limits[`${kind}PerBackend`]
    if (total[kind] >= backendMax) return { ok: false, refusal: refusal(limits, `${kind}PerBackend`, backendMax, `this server has ${total[kind]} ${WHAT[kind]}`) }
    for (const scope of ["Client", "Address"] as const) counters[scope].add(keys[scope], 1)
    total[kind]++
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        total[kind]--
        for (const scope of ["Client", "Address"] as const) counters[scope].add(keys[scope], -1)
      },
    }
  }

  return {
    session: (who, check = "all") => take("sessions", who, check),
    execution: (who) => take("execs", who, "all"),
    counts: () => ({ ...total }),
  }
}

/** Sessions as a backend admits them: counted here alone (a memory registry), or over every backend (a shared one). */
export interface SessionAdmission {
  /**
   * A new session: admitted, and recorded in the registry before its worker is asked to open it (so another backend
   * finds it as soon as the client can name it). A shared registry counts the client's and the address's live
   * sessions over every backend; this backend counts its own total.
   */
  open(who: Requester, session: Omit<NewSession, "client" | "from">): Effect.Effect<Grant>
  /** A session opened elsewhere that this backend starts to route (a resume): it takes a slot here if one is free. */
  route(who: Requester): (() => void) | undefined
}

export const sessionAdmission = (local: AdmissionControl, registry: SessionRegistry, limits: AdmissionLimits): SessionAdmission => {
  const check: Check = registry.shared ? "backend" : "all"
  const caps = registry.shared ? { Client: limits.sessionsPerClient, Address: limits.sessionsPerAddress } : undefined
  return {
    open: (who, session) =>
      Effect.suspend(() => {
        const grant = local.session(who, check)
        if (!grant.ok) return Effect.succeed(grant)
        return Effect.map(registry.reserve({ ...session, client: who.client, from: who.address }, caps), (reserved): Grant => {
          if (reserved.ok) return grant
          grant.release()
          return { ok: false, refusal: overLimit(limits, "sessions", reserved.scope, reserved.count, who) }
        })
      }),
    route: (who) => {
      const grant = local.session(who, check)
      return grant.ok ? grant.release : undefined
    },
  }
}

export class Admission extends Context.Service<Admission, AdmissionControl>()("sagews/backend/Admission") {
  static readonly layer = Layer.effect(Admission, Options.useSync((options) => makeAdmission(options.admission)))
}
