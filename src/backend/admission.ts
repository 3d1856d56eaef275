// Admission control: per-client and per-backend counts of live sessions and executions in flight.
// A refusal names the limit, its value and when to retry; a grant is a release function, safe to call twice.

export interface AdmissionLimits {
  readonly sessionsPerClient: number
  readonly sessionsPerBackend: number
  readonly execsPerClient: number
  readonly execsPerBackend: number
  readonly retryAfterMs: number
}

export interface Refusal {
  readonly limit: keyof Omit<AdmissionLimits, "retryAfterMs">
  readonly max: number
  readonly retryAfterMs: number
  readonly message: string
}

export type Grant = { readonly ok: true; readonly release: () => void } | { readonly ok: false; readonly refusal: Refusal }

type Kind = "sessions" | "execs"

export class Admission {
  private readonly perClient: Record<Kind, Map<string, number>> = { sessions: new Map(), execs: new Map() }
  private readonly total: Record<Kind, number> = { sessions: 0, execs: 0 }
  private readonly limits: AdmissionLimits

  constructor(limits: AdmissionLimits) {
    this.limits = limits
  }

  session(client: string): Grant {
    return this.take("sessions", client)
  }

  execution(client: string): Grant {
    return this.take("execs", client)
  }

  counts(): { sessions: number; execs: number } {
    return { ...this.total }
  }

  private take(kind: Kind, client: string): Grant {
    const clientMax = kind === "sessions" ? this.limits.sessionsPerClient : this.limits.execsPerClient
    const backendMax = kind === "sessions" ? this.limits.sessionsPerBackend : this.limits.execsPerBackend
    const mine = this.perClient[kind].get(client) ?? 0
    const what = kind === "sessions" ? "live sessions" : "executions running at once"
    const retryAfterMs = this.limits.retryAfterMs
    if (mine >= clientMax) {
      const limit = kind === "sessions" ? "sessionsPerClient" : "execsPerClient"
      const advice = kind === "sessions" ? "close one of your sessions, or" : ""
      return { ok: false, refusal: { limit, max: clientMax, retryAfterMs, message: `limit ${limit} reached: you have ${mine} ${what}, the most allowed is ${clientMax}; ${advice} try again in ${retryAfterMs / 1000} s` } }
    }
    if (this.total[kind] >= backendMax) {
      const limit = kind === "sessions" ? "sessionsPerBackend" : "execsPerBackend"
      return { ok: false, refusal: { limit, max: backendMax, retryAfterMs, message: `limit ${limit} reached: this server has ${this.total[kind]} ${what}, its most is ${backendMax}; try again in ${retryAfterMs / 1000} s` } }
    }
    this.perClient[kind].set(client, mine + 1)
    this.total[kind]++
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        this.total[kind]--
        const left = (this.perClient[kind].get(client) ?? 1) - 1
        if (left <= 0) this.perClient[kind].delete(client)
        else this.perClient[kind].set(client, left)
      },
    }
  }
}
