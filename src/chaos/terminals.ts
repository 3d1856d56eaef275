// The terminal load: a terminal session that must echo back sums it was typed, across reconnects and resumes.
import { Inbox, Link, type Transport } from "./link.ts"
import { DEADLINE_MARGIN_S, sleep, type LaneContext } from "./load.ts"
import type { Random } from "./random.ts"
import { closeSession, idOf, openSession, pump, sessionOutput, Tracked } from "./sessions.ts"
import type { Outcome } from "./types.ts"

/** One lane of terminals: open, a few `echo` lines whose sums must come back, close; again until stopAt. */
export const terminalLane = async (ctx: LaneContext, lane: string, rng: Random, transport: Transport): Promise<void> => {
  const inbox = new Inbox()
  const link = new Link(ctx.url, transport, inbox.push, ctx.observe)
  try {
    for (let s = 1; ctx.now() < ctx.stopAt; s++) {
      const session = await openSession(ctx, lane, link, inbox, "terminal", s, { cols: 120, rows: 40 })
      if (session === undefined) {
        await sleep(1000)
        continue
      }
      const tracked = new Tracked(session)
      let screen = ""
      const inputs = rng.int(3, 6)
      for (let e = 1; e <= inputs && ctx.now() < ctx.stopAt && tracked.ended === undefined; e++) {
        const a = rng.int(1, 99_999)
        const b = rng.int(1, 99_999)
        const tag = `t${s}n${e}`
        const want = `C${a + b}X${tag}`
        const id = `${lane}-${tag}`
        const startMs = ctx.now()
        const notes: string[] = []
        let acked = false
        let sends = 0
        const before = { ...tracked.tally }
        const send = () => {
          if (link.send({ type: "terminalInput", id, session, data: `echo C$((${a}+${b}))X${tag}\r` })) sends++
        }
        const from = screen.length
        send()
        const r = await pump(inbox, link, tracked, Date.now() + (10 + DEADLINE_MARGIN_S) * 1000, (ev) => {
          if (ev.kind === "msg" && idOf(ev.msg) === id && ev.msg.type === "ack") acked = true
          if (ev.kind === "msg" && idOf(ev.msg) === id && ev.msg.type === "error") return { done: true, outcome: "failed", detail: `error ${ev.msg.code}: ${ev.msg.message}` }
          if (!sessionOutput(ev, tracked)) return { done: false }
          const m = ev.msg
          if (m.type === "ended") {
            tracked.ended = m.reason._tag
            return { done: true, outcome: "failed", detail: `terminal ended ${m.reason._tag}: ${m.message}` }
          }
          if (m.type === "output" && m.msg.kind === "terminal") screen += m.msg.data
          return screen.indexOf(want, from) >= 0 ? { done: true, outcome: "ok", detail: "ok" } : { done: false }
        }, () => {
          if (!acked && screen.indexOf(want, from) < 0) {
            notes.push("input re-sent: no ack before the link dropped")
            send()
          }
        }, notes)
        const seqGaps = tracked.tally.seqGaps - before.seqGaps
        const seqRepeats = tracked.tally.seqRepeats - before.seqRepeats
        const outcome: Outcome = r.outcome === "ok" && seqRepeats > 0 ? "doubled" : r.outcome === "ok" && seqGaps > 0 ? "lost" : r.outcome
        ctx.record({ kind: "terminal", lane, id: `${id}@${session.slice(0, 8)}`, kernel: "terminal", startMs, endMs: ctx.now(), outcome, detail: r.detail + (notes.length + tracked.seen.length ? ` [${[...tracked.seen.splice(0), ...notes].join("; ")}]` : ""), retries: r.resumes, sends, seqGaps, seqRepeats })
        if (screen.length > 100_000) screen = screen.slice(-10_000)
      }
      await closeSession(ctx, lane, link, inbox, tracked, "terminal")
      await sleep(rng.int(100, 500))
    }
  } finally {
    link.close()
  }
}

