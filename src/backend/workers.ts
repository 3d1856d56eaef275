// The backend's connections to the workers: one authenticated WorkerClient per worker address, reconnected with
// capped backoff; placement picks the least loaded connected worker that has the kernel.
import type { WorkerFrame } from "../protocol/worker.ts"
import type { SessionKind } from "../protocol/browser.ts"
import { WorkerClient } from "../worker/client.ts"
import type { JsonLogger } from "../log/line.ts"

export interface WorkerEvents {
  /** every validated frame from worker `workerId` */
  onFrame(workerId: string, frame: WorkerFrame): void
  onConnected(workerId: string): void
  onLost(workerId: string, why: string): void
}

interface Slot {
  readonly address: string
  client: WorkerClient | undefined
  workerId: string | undefined
  delay: number
  timer: NodeJS.Timeout | undefined
}

/** how long a session placement may take to show in the registry (open, then the registry write) */
const REGISTRY_LAG_MS = 5_000

export class WorkerPool {
  private readonly slots: Array<Slot>
  private stopped = false
  /** sessions this backend placed and routes, per worker id */
  private readonly localSessions = new Map<string, number>()
  /** this backend's session placements and ends, newest last, until the registry surely shows them */
  private recent: Array<{ readonly worker: string; readonly delta: number; readonly at: number }> = []
  /** stateless runs this backend has running, per worker id (short-lived: never in the registry) */
  private readonly localRuns = new Map<string, number>()
  /** live sessions per worker id as the registry counts them (every backend's), refreshed by the caller */
  private sharedLoad = new Map<string, number>()

  private readonly secret: Buffer
  private readonly options: { connectTimeout: number; reconnect: { initial: number; max: number } }
  private readonly events: WorkerEvents
  private readonly log: JsonLogger

  constructor(addresses: ReadonlyArray<string>, secret: Buffer, options: WorkerPool["options"], events: WorkerEvents, log: JsonLogger) {
    this.secret = secret
    this.options = options
    this.events = events
    this.log = log
    this.slots = addresses.map((address) => ({ address, client: undefined, workerId: undefined, delay: options.reconnect.initial, timer: undefined }))
  }

  start(): void {
    for (const slot of this.slots) void this.connect(slot)
  }

  private async connect(slot: Slot): Promise<void> {
    if (this.stopped) return
    slot.timer = undefined
    const colon = slot.address.lastIndexOf(":")
    try {
      const client = await WorkerClient.connect({
        host: slot.address.slice(0, colon),
        port: Number(slot.address.slice(colon + 1)),
        secret: this.secret,
        timeout: this.options.connectTimeout,
      })
      if (this.stopped) return client.close()
      slot.client = client
      slot.workerId = client.worker
      slot.delay = this.options.reconnect.initial
      this.log.info(`connected to ${client.worker} at ${slot.address} (isolation ${client.isolation}, kernels ${client.kernels.join(",")})`)
      client.onFrame((frame) => this.events.onFrame(client.worker, frame))
      this.events.onConnected(client.worker)
      void client.closed.then((why) => {
        if (slot.client !== client) return
        slot.client = undefined
        if (!this.stopped) this.log.warn(`lost ${client.worker} at ${slot.address}: ${why}`)
        this.events.onLost(client.worker, why)
        this.retry(slot)
      })
    } catch (error) {
      if (slot.delay >= this.options.reconnect.max) this.log.warn(`cannot reach worker ${slot.address}: ${error instanceof Error ? error.message : String(error)}`)
      this.retry(slot)
    }
  }

  private retry(slot: Slot): void {
    if (this.stopped || slot.timer !== undefined) return
    slot.timer = setTimeout(() => void this.connect(slot), slot.delay)
    slot.delay = Math.min(slot.delay * 2, this.options.reconnect.max)
  }

  client(workerId: string): WorkerClient | undefined {
    return this.slots.find((s) => s.workerId === workerId && s.client !== undefined)?.client
  }

  connected(): Array<WorkerClient> {
    return this.slots.flatMap((s) => (s.client !== undefined ? [s.client] : []))
  }

  knows(workerId: string): boolean {
    return this.slots.some((s) => s.workerId === workerId)
  }

  addressOf(workerId: string): string | undefined {
    return this.slots.find((s) => s.workerId === workerId)?.address
  }

  /**
   * A registry read that began at `queriedAt`. A placement's registry row is written only once the worker has
   * opened the session, so a read that began a little after a placement may still miss it: changes younger
   * than REGISTRY_LAG_MS before the read stay counted (at worst a session counts twice for a few seconds,
   * which steers new sessions away from a busy worker; forgetting it would pile them onto one).
   */
  setSharedLoad(load: Map<string, number>, queriedAt: number): void {
    this.sharedLoad = load
    this.recent = this.recent.filter((d) => d.at >= queriedAt - REGISTRY_LAG_MS)
  }

  private sinceRefresh(worker: string): number {
    return this.recent.reduce((n, d) => (d.worker === worker ? n + d.delta : n), 0)
  }

  /** The least loaded connected worker that runs `kind` (registry count, else this backend's own count). */
  pick(kind: SessionKind): WorkerClient | undefined {
    let best: WorkerClient | undefined
    let bestLoad = Infinity
    for (const client of this.connected()) {
      if (kind !== "terminal" && !client.kernels.includes(kind)) continue
      // The registry counts every backend's sessions (ours included) as of its last read; add our changes since.
      const sessions = Math.max(0, (this.sharedLoad.get(client.worker) ?? 0) + this.sinceRefresh(client.worker))
      const load = sessions + (this.localRuns.get(client.worker) ?? 0)
      // equal loads: a random pick, so backends whose counts are equally stale do not all pile onto one worker
      if (load < bestLoad || (load === bestLoad && Math.random() < 0.5)) {
        best = client
        bestLoad = load
      }
    }
    return best
  }

  /** +1 when this backend places a session or a run on `workerId`, -1 when it ends. */
  addLoad(workerId: string, delta: number, kind: "session" | "run"): void {
    const counts = kind === "session" ? this.localSessions : this.localRuns
    counts.set(workerId, Math.max(0, (counts.get(workerId) ?? 0) + delta))
    if (kind === "session") this.recent.push({ worker: workerId, delta, at: Date.now() })
  }

  /** sessions and runs per connected worker: this backend's own, and all live sessions per the registry */
  load(): Record<string, { local: number; runs: number; shared: number }> {
    return Object.fromEntries(this.connected().map((c) => [c.worker, {
      local: this.localSessions.get(c.worker) ?? 0,
      runs: this.localRuns.get(c.worker) ?? 0,
      shared: this.sharedLoad.get(c.worker) ?? 0,
    }]))
  }

  kernels(): Array<"sage" | "python"> {
    return [...new Set(this.connected().flatMap((c) => c.kernels))]
  }

  stop(): void {
    this.stopped = true
    for (const slot of this.slots) {
      if (slot.timer !== undefined) clearTimeout(slot.timer)
      slot.client?.close()
    }
  }
}
