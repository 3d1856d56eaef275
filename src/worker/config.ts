// Every tunable of the worker in one place, with what it limits and why that default; parsed from the
// command line (`--data DIR --port N [--id ID] [--host H] [--db URL] [--config FILE.json | --config-json JSON]`), validated with zod.
import { readFileSync } from "node:fs"
import { hostname } from "node:os"
import { parseArgs } from "node:util"
import { Context } from "effect"
import { z } from "zod"
import { KernelKind, SessionLimits } from "../protocol/worker.ts"

export const WORKER_DEFAULTS = {
  host: "127.0.0.1",
  kernels: ["python", "sage"] as Array<KernelKind>,
  /** pre-forked idle kernels kept per kind: a new session waits for no fork; each costs memory (see bench) */
  pool: 2,
  /**
   * a fresh uid per live session comes from here (root only); never shared by two living sessions. Workers on
   * one host need disjoint ranges (a worker kills what its range left at start): unless set, worker:N gets
   * UID_BLOCK uids from UID_BASE + (N-1)*UID_BLOCK.
   */
  uidRange: undefined as { first: number; last: number } | undefined,
  /** the dynamic session supervisor's maxChildren, for the worker and for one user */
  maxSessions: 200,
  maxSessionsPerUser: 10,
  limits: {
    /** s: a session's whole life */
    wall: 4 * 3600,
    /** s without a request or output; a computing kernel is never idle */
    idle: 30 * 60,
    /** s one execution may run */
    exec: 10 * 60,
    /** MiB of address space user code may add on top of the forked kernel */
    memory: 2048,
    /** CPU seconds per process (SIGXCPU, then SIGKILL a second later) */
    cpu: 3600,
  },
  /**
   * MiB and inodes of a contained session's private filesystems (root): its home, and each of /tmp, /var/tmp and
   * /dev/shm. They are tmpfs, so what a session writes there counts against its memory limit too.
   */
  disk: { home: 512, tmp: 256, inodes: 65_536 },
  /** open files, processes (per session uid: stops fork bombs), bytes per file written */
  nofile: 1024,
  nproc: 64,
  fsize: 1024 * 1024 * 1024,
  /** "isolated": kernels run in their own network namespace (root only), nothing on 127.0.0.1 is reachable */
  network: "isolated" as "isolated" | "host",
  /** ms between escalation steps when ending a session: interrupt, SIGQUIT, SIGKILL */
  killGrace: 500,
  /** output messages (and bytes) each session keeps for a backend resuming from a sequence number */
  keepMessages: 2000,
  keepBytes: 8 * 1024 * 1024,
  /** ms an ended session's output stays resumable */
  keepEnded: 60_000,
  /** ms a forkserver may take to import and warm (Sage: ~1-3 s, more on a loaded machine) */
  forkserverReadyTimeout: 120_000,
}

/** The worker's own limits: every field of a session's limits, required. */
const Limits = SessionLimits.required()

/** the first session uid of worker:1 when the config names none (its `sessions.uidBase`) */
export const UID_BASE = 200_000
/** session uids per worker */
export const UID_BLOCK = 10_000

/** worker:N's session uids: the N-th block of UID_BLOCK from `base` */
export const defaultUidRange = (id: string, base = UID_BASE): { first: number; last: number } => {
  const n = Number(/(\d+)$/.exec(id)?.[1] ?? 1)
  const first = base + (Math.max(n, 1) - 1) * UID_BLOCK
  return { first, last: first + UID_BLOCK - 1 }
}

