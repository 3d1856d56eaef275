// The verdict of a chaos run: the promises it checks, what broke them (with examples), the tables it prints and
// the JSON it writes. A run fails (exit 1) when any promise is broken.
import { cpus, totalmem } from "node:os"
import { alignColumns } from "../cli/status.ts"
import type { RunStart } from "./executions.ts"
import type { ComponentHistory } from "./monitor.ts"
import type { ComponentSample, FaultRecord, Outcome, RequestKind, RequestRecord } from "./types.ts"

export interface RunFacts {
  readonly options: object
  readonly seed: number
  readonly tree: { readonly owned: boolean; readonly url: string; readonly dataDir: string; readonly livenessBoundMs: number; readonly notes: ReadonlyArray<string> }
  readonly durationMs: number
  readonly requests: ReadonlyArray<RequestRecord>
  readonly faults: ReadonlyArray<FaultRecord>
  readonly components: ReadonlyArray<ComponentHistory>
  /** components not running at the end, after the final wait */
  readonly down: ReadonlyArray<ComponentSample>
  readonly runStarts: ReadonlyMap<string, ReadonlyArray<RunStart>>
  /** the worker pids alive at the end: a start on one of them that never ended is still running, not dead */
  readonly liveWorkerPids: ReadonlyArray<number>
  /** processes left after stop (owned trees), as "pid cmdline" */
  readonly left: ReadonlyArray<string> | null
  readonly statusFailures: number
  /** what the clients saw on the way, counted: reconnects, second welcomes */
  readonly observations: Readonly<Record<string, number>>
}

export interface Broken {
  readonly promise: string
  readonly count: number
  readonly examples: ReadonlyArray<string>
}

export interface ExecutionCount {
  readonly id: string
  readonly codeHash: string
  readonly sends: number
  /** every start a worker logged */
  readonly starts: number
  /** starts that ran: ended (any reason) or still on a live worker; the others died with their worker */
  readonly executions: number
  /** each start: its worker pid, session, time and end reason (null: it died with its worker) */
  readonly detail: ReadonlyArray<RunStart>
}

const OUTCOMES: ReadonlyArray<Outcome> = ["ok", "wrong", "lost", "doubled", "failed", "hung"]
const KINDS: ReadonlyArray<RequestKind> = ["http", "run", "open", "execute", "resume", "terminal", "close"]
const EXAMPLES = 5

const describe = (r: RequestRecord): string =>
  `${r.kind} ${r.id} (${r.kernel}) at ${(r.startMs / 1000).toFixed(1)}-${(r.endMs / 1000).toFixed(1)} s${r.faults.length ? ` during fault ${r.faults.map((n) => `#${n}`).join(",")}` : ""}: ${r.detail}`

/** A failed HTTP request that was in flight inside a haproxy the harness killed (or stopped until it was killed). */
export const inKilledHaproxy = (r: RequestRecord, faults: ReadonlyArray<FaultRecord>): boolean =>
  r.kind === "http" && faults.some((f) => f.component === "haproxy" && (f.kind === "sigkill" || f.kind === "sigstop" || f.kind === "restart") &&
    r.startMs <= (f.diedMs ?? f.healedMs ?? Number.POSITIVE_INFINITY) && r.endMs >= f.startMs)

export const countExecutions = (facts: Pick<RunFacts, "requests" | "runStarts" | "liveWorkerPids">): ExecutionCount[] => {
  const byCode = new Map<string, { ids: string[]; sends: number }>()
  for (const r of facts.requests) {
    if (r.codeHash === undefined) continue
    const c = byCode.get(r.codeHash) ?? { ids: [], sends: 0 }
    c.ids.push(`${r.kind} ${r.id}`)
    c.sends += r.sends ?? 1
    byCode.set(r.codeHash, c)
  }
  return [...byCode].map(([codeHash, c]) => {
    const starts = facts.runStarts.get(codeHash) ?? []
    // a start whose worker stopped under it (WorkerStopped), was lost (WorkerLost) or died did not run to its end: running it again on the
    // next worker is what the protocol promises (docs/PROTOCOL.md, "Request ids, and runs under faults")
    const executions = starts.filter((s) => (s.ended !== null && s.ended !== "WorkerStopped" && s.ended !== "WorkerLost") || (s.ended === null && facts.liveWorkerPids.includes(s.pid))).length
    return { id: c.ids.join(" + "), codeHash, sends: c.sends, starts: starts.length, executions, detail: starts }
  })
}

