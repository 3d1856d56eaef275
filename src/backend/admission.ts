// Admission control: per-client, per-address and per-backend counts of live sessions and executions in flight.
// A refusal names the limit, its value and when to retry; a grant is a release function, safe to call twice.

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

const WHAT: Record<Kind, string> = { sessions: "live sessions", execs: "executions running at once" }
const ADVICE: Record<Kind, string> = { sessions: "close one of your sessions, or ", execs: "" }

class Counter {
  private readonly counts = new Map<string, number>()
  get(key: string): number {
    return this.counts.get(key) ?? 0
  }
  add(key: string, delta: number): void {
    const next = this.get(key) + delta
    if (next <= 0) this.counts.delete(key)
    else this.counts.set(key, next)
  }
}

export class Admission {
  private readonly held: Record<Kind, Record<Scope, Counter>> = {
    sessions: { Client: new Counter(), Address: new Counter() },
    execs: { Client: new Counter(), Address: new Counter() },
  }
  private readonly total: Record<Kind, number> = { sessions: 0, execs: 0 }
  private readonly limits: AdmissionLimits

  constructor(limits: AdmissionLimits) {
    this.limits = limits
  }

  session(who: Requester): Grant {
    return this.take("sessions", who)
  }

  execution(who: Requester): Grant {
    return this.take("execs", who)
  }

  counts(): { sessions: number; execs: number } {
    return { ...this.total }
  }

  private refuse(limit: Refusal["limit"], max: number, situation: string, advice = ""): Grant {
    const retryAfterMs = this.limits.retryAfterMs
    return { ok: false, refusal: { limit, max, retryAfterMs, message: `limit ${limit} reached: ${situation}, the most allowed is ${max}; ${advice}try again in ${retryAfterMs / 1000} s` } }
  }

  private take(kind: Kind, who: Requester): Grant {
    const counters = this.held[kind]
    const keys: Record<Scope, string> = { Client: who.client, Address: who.address }
    for (const scope of ["Client", "Address"] as const) {
      const limit = `${kind}Per${scope}` as const
      const mine = counters[scope].get(keys[scope])
      const max = this.limits[limit]
      const holder = scope === "Client" ? "you have" : `your address (${who.address}) has`
      if (mine >= max) return this.refuse(limit, max, `${holder} ${mine} ${WHAT[kind]}`, ADVICE[kind])
    }
    const backendMax = this.limits[`${kind}PerBackend`]
    if (this.total[kind] >= backendMax) return this.refuse(`${kind}PerBackend`, backendMax, `this server has ${this.total[kind]} ${WHAT[kind]}`)
    for (const scope of ["Client", "Address"] as const) counters[scope].add(keys[scope], 1)
    this.total[kind]++
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        this.total[kind]--
        for (const scope of ["Client", "Address"] as const) counters[scope].add(keys[scope], -1)
      },
    }
  }
}
