// Test harness for whole-tree tests: a sagews stack on free ports in a temp data dir, driven through the real CLI.
// Every process the stack starts carries SAGEWS_DATA=<its dir> in its environment, which is how leftovers are found.
import { spawn, type ChildProcess, execFile } from "node:child_process"
import { mkdtempSync, rmSync, chmodSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { livingProcesses, processGone } from "../../actors/procstat.ts"
import { freePorts } from "../ports.ts"

export const ROOT = resolve(import.meta.dirname, "../..")
export const SAGEWS = join(ROOT, "src/cli/sagews")

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface Stack {
  readonly dataDir: string
  readonly env: NodeJS.ProcessEnv
  readonly port: number
  readonly url: string
  readonly ports: Record<string, number>
  /** `sagews ARGS` on the stack, `stdin` written to it */
  cli(args: ReadonlyArray<string>, extraEnv?: NodeJS.ProcessEnv, stdin?: string): Promise<CliResult>
  /** `sagews start` in the foreground; resolves once its status answers with every component running */
  startForeground(): Promise<ChildProcess>
  waitRunning(timeoutMs?: number): Promise<StatusRow[]>
  status(): Promise<StatusRow[]>
  /** pids of live (non-zombie) processes that belong to this stack */
  processes(): number[]
  /** stop everything, kill what is left, remove the data dir */
  cleanup(): Promise<void>
}

export interface StatusRow {
  readonly id: string
  readonly type: string
  readonly state: string
  readonly pid: number | null
  readonly restarts: number
  readonly lastExit: string | null
  readonly port: number | null
}


/** A process that exists and is not a zombie (this machine's PID 1 never reaps orphans: count them as dead). */
export const alive = (pid: number): boolean => !processGone(pid)

/** Every living process of a stack: its children carry SAGEWS_DATA=<dir>, external programs name the dir. */
export const processesOf = (dataDir: string): number[] =>
  livingProcesses((p) => p.cmdline.includes(dataDir) || p.environ().includes(`SAGEWS_DATA=${dataDir}`)).map((p) => p.pid)

/** A session uid base unique to a port (20,000 uids: two workers), apart from the web tests' (test/web/harness.ts). */
export const uidBaseFor = (port: number): number => 10_000_000 + port * 20_000

export const makeStack = async (options: {
  readonly backends?: number
  readonly workers?: number
  readonly extraEnv?: NodeJS.ProcessEnv
  /** the directory the data directory is made in (default the system's temp dir) */
  readonly parent?: string
} = {}): Promise<Stack> => {
  const dataDir = mkdtempSync(join(options.parent ?? tmpdir(), "sagews-e2e-"))
  chmodSync(dataDir, 0o711)
  const backends = options.backends ?? 2
  const workers = options.workers ?? 1
  const ports = {
    front: await freePorts(1),
    postgres: await freePorts(1),
    nginx: await freePorts(1),
    backends: await freePorts(backends),
    workers: await freePorts(workers),
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SAGEWS_DATA: dataDir,
    SAGEWS_PORT: String(ports.front),
    SAGEWS_POSTGRES_PORT: String(ports.postgres),
    SAGEWS_POSTGRES_FAST_INIT: "true",
    SAGEWS_NGINX_PORT: String(ports.nginx),
    SAGEWS_BACKENDS_COUNT: String(backends),
    SAGEWS_BACKENDS_BASE_PORT: String(ports.backends),
    SAGEWS_WORKERS_COUNT: String(workers),
    SAGEWS_WORKERS_BASE_PORT: String(ports.workers),
    // a uid range of its own (workers claim theirs host-wide): stacks run side by side, and their front ports differ
    SAGEWS_SESSIONS_UID_BASE: String(uidBaseFor(ports.front)),
    SAGEWS_LIVENESS_INTERVAL_MS: "500",
    SAGEWS_LIVENESS_TIMEOUT_MS: "1000",
    ...options.extraEnv,
  }
  delete env.SAGEWS_UNDER_TINI
  let foreground: ChildProcess | undefined

  const cli = (args: ReadonlyArray<string>, extraEnv: NodeJS.ProcessEnv = {}, stdin = ""): Promise<CliResult> =>
    new Promise((ok) => {
      const child = execFile(SAGEWS, [...args], { env: { ...env, ...extraEnv }, timeout: 120_000 }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0
        ok({ code, stdout, stderr })
      })
      child.stdin?.end(stdin)
    })

  const status = async (): Promise<StatusRow[]> => {
    const r = await cli(["status", "--json"])
    if (r.code !== 0) throw new Error(`status failed (${r.code}): ${r.stderr}`)
    return (JSON.parse(r.stdout) as { components: StatusRow[] }).components
  }

  const waitRunning = async (timeoutMs = 90_000): Promise<StatusRow[]> => {
    const deadline = Date.now() + timeoutMs
    let last = ""
    while (Date.now() < deadline) {
      try {
        const rows = await status()
        if (rows.length > 0 && rows.every((r) => r.state === "running")) return rows
        last = JSON.stringify(rows.filter((r) => r.state !== "running"))
      } catch (e) {
        last = (e as Error).message
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new Error(`the stack was not running within ${timeoutMs} ms: ${last}`)
  }

  return {
    dataDir,
    env,
    port: ports.front,
    url: `http://127.0.0.1:${ports.front}`,
    ports,
    cli,
    status,
    waitRunning,
    startForeground: async () => {
      const child = spawn(SAGEWS, ["start"], { env, stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      child.stdout.on("data", (d: Buffer) => (output += d.toString()))
      child.stderr.on("data", (d: Buffer) => (output += d.toString()))
      foreground = child
      const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`sagews start exited ${code}:\n${output}`))))
      await Promise.race([waitRunning(), exited])
      return child
    },
    processes: () => processesOf(dataDir),
    cleanup: async () => {
      await cli(["stop"])
      if (foreground && foreground.exitCode === null) foreground.kill("SIGKILL")
      for (const pid of processesOf(dataDir)) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // already gone
        }
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
