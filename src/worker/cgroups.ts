// Session cgroups (root only): one per session, made ahead with each pooled kernel, under this worker's own group
// in every hierarchy it uses. Memory (shared memory and tmpfs pages included) and tasks (threads included) are
// capped per session, CPU is weighted per user, an OOM kill is read back as the session's end reason, and a
// session is over only once its cgroup is empty. cgroup v1 (separate hierarchies) and v2 (one unified) both work.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, type Schedule } from "effect"

/** v1 cpu.shares and v2 cpu.weight of a user's sessions together; each session gets its share of it */
const CPU_SHARES = 1024
const CPU_WEIGHT = 100

type Controller = "memory" | "pids" | "cpu" | "cpuacct" | "freezer"
const CONTROLLERS: ReadonlyArray<Controller> = ["memory", "pids", "cpu", "cpuacct", "freezer"]
/**
 * A host without these still runs sessions: unweighted, with RLIMIT_CPU as the only CPU limit, and killed
 * without being frozen first (init's death still takes the whole pid namespace).
 */
const OPTIONAL: ReadonlySet<Controller> = new Set(["cpu", "cpuacct", "freezer"])

export interface CgroupLimits {
  readonly memoryBytes: number
  /** tasks: processes and threads */
  readonly pids: number
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return undefined
  }
}

const mountinfo = (): Array<{ point: string; fstype: string; options: Array<string> }> =>
  (readText("/proc/self/mountinfo") ?? "").split("\n").filter(Boolean).map((line) => {
    const [left, right = ""] = line.split(" - ")
    const point = left?.split(" ")[4] ?? ""
    const [fstype = "", , superOptions = ""] = right.split(" ")
    return { point, fstype, options: superOptions.split(",") }
  })

/** Where each controller's hierarchy is mounted and where this process sits in it. */
const locate = (): { version: 1 | 2; roots: ReadonlyMap<Controller, string> } | undefined => {
  const own = new Map<string, string>()
  for (const line of (readText("/proc/self/cgroup") ?? "").split("\n").filter(Boolean)) {
    const [, controllers = "", path = "/"] = line.split(":")
    for (const c of controllers.split(",")) own.set(c, path)
  }
  const mounts = mountinfo()
  const v1 = new Map<Controller, string>()
  for (const c of CONTROLLERS) {
    const m = mounts.find((x) => x.fstype === "cgroup" && x.options.includes(c))
    if (m !== undefined) v1.set(c, join(m.point, own.get(c) ?? "/"))
  }
  if (v1.has("memory") && v1.has("pids")) return { version: 1, roots: v1 }
  const unified = mounts.find((x) => x.fstype === "cgroup2")
  if (unified === undefined) return undefined
  const base = join(unified.point, own.get("") ?? "/")
  const available = (readText(join(unified.point, "cgroup.controllers")) ?? "").split(/\s+/)
  if (!available.includes("memory") || !available.includes("pids")) return undefined
  return { version: 2, roots: new Map(CONTROLLERS.map((c) => [c, base])) }
}

const pidAlive = (pid: number): boolean => existsSync(`/proc/${pid}`)

export class SessionCgroup {
  readonly name: string
  private readonly version: 1 | 2
  /** one directory per hierarchy (v2: one in all) */
  private readonly dirs: ReadonlyMap<Controller, string>

  constructor(name: string, version: 1 | 2, dirs: ReadonlyMap<Controller, string>) {
    this.name = name
    this.version = version
    this.dirs = dirs
  }

  private get unique(): Array<string> {
    return [...new Set(this.dirs.values())]
  }

  /** the files a process writes its pid to, to join this cgroup in every hierarchy */
  get procsFiles(): Array<string> {
    return this.unique.map((dir) => join(dir, "cgroup.procs"))
  }

  setLimits(limits: CgroupLimits): void {
    const memory = this.dirs.get("memory")!
    const pids = this.dirs.get("pids")!
    if (this.version === 1) {
      writeFileSync(join(memory, "memory.limit_in_bytes"), String(limits.memoryBytes))
      // no swap either: memory+swap is capped at the same number (absent when the kernel has no swap accounting)
      if (existsSync(join(memory, "memory.memsw.limit_in_bytes"))) writeFileSync(join(memory, "memory.memsw.limit_in_bytes"), String(limits.memoryBytes))
    } else {
      writeFileSync(join(memory, "memory.max"), String(limits.memoryBytes))
      if (existsSync(join(memory, "memory.swap.max"))) writeFileSync(join(memory, "memory.swap.max"), "0")
    }
    writeFileSync(join(pids, "pids.max"), String(limits.pids))
  }

  /** This session's part of its user's CPU: one of `of` sessions of the same user. */
  setCpuShare(of: number): void {
    const cpu = this.dirs.get("cpu")
    if (cpu === undefined) return
    const n = Math.max(1, of)
    try {
      if (this.version === 1) writeFileSync(join(cpu, "cpu.shares"), String(Math.max(2, Math.round(CPU_SHARES / n))))
      else writeFileSync(join(cpu, "cpu.weight"), String(Math.max(1, Math.round(CPU_WEIGHT / n))))
    } catch {
      // a host without the cpu controller still runs the session, unweighted
    }
  }

  /** Every process in the session, as the host numbers them. */
  procs(): Array<number> {
    const all = new Set<number>()
    for (const dir of this.unique) {
      for (const line of (readText(join(dir, "cgroup.procs")) ?? "").split("\n")) if (line !== "") all.add(Number(line))
    }
    return [...all]
  }

  empty(): boolean {
    return this.procs().length === 0
  }

