// Test hosts on one machine: a network namespace per host, joined by a bridge that lives in a switch namespace of
// its own, so the hosts' addresses and routes exist only inside namespaces this harness made and removes again.
import { type ChildProcess, execFile, execFileSync, spawn, type SpawnOptions } from "node:child_process"
import { readdirSync } from "node:fs"
import { Effect } from "effect"
import { stopGroup } from "../../actors/signals.ts"
import { groupGone, processGone, readStat } from "../../actors/procstat.ts"

export const HOSTS_DEFAULTS = {
  /** the hosts' /24, as its first three octets: it exists only inside the namespaces, so parallel runs may share it */
  subnet: "10.77.0",
  /** how long a spawned process group gets after SIGTERM before SIGKILL */
  stopTimeout: 2_000,
  /** how long `exec` lets a command run before it kills the command's group */
  execTimeout: 5_000,
  /** how long `restore` waits for the host's side of the link to have carrier again */
  carrierTimeout: 2_000,
} as const

/** every namespace of this harness starts so: `sgw-<creator pid>-<creator start time>-<seq>`, all base 36 */
export const NS_PREFIX = "sgw-"
const NS_NAME = /^sgw-([0-9a-z]+)-([0-9a-z]+)-[0-9a-z]+(?:-|$)/
/** a host name becomes the switch-side interface `v-<name>`: interface names have at most 15 characters */
const HOST_NAME = /^[a-z][a-z0-9]{0,12}$/
const NETNS_DIR = "/run/netns"
const POLL_MS = 20

export interface HostsOptions {
  readonly subnet?: string
  readonly stopTimeout?: number
  readonly execTimeout?: number
}

export interface Host {
  readonly name: string
  /** the host's network namespace, for `ip netns exec` / `ip -n` */
  readonly ns: string
  readonly address: string
}

export interface ExecResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** the command ran past its timeout and its group was killed */
  readonly timedOut: boolean
}

export interface Hosts {
  /** every namespace of this set starts with it */
  readonly prefix: string
  readonly switchNs: string
  readonly hosts: ReadonlyArray<Host>
  readonly host: (name: string) => Host
  /** runs `command` inside the host's namespace as the leader of a new process group (`ip netns exec` execs it) */
  readonly spawn: (name: string, command: string, args: ReadonlyArray<string>, options?: SpawnOptions) => ChildProcess
  readonly exec: (name: string, command: string, args: ReadonlyArray<string>, options?: { readonly timeout?: number }) => Promise<ExecResult>
  /** sets the switch's end of the host's cable down: the host keeps running, unreachable */
  readonly cut: (name: string) => Promise<void>
  readonly restore: (name: string) => Promise<void>
  /** stops every process spawned here, deletes every namespace made here and checks they are gone; idempotent */
  readonly destroy: () => Promise<void>
}

interface Tracked {
  readonly pid: number
  readonly exited: Promise<void>
}

interface State {
  readonly namespaces: ReadonlyArray<string>
  readonly tracked: Set<Tracked>
}

const run = (args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile("ip", [...args], (error, stdout, stderr) =>
      error === null ? resolve(stdout) : reject(new Error(`ip ${args.join(" ")} failed: ${stderr.trim() || error.message}`))))

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Namespaces on the machine (what `ip netns list` reads). */
const listNamespaces = (): ReadonlyArray<string> => {
  try {
    return readdirSync(NETNS_DIR)
  } catch {
    return [] // no namespace was ever made on this boot
  }
}

/** Pids of the processes inside namespace `ns`; none once it is gone. */
const pidsIn = (ns: string): ReadonlyArray<number> => {
  try {
    return execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n").filter((line) => line !== "").map(Number)
  } catch {
    return []
  }
}

const killQuietly = (target: number): void => {
  try {
    process.kill(target, "SIGKILL")
  } catch {
    // ESRCH: it is already gone, which is what we want
  }
}

/** SIGKILLs whatever still runs inside the namespaces (a process we did not spawn, or one an earlier run left) and waits. */
const emptyNamespaces = async (namespaces: ReadonlyArray<string>): Promise<void> => {
  const pids = namespaces.flatMap(pidsIn)
  pids.forEach(killQuietly)
  while (!pids.every(processGone)) await sleep(POLL_MS)
}

