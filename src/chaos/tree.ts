// The tree under test: one the harness owns (free ports, its data dir on a tmpfs it mounts, started and stopped
// through the real CLI) or one already running (its data dir, config and control socket). Both answer status.
import { execFile, spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { livingProcesses } from "../../actors/procstat.ts"
import { callControl } from "../cli/control.ts"
import type { ComponentRow } from "../cli/status.ts"
import { frontUrl, loadConfig } from "../config/load.ts"
import { dataPaths, defaultDataDir } from "../config/paths.ts"
import { freePorts } from "./ports.ts"
import type { ComponentSample } from "./types.ts"

export const SAGEWS = resolve(import.meta.dirname, "../cli/sagews")
/** The tmpfs an owned tree's data dir lives on: room for PostgreSQL, the logs of a 10-minute run, and a fill. */
const TMPFS_SIZE = "768m"
/** How long an owned tree gets to be running: a first start runs initdb and warms Sage's forkserver. */
const START_TIMEOUT_MS = 180_000
const STOP_TIMEOUT_MS = 90_000

export interface Tree {
  readonly owned: boolean
  readonly dataDir: string
  /** the front door (haproxy) */
  readonly url: string
  /** the longest a stopped process stays unnoticed: failures × (interval + timeout) of the liveness probe */
  readonly livenessBoundMs: number
  /** true when the data dir is a filesystem of its own that the harness may fill (the owned tmpfs) */
  readonly fillable: boolean
  readonly notes: ReadonlyArray<string>
  status(): Promise<ComponentSample[]>
  /** `sagews restart ID`, through the control socket as the CLI sends it */
  restart(id: string): Promise<void>
  /** owned: `sagews stop`, then what is left is named, killed and the tmpfs unmounted; external: nothing */
  stop(): Promise<{ readonly left: ReadonlyArray<string> }>
}

const statusOf = (control: string) => async (): Promise<ComponentSample[]> => {
  const reply = await callControl(control, { cmd: "status" }, 5_000)
  if (!reply.ok) throw new Error(reply.error)
  return (reply.components as ComponentRow[]).map((r) => ({ id: r.id, type: r.type, state: r.state, pid: r.pid, restarts: r.restarts, lastExit: r.lastExit }))
}

const restartOf = (control: string) => async (id: string): Promise<void> => {
  const reply = await callControl(control, { cmd: "restart", id }, 60_000)
  if (!reply.ok) throw new Error(`sagews restart ${id}: ${reply.error}`)
}

const boundOf = (liveness: { readonly intervalMs: number; readonly timeoutMs: number; readonly failures: number }): number =>
  liveness.failures * (liveness.intervalMs + liveness.timeoutMs)

/** The running tree of `dataDir` (default ./data or SAGEWS_DATA), with its config file. */
export const externalTree = async (options: { readonly data: string | undefined; readonly config: string | undefined }): Promise<Tree> => {
  const dataDir = resolve(options.data ?? defaultDataDir())
  const config = loadConfig({ file: options.config ?? process.env.SAGEWS_CONFIG })
  const paths = dataPaths(dataDir)
  const status = statusOf(paths.control)
  await status() // NotRunning, with the CLI's message, when nothing answers
  return {
    owned: false,
    dataDir,
    url: frontUrl(config).replace(/\/$/, ""),
    livenessBoundMs: boundOf(config.liveness),
    fillable: false,
    notes: [],
    status,
    restart: restartOf(paths.control),
    stop: async () => ({ left: [] }),
  }
}

const run = (cmd: string, args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv, timeout = 60_000): Promise<{ code: number; out: string }> =>
  new Promise((ok) =>
    execFile(cmd, [...args], { env: env ?? process.env, timeout }, (error, stdout, stderr) =>
      ok({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, out: `${stdout}${stderr}` })),
  )

/** Every living process of the tree: its children carry SAGEWS_DATA=<dir>, external programs name the dir. */
export const processesOf = (dataDir: string): Array<{ readonly pid: number; readonly cmdline: string }> =>
  livingProcesses((p) => p.cmdline.includes(dataDir) || p.environ().includes(`SAGEWS_DATA=${dataDir}`))

/** A tree of its own: free ports, default supervision and liveness, the data dir a tmpfs mounted for this run. */
export const ownTree = async (log: (line: string) => void): Promise<Tree> => {
  const dataDir = mkdtempSync(join(tmpdir(), "sagews-chaos-"))
  const notes: string[] = []
  const mounted = (await run("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_SIZE},mode=0711`, "sagews-chaos", dataDir])).code === 0
  if (!mounted) notes.push(`could not mount a tmpfs on ${dataDir} (not root?): the data dir is a plain directory and disk-full is left out`)
  const ports = { front: await freePorts(1), postgres: await freePorts(1), nginx: await freePorts(1), backends: await freePorts(2), workers: await freePorts(1) }
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SAGEWS_")))
  Object.assign(env, {
    SAGEWS_DATA: dataDir,
    SAGEWS_PORT: String(ports.front),
    SAGEWS_POSTGRES_PORT: String(ports.postgres),
    SAGEWS_POSTGRES_FAST_INIT: "true",
    SAGEWS_NGINX_PORT: String(ports.nginx),
    SAGEWS_BACKENDS_COUNT: "2",
    SAGEWS_BACKENDS_BASE_PORT: String(ports.backends),
    SAGEWS_WORKERS_COUNT: "1",
    SAGEWS_WORKERS_BASE_PORT: String(ports.workers),
    // a session uid range of its own (workers claim theirs host-wide), unique to its front port, as the tests' stacks
    SAGEWS_SESSIONS_UID_BASE: String(10_000_000 + ports.front * 20_000),
  })
  const config = loadConfig({ env })
  const paths = dataPaths(dataDir)
  const status = statusOf(paths.control)
  let root: ChildProcess | undefined
  let rootOutput = ""
  let stopped = false

  const stop = async (): Promise<{ left: string[] }> => {
    if (stopped) return { left: [] }
    stopped = true
    const said = await run(SAGEWS, ["stop"], env, STOP_TIMEOUT_MS)
    if (said.code !== 0 && said.code !== 1) log(`chaos: sagews stop exited ${said.code}: ${said.out.trim()}`)
    if (root && root.exitCode === null && root.signalCode === null) {
      await Promise.race([new Promise((ok) => root!.once("exit", ok)), new Promise((ok) => setTimeout(ok, 10_000))])
    }
    const left = processesOf(dataDir)
    for (const p of left) {
      for (const signal of ["SIGCONT", "SIGKILL"] as const) {
        try {
          process.kill(p.pid, signal)
        } catch {
          // gone already
        }
      }
    }
    if (root && root.exitCode === null && root.signalCode === null) root.kill("SIGKILL")
    if (mounted) {
      let unmounted = false
      for (let i = 0; i < 20 && !unmounted; i++) {
        unmounted = (await run("umount", [dataDir])).code === 0
        if (!unmounted) await new Promise((ok) => setTimeout(ok, 500))
      }
      if (!unmounted) {
        log(`chaos: ${dataDir} is busy; detaching it (umount -l)`)
        await run("umount", ["-l", dataDir])
      }
    }
    try {
      rmdirSync(dataDir)
    } catch (e) {
      log(`chaos: could not remove ${dataDir}: ${(e as Error).message}`)
    }
    return { left: left.map((p) => `${p.pid} ${p.cmdline.slice(0, 160)}`) }
  }

  try {
    log(`chaos: starting a tree in ${dataDir}${mounted ? ` (tmpfs, ${TMPFS_SIZE})` : ""}, front door ${frontUrl(config)}`)
    root = spawn(SAGEWS, ["start"], { env, stdio: ["ignore", "pipe", "pipe"] })
    const keep = (d: Buffer) => (rootOutput = (rootOutput + d.toString()).slice(-20_000))
    root.stdout?.on("data", keep)
    root.stderr?.on("data", keep)
    const exited = new Promise<never>((_, reject) => root!.once("exit", (code, signal) => reject(new Error(`sagews start exited (${code ?? signal}) before the tree was running:\n${rootOutput}`))))
    exited.catch(() => undefined)
    const deadline = Date.now() + START_TIMEOUT_MS
    for (;;) {
      const rows = await Promise.race([status().catch(() => [] as ComponentSample[]), exited])
      if (rows.length > 0 && rows.every((r) => r.state === "running")) break
      if (Date.now() > deadline) throw new Error(`the tree was not running within ${START_TIMEOUT_MS} ms: ${JSON.stringify(rows.filter((r) => r.state !== "running"))}`)
      await new Promise((ok) => setTimeout(ok, 300))
    }
  } catch (e) {
    await stop()
    throw e
  }
  return {
    owned: true,
    dataDir,
    url: frontUrl(config).replace(/\/$/, ""),
    livenessBoundMs: boundOf(config.liveness),
    fillable: mounted,
    notes,
    status,
    restart: restartOf(paths.control),
    stop,
  }
}