  /** How many times the kernel's OOM killer has killed a process of this session. */
  oomKills(): number {
    const memory = this.dirs.get("memory")!
    const text = readText(join(memory, this.version === 1 ? "memory.oom_control" : "memory.events")) ?? ""
    return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0)
  }

  /** CPU seconds used by every process that was ever in it (v1 cpuacct, v2 cpu.stat); undefined if not accounted. */
  cpuSeconds(): number | undefined {
    if (this.version === 1) {
      const dir = this.dirs.get("cpuacct")
      const ns = dir === undefined ? undefined : readText(join(dir, "cpuacct.usage"))
      return ns === undefined ? undefined : Number(ns) / 1e9
    }
    const stat = readText(join(this.dirs.get("memory")!, "cpu.stat"))
    const usec = stat === undefined ? undefined : /^usage_usec (\d+)/m.exec(stat)?.[1]
    return usec === undefined ? undefined : Number(usec) / 1e6
  }

  /** SIGKILLs every process in it (its pid namespace's init among them: the kernel then ends the rest). */
  kill(): void {
    if (this.version === 2 && existsSync(join(this.dirs.get("memory")!, "cgroup.kill"))) {
      try {
        writeFileSync(join(this.dirs.get("memory")!, "cgroup.kill"), "1")
        return
      } catch {
        // fall through to the signals
      }
    }
    // v1: frozen first, so that nothing in it can fork while it is being killed; the kills land on the thaw.
    const freezer = this.dirs.get("freezer")
    const freeze = (state: "FROZEN" | "THAWED"): void => {
      try {
        if (freezer !== undefined && this.version === 1) writeFileSync(join(freezer, "freezer.state"), state)
      } catch {
        // a cgroup being removed, or no freezer: the kill works all the same
      }
    }
    freeze("FROZEN")
    for (const pid of this.procs()) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // gone already
      }
    }
    freeze("THAWED")
  }

  /** Removes the cgroup; false while a process is still in it. */
  remove(): boolean {
    for (const dir of this.unique) {
      try {
        rmdirSync(dir)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") return false
      }
    }
    return true
  }
}

/** Kills what is left in `cgroup` on each round of `rounds` until it can be removed; false if it never could. */
export const killAndRemove = (cgroup: SessionCgroup, rounds: Schedule.Schedule<unknown>): Effect.Effect<boolean> =>
  Effect.repeat(
    Effect.sync(() => {
      if (cgroup.remove()) return true
      cgroup.kill()
      return false
    }),
    { schedule: rounds, until: (removed) => removed },
  )

/** This worker's subtree of cgroups: `sagews.<worker id>.<pid>` under its own group in each hierarchy. */
export class WorkerCgroups {
  private readonly version: 1 | 2
  private readonly parents: ReadonlyMap<Controller, string>
  private counter = 0

  private constructor(version: 1 | 2, parents: ReadonlyMap<Controller, string>) {
    this.version = version
    this.parents = parents
  }

  /** undefined when this host gives us no writable memory and pids controllers (not root, or none mounted). */
  static make(workerId: string): WorkerCgroups | undefined {
    if (process.getuid?.() !== 0) return undefined
    const found = locate()
    if (found === undefined) return undefined
    const prefix = `sagews.${workerId.replace(/[^\w-]/g, "_")}.`
    const parents = new Map<Controller, string>()
    for (const [controller, root] of found.roots) {
      removeStale(root, prefix)
      const dir = join(root, `${prefix}${process.pid}`)
      try {
        mkdirSync(dir, { recursive: true })
      } catch {
        if (OPTIONAL.has(controller)) continue
        return undefined
      }
      parents.set(controller, dir)
    }
    if (found.version === 2) {
      const dir = parents.get("memory")!
      const enable = (path: string): void => writeFileSync(join(path, "cgroup.subtree_control"), "+memory +pids +cpu")
      try {
        enable(join(dir, ".."))
        enable(dir)
      } catch {
        return undefined
      }
    }
    return new WorkerCgroups(found.version, parents)
  }

  /** A fresh, empty, unlimited cgroup; its limits are set when a session takes it. */
  create(): SessionCgroup {
    const name = `k${++this.counter}`
    const dirs = new Map<Controller, string>()
    for (const [controller, parent] of this.parents) {
      const dir = join(parent, name)
      mkdirSync(dir, { recursive: true })
      dirs.set(controller, dir)
    }
    return new SessionCgroup(name, this.version, dirs)
  }

  /** Kills what is left in every session cgroup and removes them all, and the worker's own subtree. */
  removeAll(): void {
    for (const parent of new Set(this.parents.values())) removeTree(parent)
  }
}

const removeTree = (dir: string): void => {
  let children: Array<string> = []
  try {
    children = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name))
  } catch {
    return
  }
  for (const child of children) removeTree(child)
  for (let attempt = 0; attempt < 50; attempt++) {
    for (const line of (readText(join(dir, "cgroup.procs")) ?? "").split("\n")) {
      if (line === "") continue
      try {
        process.kill(Number(line), "SIGKILL")
      } catch {
        // gone
      }
    }
    try {
      rmdirSync(dir)
      return
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
    }
  }
}

/** Subtrees of an earlier life of this worker (its pid is gone): their sessions died with it; remove them. */
const removeStale = (root: string, prefix: string): void => {
  let names: Array<string> = []
  try {
    names = readdirSync(root).filter((n) => n.startsWith(prefix))
  } catch {
    return
  }
  for (const name of names) {
    const pid = Number(name.slice(prefix.length))
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) continue
    removeTree(join(root, name))
  }
}
