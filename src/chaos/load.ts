// The stateless load, all through the front door: `POST /api/v1/execute` lanes and SockJS `run` lanes. Every code
// carries a nonce and computes a number from it, so a wrong, mixed-up or stale answer shows; a first use of a code
// records its hash for counting how often workers ran it (executions.ts).
import { createHash } from "node:crypto"
import { postExecute, readReply } from "./http.ts"
import { Inbox, Link, type Transport } from "./link.ts"
import type { Random } from "./random.ts"
import type { RequestRecord } from "./types.ts"

/** The wall limit every stateless request asks for; its deadline is this plus DEADLINE_MARGIN_S. */
export const STATELESS_WALL_S = 20
/** What a deadline allows past a limit: a backend's take-over, a worker's restart, a reconnect. */
export const DEADLINE_MARGIN_S = 25

export type NewRecord = Omit<RequestRecord, "faults">

export interface LaneContext {
  readonly url: string
  /** ms since the run's start */
  readonly now: () => number
  /** lanes start nothing new from this time (ms since start) on */
  readonly stopAt: number
  readonly runId: string
  readonly record: (r: NewRecord) => void
  /** counts something seen on the way that is not a request's outcome (a reconnect, a second welcome) */
  readonly observe: (what: string) => void
}

export const codeHash = (code: string): string => createHash("sha256").update(code).digest("hex").slice(0, 16)
export const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))

interface StatelessCode {
  readonly kernel: "python" | "sage"
  readonly code: string
  readonly expected: string
  /** false for a code used before: a cache hit (when the first run was clean and memcached had it) */
  readonly fresh: boolean
}

/** A code that prints a number computed from a random n; python ones sometimes sleep, so faults catch them in flight. */
const makeCode = (rng: Random, runId: string, nonce: string, used: StatelessCode[]): StatelessCode => {
  if (used.length > 0 && rng.chance(0.1)) return { ...rng.pick(used), fresh: false }
  const kernel = rng.chance(0.15) ? "sage" : "python"
  const n = rng.int(1, 1_000_000)
  const code = kernel === "python"
    ? `# chaos ${runId} ${nonce}\nimport time\ntime.sleep(${(rng.int(0, 15) / 10).toFixed(1)})\nn = ${n}\nprint(n * 7)\n`
    : `# chaos ${runId} ${nonce}\nn = ${n}\nprint(2^10 * n)\n`
  const c: StatelessCode = { kernel, code, expected: `${kernel === "python" ? n * 7 : n * 1024}\n`, fresh: true }
  used.push(c)
  if (used.length > 50) used.shift()
  return c
}

/** One lane of `POST /api/v1/execute`, one request at a time until stopAt. */
export const httpLane = async (ctx: LaneContext, lane: string, rng: Random): Promise<void> => {
  const used: StatelessCode[] = []
  for (let k = 1; ctx.now() < ctx.stopAt; k++) {
    const id = `${lane}-${k}`
    const c = makeCode(rng, ctx.runId, id, used)
    const startMs = ctx.now()
    const outcome = await postExecute(ctx.url, { code: c.code, kernel: c.kernel, cache: true, limits: { wall: STATELESS_WALL_S } }, (STATELESS_WALL_S + DEADLINE_MARGIN_S) * 1000)
    const r = readReply(outcome)
    const base = { kind: "http" as const, lane, id, kernel: c.kernel, startMs, endMs: ctx.now(), retries: outcome.retries, sends: 1, codeHash: codeHash(c.code) }
    if (r.ok) {
      const right = r.stdout === c.expected
      ctx.record({ ...base, outcome: right ? "ok" : "wrong", detail: right ? (r.cached ? "ok (cached)" : "ok") : `expected ${JSON.stringify(c.expected)}, got ${JSON.stringify(r.stdout.slice(0, 200))}` })
    } else ctx.record({ ...base, outcome: r.hung ? "hung" : "failed", detail: r.message })
    await sleep(rng.int(100, 400))
  }
}

