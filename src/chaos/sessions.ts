// The stateful load: sessions that print numbered lines, on reconnecting links (terminals.ts uses the same parts).
// Output is checked by seq (every seq once, none skipped, across resumes) and by what was printed (every line
// once, in order). After a lost connection the lane resumes with fromSeq = highest seq + 1 (docs/PROTOCOL.md).
import type { ServerMessage } from "../protocol/browser.ts"
import { Inbox, Link, type LinkEvent, type Transport } from "./link.ts"
import { DEADLINE_MARGIN_S, sleep, type LaneContext } from "./load.ts"
import type { Random } from "./random.ts"
import type { Outcome } from "./types.ts"

/** The exec limit every session asks for; an execution's deadline is this plus DEADLINE_MARGIN_S. */
const EXEC_LIMIT_S = 30
/** How long an open (a Sage kernel on a loaded machine) or a close may take before it counts as hung. */
const OPEN_DEADLINE_S = 30 + DEADLINE_MARGIN_S
/** After a resume, how long to wait for an un-acked execute's first output before sending it again. */
const UNACKED_WAIT_MS = 3_000

/** The request id a message answers, if it has one. */
export const idOf = (m: ServerMessage): string | null | undefined => ("id" in m ? m.id : undefined)

interface Tally {
  seqGaps: number
  seqRepeats: number
}

/** One live session on a link: its highest seq, and what it took to keep it. */
export class Tracked {
  lastSeq = 0
  ended: string | undefined
  readonly tally: Tally = { seqGaps: 0, seqRepeats: 0 }
  /** what was skipped or repeated, e.g. `seq 41-42 never came`, for the report's examples */
  readonly seen: string[] = []
  readonly id: string
  constructor(id: string) {
    this.id = id
  }
  /** false when the message repeats a seq already seen (dropped, as a client must) */
  accept(seq: number): boolean {
    if (seq <= this.lastSeq) {
      this.tally.seqRepeats++
      this.seen.push(`seq ${seq} again after ${this.lastSeq}`)
      return false
    }
    if (seq > this.lastSeq + 1) {
      this.tally.seqGaps += seq - this.lastSeq - 1
      this.seen.push(`seq ${this.lastSeq + 1}${seq - 1 > this.lastSeq + 1 ? `-${seq - 1}` : ""} never came (next was ${seq})`)
    }
    this.lastSeq = seq
    return true
  }
}

type Step = { readonly done: true; readonly outcome: Outcome; readonly detail: string } | { readonly done: false }

/**
 * Feeds the link's events to `onMsg` until it says done or the deadline passes; resumes `tracked` after each
 * reconnect (retrying no_worker), and calls `onResumed` once a resume is answered.
 */
export const pump = async (
  inbox: Inbox,
  link: Link,
  tracked: Tracked | undefined,
  deadline: number,
  onMsg: (ev: LinkEvent) => Step,
  onResumed: () => void,
  notes: string[],
): Promise<{ outcome: Outcome; detail: string; resumes: number }> => {
  let resumes = 0
  let resumeId = ""
  let resumeAgainAt = 0
  const resume = () => {
    if (tracked === undefined || tracked.ended !== undefined) return
    resumeId = `resume-${tracked.id.slice(0, 8)}-${Date.now()}`
    if (link.send({ type: "resume", id: resumeId, session: tracked.id, fromSeq: tracked.lastSeq + 1 })) resumes++
  }
  for (;;) {
    const until = resumeAgainAt > 0 ? Math.min(deadline, resumeAgainAt) : deadline
    const ev = await inbox.next(until)
    if (ev === undefined) {
      if (resumeAgainAt > 0 && Date.now() < deadline) {
        resumeAgainAt = 0
        resume()
        continue
      }
      return { outcome: "hung", detail: `no answer by the deadline${notes.length ? ` (${notes.join("; ")})` : ""}`, resumes }
    }
    if (ev.kind === "down") notes.push(`link down: ${ev.why}`)
    if (ev.kind === "up") resume()
    if (ev.kind === "msg" && resumeId !== "" && idOf(ev.msg) === resumeId) {
      const m = ev.msg
      if (m.type === "resumed") {
        const asked = tracked!.lastSeq + 1
        if (m.fromSeq > asked) {
          tracked!.tally.seqGaps += m.fromSeq - asked
          notes.push(`resumed from seq ${m.fromSeq}, asked ${asked}: older output no longer kept`)
        }
        notes.push(`resumed at seq ${asked}`)
        onResumed()
        continue
      }
      if (m.type === "error") {
        if (m.code === "no_worker" || m.code === "limit") {
          resumeAgainAt = Date.now() + (m.retryAfterMs ?? 1000)
          continue
        }
        tracked!.ended = `resume refused: ${m.code}: ${m.message}`
        return { outcome: "failed", detail: `resume refused: ${m.code}: ${m.message}`, resumes }
      }
    }
    const step = onMsg(ev)
    if (step.done) return { outcome: step.outcome, detail: step.detail, resumes }
  }
}