export const verdict = (facts: RunFacts): { readonly broken: ReadonlyArray<Broken>; readonly executions: ReadonlyArray<ExecutionCount> } => {
  const broken: Broken[] = []
  const add = (promise: string, items: ReadonlyArray<string>) => {
    if (items.length > 0) broken.push({ promise, count: items.length, examples: items.slice(0, EXAMPLES) })
  }
  const rs = facts.requests
  add("every answer is right (no wrong answer)", rs.filter((r) => r.outcome === "wrong").map(describe))
  add("no session output is lost (by seq and by printed line)", rs.filter((r) => r.outcome === "lost").map(describe))
  add("no session output is doubled (by seq and by printed line)", rs.filter((r) => r.outcome === "doubled").map(describe))
  add("no request outlives its deadline (its limit plus a margin)", rs.filter((r) => r.outcome === "hung").map(describe))
  add(
    "a stateless request succeeds unless it was in flight inside a killed haproxy",
    rs.filter((r) => (r.kind === "http" || r.kind === "run") && r.outcome === "failed" && !inKilledHaproxy(r, facts.faults)).map(describe),
  )
  const executions = countExecutions(facts)
  add(
    "a run executes at most as often as the client sent it",
    executions.filter((e) => e.executions > e.sends).map((e) => `${e.id}: sent ${e.sends}, executed ${e.executions}: ${e.detail.map((s) => `${s.session} on pid ${s.pid} at ${s.ts} ended ${s.ended ?? "never (died with its worker)"}`).join("; ")}`),
  )
  add(
    "every component heals after every fault",
    [
      ...facts.faults.filter((f) => f.healedMs === null).map((f) => `fault #${f.n} ${f.kind} ${f.component}: not running as a new process within the heal timeout (${f.detail})`),
      ...facts.down.map((c) => `${c.id} is ${c.state} at the end (last exit ${c.lastExit ?? "-"})`),
    ],
  )
  if (facts.left !== null) add("nothing is left running after stop", [...facts.left])
  return { broken, executions }
}

/** New pids of a component that no fault on it explains: an exit the tree had on its own (collateral damage). */
export const unplannedRestarts = (facts: Pick<RunFacts, "components" | "faults">): Array<{ readonly id: string; readonly atMs: number }> =>
  facts.components.flatMap((c) => c.pidChanges.filter((t) => !facts.faults.some((f) => f.component === c.id && t >= f.startMs && t <= (f.healedMs ?? Number.POSITIVE_INFINITY) + 1_000)).map((t) => ({ id: c.id, atMs: t })))

const median = (xs: ReadonlyArray<number>): number | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

/** The tables, for a person. */
export const formatReport = (facts: RunFacts, v: ReturnType<typeof verdict>): string => {
  const out: string[] = []
  const rs = facts.requests
  out.push(`chaos: ${(facts.durationMs / 1000).toFixed(0)} s against ${facts.tree.url} (${facts.tree.owned ? `own tree in ${facts.tree.dataDir}` : `running tree ${facts.tree.dataDir}`}), seed ${facts.seed}`)
  for (const n of facts.tree.notes) out.push(`note: ${n}`)
  out.push("", "requests by kind and outcome")
  out.push(...alignColumns(["KIND", "TOTAL", ...OUTCOMES.map((o) => o.toUpperCase()), "EXCUSED", "RETRIES"], KINDS.flatMap((k) => {
    const of = rs.filter((r) => r.kind === k)
    if (of.length === 0) return []
    const excused = of.filter((r) => r.outcome === "failed" && inKilledHaproxy(r, facts.faults)).length
    return [[k, String(of.length), ...OUTCOMES.map((o) => String(of.filter((r) => r.outcome === o).length)), String(excused), String(of.reduce((s, r) => s + r.retries, 0))]]
  })))
  const sum = (f: (r: RequestRecord) => number | undefined) => rs.reduce((s, r) => s + (f(r) ?? 0), 0)
  out.push("", "session output (executions and terminals, across resumes)")
  out.push(...alignColumns(["SEQ GAPS", "SEQ REPEATS", "LINES MISSING", "LINES DOUBLED", "RESUMES"], [[String(sum((r) => r.seqGaps)), String(sum((r) => r.seqRepeats)), String(sum((r) => r.linesMissing)), String(sum((r) => r.linesDoubled)), String(rs.filter((r) => r.kind === "execute" || r.kind === "terminal" || r.kind === "close").reduce((s, r) => s + r.retries, 0))]]))
  const ex = v.executions
  out.push("", "stateless runs, counted from the workers' logs")
  out.push(...alignColumns(["CODES", "RAN ONCE", "RAN MORE THAN SENT", "RE-SENT AND RAN AGAIN", "STARTED ON A WORKER THAT DIED", "NEVER STARTED (REFUSED, CACHED, LOG LOST)"], [[
    String(ex.length),
    String(ex.filter((e) => e.executions === 1).length),
    String(ex.filter((e) => e.executions > e.sends).length),
    String(ex.filter((e) => e.executions > 1 && e.executions <= e.sends).length),
    String(ex.filter((e) => e.starts > e.executions).length),
    String(ex.filter((e) => e.starts === 0).length),
  ]]))
  out.push("", "faults")
  out.push(...alignColumns(["#", "AT", "KIND", "COMPONENT", "HEAL", "WHAT"], facts.faults.map((f) => [
    String(f.n), `${(f.startMs / 1000).toFixed(1)}s`, f.kind, f.component, f.detail.startsWith("skipped") ? "-" : f.healedMs === null ? "NOT HEALED" : `${Math.max(0, f.healedMs - f.endMs)} ms`, f.detail,
  ])))
  out.push("", "components")
  out.push(...alignColumns(["ID", "FAULTS", "RESTARTS", "NEW PIDS", "HEAL MEDIAN", "HEAL MAX", "LAST EXIT", "AT THE END"], facts.components.filter((c) => c.firstPid !== null || c.pidChanges.length > 0).map((c) => {
    const heals = facts.faults.filter((f) => f.component === c.id && f.healedMs !== null && !f.detail.startsWith("skipped")).map((f) => f.healedMs! - f.endMs)
    const d = facts.down.find((x) => x.id === c.id)
    const m = median(heals)
    return [c.id, String(facts.faults.filter((f) => f.component === c.id).length), String(c.restarts), String(c.pidChanges.length), m === null ? "-" : `${m} ms`, heals.length ? `${Math.max(...heals)} ms` : "-", c.lastExit ?? "-", d ? d.state : "running"]
  })))
  const unplanned = unplannedRestarts(facts)
  if (unplanned.length > 0) out.push("", `restarts no fault explains (the tree's own exits; see the component's log): ${unplanned.map((u) => `${u.id} at ${(u.atMs / 1000).toFixed(1)} s`).join(", ")}`)
  const seen = Object.entries(facts.observations)
  if (seen.length > 0) out.push("", "seen by the clients", ...seen.map(([what, n]) => `  ${n}× ${what}`))
  if (facts.statusFailures > 0) out.push(`(status did not answer ${facts.statusFailures} times)`)
  out.push("", facts.left === null ? "processes left after stop: not stopped (a running tree is left running)" : `processes left after stop: ${facts.left.length}${facts.left.length ? `\n  ${facts.left.join("\n  ")}` : ""}`)
  out.push("")
  if (v.broken.length === 0) out.push("every promise kept")
  else {
    out.push(`BROKEN PROMISES: ${v.broken.length}`)
    for (const b of v.broken) {
      out.push(`- ${b.promise}: ${b.count}`)
      for (const e of b.examples) out.push(`    ${e}`)
    }
  }
  return out.join("\n")
}

