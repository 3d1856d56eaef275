// The records a chaos run keeps: one per request the load made, one per fault it injected, and the
// component timeline the monitor saw. The report (report.ts) reads only these.

export type RequestKind = "http" | "run" | "open" | "execute" | "resume" | "terminal" | "close"

/**
 * What became of one request: `ok`; `wrong` (an answer that is not the one the code must give); `lost` or
 * `doubled` (session output missing or repeated, by seq or by the printed numbers); `failed` (an error reply, a
 * status other than ok, a closed connection); `hung` (no answer by its deadline).
 */
export type Outcome = "ok" | "wrong" | "lost" | "doubled" | "failed" | "hung"

export interface RequestRecord {
  readonly kind: RequestKind
  /** the lane that made it, e.g. `http:2`, `session:1` */
  readonly lane: string
  readonly id: string
  readonly kernel: string
  /** ms since the run started */
  readonly startMs: number
  readonly endMs: number
  readonly outcome: Outcome
  /** what went wrong, or how it went right (e.g. `ok after 2 retries`) */
  readonly detail: string
  /** retries the protocol allows (503/429 with retryAfterMs, refused connections, SockJS no_worker/limit, re-sent runs) */
  readonly retries: number
  /** ids of the faults active or in flight while the request was */
  readonly faults: ReadonlyArray<number>
  /** for stateless requests: the code's short hash, to count how often workers started it (a code may be sent again, for a cache hit) */
  readonly codeHash?: string
  /** how many times the client sent it (a SockJS run is re-sent after a reconnect, as docs/PROTOCOL.md says) */
  readonly sends?: number
  /** for session executions: seq gaps and repeats, and printed numbers missing or repeated */
  readonly seqGaps?: number
  readonly seqRepeats?: number
  readonly linesMissing?: number
  readonly linesDoubled?: number
}

export type FaultKind = "sigkill" | "sigstop" | "restart" | "pg-down" | "memcached-hang" | "disk-full"
export const FAULT_KINDS: ReadonlyArray<FaultKind> = ["sigkill", "sigstop", "restart", "pg-down", "memcached-hang", "disk-full"]

export interface FaultRecord {
  readonly n: number
  readonly kind: FaultKind
  readonly component: string
  /** the pid it hit (the first one, for pg-down's repeated kills) */
  readonly pid: number | null
  /** every pid it killed or stopped: the component has healed once it runs as none of them */
  readonly hit: number[]
  readonly startMs: number
  /** when the fault itself was over (the stop lifted, the disk emptied, PostgreSQL let up) */
  endMs: number
  /** when status showed the component running again as a new process (or running at all, for disk-full) */
  healedMs: number | null
  /** what was done, e.g. `SIGSTOP held 9000 ms; killed by the supervisor after 5210 ms` */
  detail: string
  /** for haproxy faults: the moment its old process was seen gone (requests in flight then died with it) */
  diedMs: number | null
}

/** One sighting of a component by the status monitor. */
export interface ComponentSample {
  readonly id: string
  /** "worker" (a process or fiber) or "supervisor" */
  readonly type: string
  readonly state: string
  readonly pid: number | null
  readonly restarts: number
  readonly lastExit: string | null
}