/** Session output in the order seq says, for the tracked session; false for repeats and other sessions. */
export const sessionOutput = (ev: LinkEvent, tracked: Tracked): ev is Extract<LinkEvent, { kind: "msg" }> =>
  ev.kind === "msg" && (ev.msg.type === "output" || ev.msg.type === "ended") && ev.msg.session === tracked.id && tracked.accept(ev.msg.seq)

/** Opens a session (re-sending the open if the link drops before the reply); the session id or why not. */
export const openSession = async (ctx: LaneContext, lane: string, link: Link, inbox: Inbox, kernel: string, n: number, extra: object): Promise<string | undefined> => {
  const id = `${lane}-open-${n}`
  const startMs = ctx.now()
  const deadline = Date.now() + OPEN_DEADLINE_S * 1000
  let sends = 0
  let retries = 0
  let needSend = true
  let session: string | undefined
  let result: { outcome: Outcome; detail: string } | undefined
  while (result === undefined) {
    if (needSend && link.isUp && link.send({ type: "open", id: `${id}.${sends + 1}`, kernel: kernel as "python", ...extra })) {
      sends++
      needSend = false
    }
    const ev = await inbox.next(deadline)
    if (ev === undefined) result = { outcome: "hung", detail: `no opened by the deadline (${sends} sends)` }
    else if (ev.kind === "down") needSend = true
    else if (ev.kind === "msg" && idOf(ev.msg) === `${id}.${sends}`) {
      const m = ev.msg
      if (m.type === "opened") {
        session = m.session
        result = { outcome: "ok", detail: sends > 1 ? `ok after ${sends} sends (an earlier open may have left a session)` : "ok" }
      } else if (m.type === "error") {
        if ((m.code === "no_worker" || m.code === "limit") && Date.now() + (m.retryAfterMs ?? 1000) < deadline) {
          retries++
          await sleep(m.retryAfterMs ?? 1000)
          needSend = true
        } else result = { outcome: "failed", detail: `error ${m.code}: ${m.message}` }
      }
    }
  }
  ctx.record({ kind: "open", lane, id, kernel, startMs, endMs: ctx.now(), outcome: result.outcome, detail: result.detail, retries: retries + Math.max(0, sends - 1), sends })
  return session
}

export const closeSession = async (ctx: LaneContext, lane: string, link: Link, inbox: Inbox, tracked: Tracked, kernel: string): Promise<void> => {
  if (tracked.ended !== undefined) return
  const id = `${lane}-close-${tracked.id.slice(0, 8)}`
  const startMs = ctx.now()
  const notes: string[] = []
  let sent = false
  const send = () => (sent = link.send({ type: "close", id, session: tracked.id }) || sent)
  send()
  const r = await pump(inbox, link, tracked, Date.now() + OPEN_DEADLINE_S * 1000, (ev) => {
    if (ev.kind === "up" && !sent) send()
    if (sessionOutput(ev, tracked) && ev.msg.type === "ended") {
      tracked.ended = ev.msg.reason._tag
      return { done: true, outcome: "ok", detail: `ended ${ev.msg.reason._tag}` }
    }
    if (ev.kind === "msg" && ev.msg.type === "error" && ev.msg.id === id) return { done: true, outcome: ev.msg.code === "unknown_session" ? "ok" : "failed", detail: `error ${ev.msg.code}: ${ev.msg.message}` }
    return { done: false }
  }, () => void send(), notes) // a close that went out just before the link dropped may be lost: it is sent again
  ctx.record({ kind: "close", lane, id, kernel, startMs, endMs: ctx.now(), outcome: r.outcome, detail: r.detail, retries: r.resumes, seqGaps: tracked.tally.seqGaps, seqRepeats: tracked.tally.seqRepeats })
}

/** The numbered lines `tag:0` .. `tag:N-1`: what is missing, doubled, or not one of them. */
const checkLines = (stdout: string, tag: string, n: number, complete: boolean) => {
  const counts = new Map<number, number>()
  let unexpected = 0
  let order = true
  let last = -1
  for (const line of stdout.split("\n")) {
    if (line === "") continue
    const m = /^(\w+):(\d+)$/.exec(line)
    if (m === null || m[1] !== tag) {
      unexpected++
      continue
    }
    const i = Number(m[2])
    counts.set(i, (counts.get(i) ?? 0) + 1)
    if (i < last) order = false
    last = Math.max(last, i)
  }
  const upTo = complete ? n : last + 1
  let missing = 0
  for (let i = 0; i < upTo; i++) if (!counts.has(i)) missing++
  const doubled = [...counts.values()].reduce((s, c) => s + c - 1, 0)
  return { missing, doubled, unexpected, order, seen: counts.size }
}