const deleteNamespaces = async (namespaces: ReadonlyArray<string>): Promise<void> => {
  await emptyNamespaces(namespaces)
  const present = new Set(listNamespaces())
  // Hosts first: deleting a host's namespace takes its veth pair with it, then the switch takes the bridge.
  for (const ns of [...namespaces].reverse()) if (present.has(ns)) await run(["netns", "del", ns])
  const left = listNamespaces().filter((ns) => namespaces.includes(ns))
  if (left.length > 0) throw new Error(`namespaces still present after deleting them: ${left.join(", ")}`)
}

/** The exit safety net: a test process that ends without `destroy` still removes what it made (synchronously). */
const live = new Set<State>()
let netInstalled = false
const destroySync = (state: State): void => {
  for (const t of state.tracked) killQuietly(-t.pid)
  for (const pid of state.namespaces.flatMap(pidsIn)) killQuietly(pid)
  for (const ns of [...state.namespaces].reverse()) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" })
    } catch {
      // already gone; whatever stays is for sweepLeftovers
    }
  }
}
const installSafetyNet = (): void => {
  if (netInstalled) return
  netInstalled = true
  process.on("exit", () => live.forEach(destroySync))
}

const creatorAlive = (pid: number, starttime: string): boolean => {
  const stat = readStat(pid)
  return stat !== undefined && stat.state !== "Z" && stat.starttime === starttime
}

/**
 * Removes namespaces of this harness whose creating process is gone (a test killed before its safety net ran),
 * with the processes still inside them; returns their names. Pid and start time name the creator, so a reused
 * pid does not keep a leftover alive. (A creator in another pid namespace would look dead: we test in one.)
 */
export const sweepLeftovers = async (): Promise<ReadonlyArray<string>> => {
  const orphans = listNamespaces().filter((ns) => {
    const match = NS_NAME.exec(ns)
    if (match === null) return false
    return !creatorAlive(parseInt(match[1] ?? "", 36), String(parseInt(match[2] ?? "", 36)))
  })
  // Host namespaces sort after their switch: deleteNamespaces removes in reverse, hosts first.
  const sorted = [...orphans].sort()
  if (sorted.length > 0) await deleteNamespaces(sorted)
  return sorted
}

let sequence = 0
const newPrefix = (): string => {
  const start = readStat(process.pid)?.starttime ?? "0"
  return `${NS_PREFIX}${process.pid.toString(36)}-${Number(start).toString(36)}-${(sequence++).toString(36)}`
}

const validate = (names: ReadonlyArray<string>, subnet: string): void => {
  if (names.length === 0 || names.length > 253) throw new Error(`makeHosts: names must hold 1 to 253 hosts, got ${names.length}`)
  for (const name of names) {
    if (!HOST_NAME.test(name)) throw new Error(`makeHosts: host name ${JSON.stringify(name)} must match ${HOST_NAME}`)
  }
  const twice = names.find((name, i) => names.indexOf(name) !== i)
  if (twice !== undefined) throw new Error(`makeHosts: host name ${JSON.stringify(twice)} is given twice`)
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new Error(`makeHosts: subnet ${JSON.stringify(subnet)} must be three octets, as "10.77.0"`)
}