/** The JSON document: bench-shaped (`results` are numbers) with everything else beside them. */
export const reportJson = (facts: RunFacts, v: ReturnType<typeof verdict>): object => {
  const rs = facts.requests
  const results: Record<string, number> = {
    "duration (s)": Math.round(facts.durationMs / 1000),
    requests: rs.length,
    faults: facts.faults.length,
    "broken promises": v.broken.length,
  }
  for (const k of KINDS) for (const o of OUTCOMES) {
    const n = rs.filter((r) => r.kind === k && r.outcome === o).length
    if (n > 0) results[`${k} ${o}`] = n
  }
  results["runs executed more than sent"] = v.executions.filter((e) => e.executions > e.sends).length
  results["seq gaps"] = rs.reduce((s, r) => s + (r.seqGaps ?? 0), 0)
  results["seq repeats"] = rs.reduce((s, r) => s + (r.seqRepeats ?? 0), 0)
  results["lines missing"] = rs.reduce((s, r) => s + (r.linesMissing ?? 0), 0)
  results["lines doubled"] = rs.reduce((s, r) => s + (r.linesDoubled ?? 0), 0)
  results["restarts no fault explains"] = unplannedRestarts(facts).length
  results["faults not healed"] = facts.faults.filter((f) => f.healedMs === null).length
  for (const c of facts.components) {
    const heals = facts.faults.filter((f) => f.component === c.id && f.healedMs !== null).map((f) => f.healedMs! - f.endMs)
    if (heals.length > 0) results[`heal max: ${c.id} (ms)`] = Math.max(...heals)
  }
  if (facts.left !== null) results["processes left after stop"] = facts.left.length
  return {
    bench: "chaos",
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
    options: facts.options,
    seed: facts.seed,
    tree: facts.tree,
    results,
    broken: v.broken,
    faults: facts.faults,
    components: facts.components,
    down: facts.down,
    observations: facts.observations,
    unplannedRestarts: unplannedRestarts(facts),
    left: facts.left,
    // the codes whose starts were not one execution (re-sent and run again, or died with a worker); the codes never
    // started (cache hits, refusals) are only counted in `results`
    executions: v.executions.filter((e) => e.starts > 0 && (e.executions !== 1 || e.starts !== 1)),
    // every request that did not end ok, with what happened (the ok ones are in `results`: a ten-minute run has
    // some 14,000, which would make the report megabytes)
    requests: rs.filter((r) => r.outcome !== "ok"),
  }
}