/** One lane of stateful sessions: open, a few executions that print numbered lines, close; again until stopAt. */
export const sessionLane = async (ctx: LaneContext, lane: string, rng: Random, transport: Transport): Promise<void> => {
  const inbox = new Inbox()
  const link = new Link(ctx.url, transport, inbox.push, ctx.observe)
  try {
    for (let s = 1; ctx.now() < ctx.stopAt; s++) {
      const kernel = rng.chance(0.25) ? "sage" : "python"
      const session = await openSession(ctx, lane, link, inbox, kernel, s, { limits: { exec: EXEC_LIMIT_S, idle: 300 } })
      if (session === undefined) {
        await sleep(1000)
        continue
      }
      const tracked = new Tracked(session)
      const executions = rng.int(2, 5)
      for (let e = 1; e <= executions && ctx.now() < ctx.stopAt && tracked.ended === undefined; e++) {
        const tag = `x${s}n${e}`
        const n = rng.int(100, 500)
        // float("0.1"): Sage's preparser makes 0.1 a RealLiteral, which time.sleep refuses
        const code = `import time as _t\nfor i in range(${n}):\n    print("${tag}:" + str(i), flush=True)\n    if i % 25 == 24: _t.sleep(float("0.1"))\n`
        const id = `${lane}-${tag}`
        const startMs = ctx.now()
        const notes: string[] = []
        let stdout = ""
        let acked = false
        let sends = 0
        let sawOutput = false
        let waitUnacked: ReturnType<typeof setTimeout> | undefined
        const before = { ...tracked.tally }
        const send = () => {
          if (link.send({ type: "execute", id, session, code })) sends++
        }
        send()
        const r = await pump(inbox, link, tracked, Date.now() + (EXEC_LIMIT_S + DEADLINE_MARGIN_S) * 1000, (ev) => {
          if (ev.kind === "msg" && idOf(ev.msg) === id && ev.msg.type === "ack") acked = true
          if (ev.kind === "msg" && idOf(ev.msg) === id && ev.msg.type === "error") return { done: true, outcome: "failed", detail: `error ${ev.msg.code}: ${ev.msg.message}` }
          if (!sessionOutput(ev, tracked)) return { done: false }
          const m = ev.msg
          if (m.type === "ended") {
            tracked.ended = m.reason._tag
            return { done: true, outcome: "failed", detail: `session ended ${m.reason._tag}: ${m.message}` }
          }
          if (m.type !== "output" || m.id !== id) return { done: false }
          sawOutput = true
          if (m.msg.kind === "stdout") stdout += m.msg.text
          if (m.msg.kind === "error") notes.push(`${m.msg.ename}: ${m.msg.evalue}`)
          if (m.msg.kind === "done") return { done: true, outcome: m.msg.status === "ok" ? "ok" : "failed", detail: `done ${m.msg.status}` }
          return { done: false }
        }, () => {
          // an execute sent just before the link dropped may never have arrived: wait for its output, then send it again
          if (acked || sawOutput) return
          clearTimeout(waitUnacked)
          waitUnacked = setTimeout(() => {
            if (acked || sawOutput) return
            notes.push("execute re-sent: no ack and no output after the resume")
            send()
          }, UNACKED_WAIT_MS)
        }, notes)
        clearTimeout(waitUnacked)
        const lines = checkLines(stdout, tag, n, r.outcome === "ok")
        const seqGaps = tracked.tally.seqGaps - before.seqGaps
        const seqRepeats = tracked.tally.seqRepeats - before.seqRepeats
        let outcome: Outcome = r.outcome
        let detail = r.outcome === "hung" ? `${r.detail}; last seq ${tracked.lastSeq}, ${lines.seen}/${n} lines, acked ${acked}` : r.detail
        if (r.outcome !== "hung") {
          if (lines.doubled > 0 || seqRepeats > 0) outcome = "doubled"
          else if (lines.missing > 0 || seqGaps > 0) outcome = "lost"
          else if (lines.unexpected > 0 || !lines.order) outcome = "wrong"
          if (outcome !== r.outcome) detail = `${lines.seen}/${n} lines, ${lines.missing} missing, ${lines.doubled} doubled, ${lines.unexpected} unexpected${lines.order ? "" : ", out of order"}; seq gaps ${seqGaps}, repeats ${seqRepeats}; ${r.detail}`
        }
        const seqNotes = tracked.seen.splice(0)
        if (notes.length + seqNotes.length > 0) detail += ` [${[...seqNotes, ...notes].join("; ")}]`
        ctx.record({ kind: "execute", lane, id: `${id}@${session.slice(0, 8)}`, kernel, startMs, endMs: ctx.now(), outcome, detail, retries: r.resumes, sends, seqGaps, seqRepeats, linesMissing: lines.missing, linesDoubled: lines.doubled })
      }
      await closeSession(ctx, lane, link, inbox, tracked, kernel)
      await sleep(rng.int(100, 500))
    }
  } finally {
    link.close()
  }
}

