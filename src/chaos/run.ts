// One chaos run against a tree: the load lanes for `durationS`, a fault every `everyS` (seeded choices), the
// heal of each, and the facts the report judges. The tree is neither started nor stopped here.
import { randomBytes } from "node:crypto"
import { UsageError } from "../cli/args.ts"
import { readRunStarts } from "./executions.ts"
import { awaitHeal, injectFault, targetsOf, HEAL_TIMEOUT_MS, type FaultContext } from "./faults.ts"
import { httpLane, runLane, sleep, type LaneContext, type NewRecord } from "./load.ts"
import { startMonitor } from "./monitor.ts"
import type { ChaosOptions } from "./options.ts"
import { stream } from "./random.ts"
import type { RunFacts } from "./report.ts"
import { sessionLane } from "./sessions.ts"
import { terminalLane } from "./terminals.ts"
import type { Tree } from "./tree.ts"
import { FAULT_KINDS, type FaultKind, type FaultRecord, type RequestRecord } from "./types.ts"

/**
 * The load: lanes of each kind, each one request at a time (admission's per-address limits stay far away). No lane
 * uses SockJS's xhr transports: sockjs-client's Node driver never notices a response stream that a dying backend
 * or haproxy cut (it waits for 'end'), so such a lane hangs where a browser's XHR would report the error.
 */
const LANES = { http: 3, run: 2, session: 2, terminal: 1 } as const

export const runChaos = async (tree: Tree, options: ChaosOptions, log: (line: string) => void): Promise<RunFacts> => {
  const t0 = Date.now()
  const now = () => Date.now() - t0
  const durationMs = options.durationS * 1000
  const everyMs = options.everyS * 1000
  const monitor = await startMonitor(tree, now)
  const rows = monitor.latest()
  const ids = rows.map((r) => r.id)
  const processes = rows.filter((r) => r.type === "worker" && r.pid !== null).map((r) => r.id)
  const components = options.components ?? processes
  for (const c of components) {
    if (!processes.includes(c)) throw new UsageError(`--components: ${JSON.stringify(c)} is not a component with a process; status has ${processes.join(", ")}`)
  }
  const notes = [...tree.notes]
  const kinds: FaultKind[] = []
  for (const kind of options.faults ?? FAULT_KINDS) {
    const t = targetsOf(kind, components, tree, ids)
    if ("skip" in t) {
      if (options.faults !== undefined) throw new UsageError(`--faults ${kind}: ${t.skip}`)
      notes.push(`${kind} left out: ${t.skip}`)
    } else kinds.push(kind)
  }
  if (kinds.length === 0) throw new UsageError("no fault applies to this tree")

  const requests: NewRecord[] = []
  const runId = randomBytes(4).toString("hex")
  const observations = new Map<string, number>()
  const observe = (what: string) => observations.set(what, (observations.get(what) ?? 0) + 1)
  const lane: LaneContext = { url: tree.url, now, stopAt: durationMs, runId, record: (r) => requests.push(r), observe }
  const guard = (name: string, p: Promise<void>) => p.catch((e: unknown) => log(`chaos: lane ${name} stopped on a harness error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`))
  const lanes: Promise<void>[] = []
  for (let i = 1; i <= LANES.http; i++) lanes.push(guard(`http:${i}`, httpLane(lane, `http${i}`, stream(options.seed, `http${i}`))))
  for (let i = 1; i <= LANES.run; i++) lanes.push(guard(`run:${i}`, runLane(lane, `run${i}`, stream(options.seed, `run${i}`), i % 2 === 1 ? "raw" : "sockjs-websocket")))
  for (let i = 1; i <= LANES.session; i++) lanes.push(guard(`session:${i}`, sessionLane(lane, `ses${i}`, stream(options.seed, `session${i}`), i % 2 === 1 ? "raw" : "sockjs-websocket")))
  for (let i = 1; i <= LANES.terminal; i++) lanes.push(guard(`terminal:${i}`, terminalLane(lane, `term${i}`, stream(options.seed, `terminal${i}`), "raw")))

  const faults: FaultRecord[] = []
  const heals: Promise<void>[] = []
  const ctx: FaultContext = { tree, monitor, now, everyMs, log }
  const rng = stream(options.seed, "faults")
  for (let at = everyMs, n = 1; at < durationMs; at += everyMs, n++) {
    if (now() < at) await sleep(at - now())
    const kind = rng.pick(kinds)
    const targets = (targetsOf(kind, components, tree, ids) as { readonly targets: ReadonlyArray<string> }).targets
    let target = rng.pick(targets)
    // a component still coming back from the last fault is not hit again: another running one is
    const running = (id: string) => id === "data-dir" || monitor.row(id)?.state === "running"
    if (!running(target)) target = targets.find(running) ?? target
    const fault = await injectFault(ctx, n, kind, target)
    log(`chaos: fault #${n} at ${(fault.startMs / 1000).toFixed(1)} s: ${kind} ${target}: ${fault.detail}`)
    faults.push(fault)
    heals.push(awaitHeal(ctx, fault).then(() => log(`chaos: fault #${n} ${kind} ${target}: ${fault.healedMs === null ? "NOT healed" : `healed after ${fault.healedMs - fault.endMs} ms`}`)))
  }
  if (now() < durationMs) await sleep(durationMs - now())
  log(`chaos: ${options.durationS} s are over; waiting for the requests in flight and for the tree to heal`)
  await Promise.all([...lanes, ...heals])
  const down = await monitor.waitAllRunning(HEAL_TIMEOUT_MS)
  await sleep(1_500) // the workers' last log lines reach their files
  const runStarts = readRunStarts(tree.dataDir)
  const liveWorkerPids = monitor.latest().filter((r) => r.id.startsWith("worker:") && r.pid !== null).map((r) => r.pid!)
  monitor.stop()
  const end = now()
  const withFaults: RequestRecord[] = requests.map((r) => ({
    ...r,
    faults: faults.filter((f) => r.startMs <= (f.healedMs ?? end) && r.endMs >= f.startMs).map((f) => f.n),
  }))
  return {
    options: { durationS: options.durationS, everyS: options.everyS, faults: kinds, components, seed: options.seed },
    seed: options.seed,
    tree: { owned: tree.owned, url: tree.url, dataDir: tree.dataDir, livenessBoundMs: tree.livenessBoundMs, notes },
    durationMs: end,
    requests: withFaults,
    faults,
    components: monitor.history(),
    down,
    runStarts,
    liveWorkerPids,
    left: null,
    statusFailures: monitor.failures.count,
    observations: Object.fromEntries(observations),
  }
}