export const WorkerConfig = z
  .object({
    id: z.string().min(1),
    dataDir: z.string().min(1),
    port: z.number().int().min(0).max(65535),
    host: z.string(),
    kernels: z.array(KernelKind).min(1),
    pool: z.number().int().min(0).max(64),
    uidRange: z.object({ first: z.number().int().min(1000), last: z.number().int() }).refine((r) => r.last >= r.first, "uidRange.last must be >= uidRange.first"),
    maxSessions: z.number().int().positive(),
    maxSessionsPerUser: z.number().int().positive(),
    limits: Limits,
    disk: z.object({ home: z.number().int().min(1), tmp: z.number().int().min(1), inodes: z.number().int().min(64) }).strict(),
    nofile: z.number().int().min(16),
    nproc: z.number().int().min(4),
    fsize: z.number().int().positive(),
    network: z.enum(["isolated", "host"]),
    killGrace: z.number().int().positive(),
    keepMessages: z.number().int().positive(),
    keepBytes: z.number().int().positive(),
    keepEnded: z.number().int().min(0),
    forkserverReadyTimeout: z.number().int().positive(),
    tls: z.object({ cert: z.string(), key: z.string() }).optional(),
    python: z.string(),
    /** the cluster-wide id it registers and says hello with (`worker:1@<host>` on a joined host); default: id */
    name: z.string().min(1).optional(),
    /** the machine's name in the registry (the config's `host`) */
    machine: z.string().min(1),
    /** the registry's PostgreSQL (password in PGPASSWORD): the worker registers itself there and beats; none: it does not */
    db: z.string().optional(),
  })
  .strict()
export type WorkerConfig = z.infer<typeof WorkerConfig>
export type ResolvedLimits = WorkerConfig["limits"]

/** The worker's validated config, for every service of the worker. */
export class WorkerSettings extends Context.Service<WorkerSettings, WorkerConfig>()("sagews/worker/WorkerSettings") {}

/** Builds a config from overrides on top of the defaults; a bad value names the field. */
export const makeWorkerConfig = (overrides: Record<string, unknown>): WorkerConfig => {
  const merged = {
    ...WORKER_DEFAULTS,
    python: "/usr/bin/python3",
    machine: hostname(),
    ...overrides,
    limits: { ...WORKER_DEFAULTS.limits, ...(overrides["limits"] as object | undefined) },
    disk: { ...WORKER_DEFAULTS.disk, ...(overrides["disk"] as object | undefined) },
    uidRange: overrides["uidRange"] ?? defaultUidRange(typeof overrides["id"] === "string" ? overrides["id"] : "worker:1"),
  }
  const parsed = WorkerConfig.safeParse(merged)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const path = issue?.path.join(".") ?? "?"
    throw new Error(`worker config: ${path}: ${issue?.message ?? "invalid"} (got ${JSON.stringify(path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], merged))})`)
  }
  return parsed.data
}

export const parseWorkerArgs = (argv: ReadonlyArray<string>): WorkerConfig => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      data: { type: "string" },
      port: { type: "string" },
      id: { type: "string" },
      host: { type: "string" },
      db: { type: "string" },
      config: { type: "string" },
      "config-json": { type: "string" },
    },
    strict: true,
  })
  const json = values["config-json"] ?? (values.config !== undefined ? readFileSync(values.config, "utf8") : "{}")
  const file = z.record(z.string(), z.unknown()).parse(JSON.parse(json))
  if (values.data === undefined) throw new Error("worker: --data DIR is required")
  if (values.port === undefined || !/^\d+$/.test(values.port)) throw new Error(`worker: --port N is required (got ${JSON.stringify(values.port)})`)
  return makeWorkerConfig({
    ...file,
    id: values.id ?? "worker:1",
    dataDir: values.data,
    port: Number(values.port),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values.db !== undefined ? { db: values.db } : {}),
  })
}

/** A backend's requested limits, capped by the worker's. */
export const capLimits = (worker: ResolvedLimits, asked: Partial<ResolvedLimits> | undefined): ResolvedLimits => ({
  wall: Math.min(worker.wall, asked?.wall ?? Infinity),
  idle: Math.min(worker.idle, asked?.idle ?? Infinity),
  exec: Math.min(worker.exec, asked?.exec ?? Infinity),
  memory: Math.min(worker.memory, asked?.memory ?? Infinity),
  cpu: Math.min(worker.cpu, asked?.cpu ?? Infinity),
})