/** One lane of SockJS `run`s on one connection; a run with no runDone when the link drops is sent again after it is back. */
export const runLane = async (ctx: LaneContext, lane: string, rng: Random, transport: Transport): Promise<void> => {
  const inbox = new Inbox()
  const link = new Link(ctx.url, transport, inbox.push, ctx.observe)
  const used: StatelessCode[] = []
  try {
    for (let k = 1; ctx.now() < ctx.stopAt; k++) {
      const id = `${lane}-${k}`
      const c = makeCode(rng, ctx.runId, id, used)
      const startMs = ctx.now()
      const deadline = Date.now() + (STATELESS_WALL_S + DEADLINE_MARGIN_S) * 1000
      let sends = 0
      let retries = 0
      let current = ""
      let needSend = true
      let stdout = ""
      let lastSeq = 0
      const notes: string[] = []
      let result: { outcome: RequestRecord["outcome"]; detail: string } | undefined
      while (result === undefined) {
        if (needSend && link.isUp) {
          // the same id again: if its backend died, the new one attaches to the run on the worker (docs/PROTOCOL.md)
          current = id
          stdout = ""
          lastSeq = 0
          if (link.send({ type: "run", id: current, kernel: c.kernel, code: c.code, cache: true, limits: { wall: STATELESS_WALL_S } })) {
            sends++
            needSend = false
          }
        }
        const ev = await inbox.next(deadline)
        if (ev === undefined) {
          result = { outcome: "hung", detail: `no runDone by the deadline (${sends} sends${notes.length ? `; ${notes.join("; ")}` : ""})` }
          break
        }
        if (ev.kind === "down") {
          if (!needSend) notes.push(`re-sent after ${ev.why}`)
          needSend = true
          continue
        }
        if (ev.kind !== "msg") continue
        const m = ev.msg
        if (m.type === "runRestarted" && m.id === current) {
          // its worker was lost after it printed: what came so far is void, it comes again from seq 1
          notes.push(`restarted: ${m.reason}`)
          stdout = ""
          lastSeq = 0
        } else if (m.type === "runOutput" && m.id === current) {
          if (m.seq !== lastSeq + 1) notes.push(`runOutput seq ${m.seq} after ${lastSeq}`)
          lastSeq = Math.max(lastSeq, m.seq)
          if (m.msg.kind === "stdout") stdout += m.msg.text
        } else if (m.type === "runDone" && m.id === current) {
          const seqBad = notes.some((n) => n.startsWith("runOutput seq"))
          if (m.status !== "ok") result = { outcome: "failed", detail: `runDone ${m.status}${m.limit ? ` (${m.limit})` : ""}: ${m.message ?? ""}` }
          else if (stdout !== c.expected) result = { outcome: "wrong", detail: `expected ${JSON.stringify(c.expected)}, got ${JSON.stringify(stdout.slice(0, 200))}` }
          else if (seqBad) result = { outcome: "lost", detail: notes.join("; ") }
          else result = { outcome: "ok", detail: `ok${m.cached ? " (cached)" : ""}${sends > 1 ? ` after ${sends} sends` : ""}` }
        } else if (m.type === "error" && m.id === current) {
          if ((m.code === "no_worker" || m.code === "limit") && Date.now() + (m.retryAfterMs ?? 1000) < deadline) {
            retries++
            await sleep(m.retryAfterMs ?? 1000)
            needSend = true
          } else result = { outcome: "failed", detail: `error ${m.code}: ${m.message}` }
        }
      }
      ctx.record({ kind: "run", lane, id, kernel: c.kernel, startMs, endMs: ctx.now(), outcome: result.outcome, detail: result.detail, retries: retries + Math.max(0, sends - 1), sends, codeHash: codeHash(c.code) })
      await sleep(rng.int(100, 400))
    }
  } finally {
    link.close()
  }
}