/** Builds the switch and one host per name; on any failure it removes what it made before failing. */
export const makeHosts = async (names: ReadonlyArray<string>, options: HostsOptions = {}): Promise<Hosts> => {
  const subnet = options.subnet ?? HOSTS_DEFAULTS.subnet
  const stopTimeout = options.stopTimeout ?? HOSTS_DEFAULTS.stopTimeout
  const execTimeout = options.execTimeout ?? HOSTS_DEFAULTS.execTimeout
  validate(names, subnet)
  await sweepLeftovers()
  installSafetyNet()

  const prefix = newPrefix()
  const switchNs = prefix
  const hosts = names.map((name, i): Host => ({ name, ns: `${prefix}-${name}`, address: `${subnet}.${i + 1}` }))
  const state: State = { namespaces: [switchNs, ...hosts.map((h) => h.ns)], tracked: new Set() }
  live.add(state)

  let destroying: Promise<void> | undefined
  const destroy = (): Promise<void> => {
    destroying ??= (async () => {
      const tracked = [...state.tracked]
      await Promise.all(tracked.map((t) =>
        Effect.runPromise(stopGroup({
          pgid: t.pid,
          mainExited: Effect.promise(() => t.exited),
          signal: "SIGTERM",
          shutdown: stopTimeout,
          onEscalate: () => Effect.void,
        }))))
      await deleteNamespaces(state.namespaces)
      const alive = tracked.filter((t) => !groupGone(t.pid))
      if (alive.length > 0) throw new Error(`process groups still alive after destroy: ${alive.map((t) => t.pid).join(", ")}`)
      live.delete(state)
    })()
    return destroying
  }

  try {
    // Every link is made inside the switch namespace with its peer sent straight to the host's: nothing ever
    // appears in the root namespace, not even for a moment, and no host gets a default route.
    await run(["netns", "add", switchNs])
    await run(["-n", switchNs, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"])
    await run(["-n", switchNs, "link", "set", "br0", "up"])
    for (const h of hosts) {
      await run(["netns", "add", h.ns])
      await run(["-n", switchNs, "link", "add", `v-${h.name}`, "type", "veth", "peer", "name", "eth0", "netns", h.ns])
      await run(["-n", switchNs, "link", "set", `v-${h.name}`, "master", "br0", "up"])
      await run(["-n", h.ns, "addr", "add", `${h.address}/24`, "dev", "eth0"])
      await run(["-n", h.ns, "link", "set", "eth0", "up"])
      await run(["-n", h.ns, "link", "set", "lo", "up"])
    }
  } catch (error) {
    await destroy()
    throw error
  }

  const host = (name: string): Host => {
    const found = hosts.find((h) => h.name === name)
    if (found === undefined) throw new Error(`no host ${JSON.stringify(name)}: the hosts are ${names.join(", ")}`)
    return found
  }

  const spawnIn = (name: string, command: string, args: ReadonlyArray<string>, spawnOptions: SpawnOptions = {}): ChildProcess => {
    if (destroying !== undefined) throw new Error(`cannot spawn ${command} on ${name}: the hosts were destroyed`)
    const { ns } = host(name)
    // detached: the process leads its own group, which destroy signals; `ip netns exec` execs, so the pid is the program's
    const child = spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: "pipe", ...spawnOptions, detached: true })
    const pid = child.pid
    if (pid === undefined) return child // it could not start: the 'error' event says why, nothing to track
    const tracked: Tracked = {
      pid,
      exited: new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve()
        else child.once("exit", () => resolve())
      }),
    }
    state.tracked.add(tracked)
    // forget a group once it is empty, so destroy never signals a group id the kernel has handed out again
    void tracked.exited.then(() => groupGone(pid) && state.tracked.delete(tracked))
    return child
  }

  const exec = (name: string, command: string, args: ReadonlyArray<string>, execOptions: { readonly timeout?: number } = {}): Promise<ExecResult> =>
    new Promise((resolve, reject) => {
      const child = spawnIn(name, command, args, { stdio: ["ignore", "pipe", "pipe"] })
      let stdout = ""
      let stderr = ""
      let timedOut = false
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      const timer = setTimeout(() => {
        timedOut = true
        if (child.pid !== undefined) killQuietly(-child.pid)
      }, execOptions.timeout ?? execTimeout)
      child.once("error", (error) => {
        clearTimeout(timer)
        reject(new Error(`cannot run ${command} on ${name}: ${error.message}`, { cause: error }))
      })
      child.once("close", (code, signal) => {
        clearTimeout(timer)
        resolve({ code, signal, stdout, stderr, timedOut })
      })
    })

  const setLink = (name: string, updown: "up" | "down"): Promise<string> =>
    run(["-n", switchNs, "link", "set", `v-${host(name).name}`, updown])

  const restore = async (name: string): Promise<void> => {
    await setLink(name, "up")
    const deadline = Date.now() + HOSTS_DEFAULTS.carrierTimeout
    while (!(await run(["-n", host(name).ns, "-o", "link", "show", "eth0"])).includes("LOWER_UP")) {
      if (Date.now() > deadline) throw new Error(`${name}'s eth0 has no carrier ${HOSTS_DEFAULTS.carrierTimeout} ms after restore`)
      await sleep(POLL_MS)
    }
  }

  return {
    prefix,
    switchNs,
    hosts,
    host,
    spawn: spawnIn,
    exec,
    cut: async (name) => void (await setLink(name, "down")),
    restore,
    destroy,
  }
}
