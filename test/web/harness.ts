// Test harness for the web path: real worker, backend, memcached, PostgreSQL and haproxy processes on free ports in
// one temp data dir (shared worker secret), started through their actors' specs or as plain programs; `stop` leaves nothing.
import { spawn, type ChildProcess } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll, expect } from "vitest"
import { haproxySpec } from "../../actors/haproxy.ts"
import { childDb } from "../../actors/childdb.ts"
import { memcachedSocket, memcachedSpec } from "../../actors/memcached.ts"
import { nginxSpec } from "../../actors/nginx.ts"
import { postgresSpec } from "../../actors/postgres.ts"
import type { ChildSpec } from "../../supervisors/child.ts"
import { serviceUrl } from "../../src/db/credentials.ts"
import { livingProcesses } from "../../actors/procstat.ts"
import { freePort } from "../ports.ts"
export { freePort }

export const ROOT = join(import.meta.dirname, "../..")
const WORKER_MAIN = join(ROOT, "src/worker/main.ts")
const BACKEND_MAIN = join(ROOT, "src/backend/main.ts")

/** Living (non-zombie) processes whose command line mentions `dir`, as "pid command line" for failure messages. */
export const processesOf = (dir: string): Array<string> =>
  livingProcesses((p) => p.cmdline.includes(dir)).map((p) => `${p.pid} ${p.cmdline}`)

export interface Program {
  readonly proc: ChildProcess
  readonly port: number
  readonly logs: Array<string>
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>
  /** SIGTERM (or `signal`) and wait for the exit */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

const program = (args: ReadonlyArray<string>, port: number, env: Readonly<Record<string, string>> = {}): Program => {
  const proc = spawn(process.execPath, [...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
  const logs: Array<string> = []
  const watchers = new Set<() => void>()
  const onData = (chunk: Buffer): void => {
    logs.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""))
    for (const w of watchers) w()
  }
  proc.stdout?.on("data", onData)
  proc.stderr?.on("data", onData)
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)))
  return {
    proc,
    port,
    logs,
    waitFor: (pattern, timeoutMs = 120_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (!logs.some((l) => pattern.test(l))) return
          clearTimeout(timer)
          watchers.delete(check)
          resolve()
        }
        const timer = setTimeout(() => {
          watchers.delete(check)
          reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms:\n${logs.slice(-15).join("\n")}`))
        }, timeoutMs)
        watchers.add(check)
        void exited.then((code) => {
          if (watchers.has(check)) reject(new Error(`exited ${code} before ${pattern}:\n${logs.slice(-15).join("\n")}`))
        })
        check()
      }),
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return exited
    },
  }
}

/** Starts a child spec in its own scope; `stop` closes the scope (SIGTERM, wait, SIGKILL the group). */
export const startSpec = async (spec: ChildSpec): Promise<{ pid: number | undefined; stop: () => Promise<void> }> => {
  const scope = await Effect.runPromise(Scope.make())
  const exit = await Effect.runPromiseExit(Scope.provide(scope)(spec.start))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw new Error(`${spec.id} did not start: ${JSON.stringify(exit.cause)}`)
  }
  return { pid: exit.value.pid, stop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

export interface WebStack {
  readonly dataDir: string
  readonly workers: Array<Program>
  readonly backends: Array<Program>
  /** memcached's unix socket, when the stack has a cache */
  readonly cacheSocket: string | undefined
  /** memcached's pid while it runs */
  cachePid(): number | undefined
  readonly dbUrl: string | undefined
  /** PostgreSQL's postmaster (its process group), when the stack has it */
  readonly pgPid: number | undefined
  readonly frontPort: number | undefined
  backendUrl(i?: number): string
  /** haproxy's front door, when the stack has one */
  frontUrl(): string
  startBackend(): Promise<Program>
  /** worker `index` again, on its port (after it was stopped) */
  startWorker(index?: number): Promise<Program>
  stopCache(): Promise<void>
  stop(): Promise<void>
}

export interface WebStackOptions {
  readonly backends?: number
  readonly workers?: number
  readonly kernels?: ReadonlyArray<"python" | "sage">
  readonly cache?: boolean
  readonly postgres?: boolean
  /** PostgreSQL's liveness checks (a test that makes it hang on purpose wants them slow) */
  readonly postgresLiveness?: { readonly interval: number; readonly timeout: number; readonly failures: number }
  readonly haproxy?: boolean
  /** nginx serving static/ behind haproxy (the page) */
  readonly nginx?: boolean
  /** backend --config overrides (admission limits, ...) */
  readonly backendConfig?: Record<string, unknown>
  readonly workerConfig?: Record<string, unknown>
  /**
   * the cluster's way (needs postgres): workers register themselves in PostgreSQL and backends learn them there
   * (LISTEN/NOTIFY), with no --workers list
   */
  readonly registry?: boolean
}

/** each worker's 1,000 session uids start here plus 1,000 times its port: stacks side by side never share (workers claim them) */
const WEB_UID_BASE = 1_400_000_000

export const startWebStack = async (o: WebStackOptions = {}): Promise<WebStack> => {
  const dataDir = mkdtempSync(join(tmpdir(), "sagews-web-"))
  chmodSync(dataDir, 0o711)
  const stoppers: Array<() => Promise<unknown>> = []
  const workers: Array<Program> = []
  const backends: Array<Program> = []
  let cache: { pid: number | undefined; stop: () => Promise<void> } | undefined
  const stop = async (): Promise<void> => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined)
    if (cache !== undefined) await cache.stop().catch(() => undefined)
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    let dbUrl: string | undefined
    let pgPid: number | undefined
    if (o.postgres === true) {
      const port = await freePort()
      const pg = await startSpec(postgresSpec({ dataDir, port, fastInit: true, ...(o.postgresLiveness !== undefined ? { liveness: o.postgresLiveness } : {}) }))
      pgPid = pg.pid
      stoppers.push(pg.stop)
      dbUrl = await serviceUrl(dataDir, { port })
    }
    let cacheSocket: string | undefined
    if (o.cache === true) {
      cacheSocket = memcachedSocket(dataDir)
      cache = await startSpec(memcachedSpec({ dataDir, memoryMb: 16 }))
    }
    const workerCount = o.workers ?? 1
    const workerPorts: Array<number> = []
    for (let i = 0; i < workerCount; i++) {
      const port = await freePort()
      workerPorts.push(port)
      const first = WEB_UID_BASE + port * 1_000
      writeFileSync(join(dataDir, `worker${i + 1}.json`), JSON.stringify({ pool: 1, kernels: o.kernels ?? ["python"], uidRange: { first, last: first + 999 }, ...o.workerConfig }))
    }
    const startWorker = async (index = 0): Promise<Program> => {
      const port = workerPorts[index] ?? 0
      const db = o.registry === true && dbUrl !== undefined ? childDb(dbUrl) : undefined
      const worker = program([WORKER_MAIN, "--data", dataDir, "--port", String(port), "--id", `worker:${index + 1}`, "--config", join(dataDir, `worker${index + 1}.json`), ...(db !== undefined ? ["--db", db.url] : [])], port, db?.env)
      workers[index] = worker
      stoppers.push(() => worker.stop())
      await worker.waitFor(/worker listening/)
      // Sessions wait for a warm forkserver anyway; waiting here keeps slow Sage imports out of test timeouts.
      for (const kernel of o.kernels ?? ["python"]) await worker.waitFor(new RegExp(`${kernel} forkserver ready`), 180_000)
      return worker
    }
    await Promise.all(workerPorts.map((_, i) => startWorker(i)))
    writeFileSync(join(dataDir, "backend.json"), JSON.stringify({ ...(o.registry === true ? { discover: true } : {}), ...o.backendConfig }))
    const startBackend = async (): Promise<Program> => {
      const port = await freePort()
      const id = `backend:${backends.length + 1}`
      const listed = o.registry === true ? [] : ["--workers", workerPorts.map((p) => `127.0.0.1:${p}`).join(",")]
      const args = [BACKEND_MAIN, "--data", dataDir, "--port", String(port), "--id", id, ...listed, "--config", join(dataDir, "backend.json")]
      // as the backend actor does it: the URL on the command line, its password in the environment
      const db = dbUrl !== undefined ? childDb(dbUrl) : undefined
      if (db !== undefined) args.push("--db", db.url)
      if (cacheSocket !== undefined) args.push("--cache", cacheSocket, "--cache-ttl", "60")
      const backend = program(args, port, db?.env)
      backends.push(backend)
      stoppers.push(() => backend.stop())
      // its links are built before its server: a link may be up before the server listens
      await backend.waitFor(/listening on /)
      for (let i = 1; i <= workerCount; i++) await backend.waitFor(new RegExp(`connected to worker:${i} `))
      return backend
    }
    for (let i = 0; i < (o.backends ?? 1); i++) await startBackend()
    let frontPort: number | undefined
    if (o.haproxy === true) {
      frontPort = await freePort()
      const nginxPort = await freePort()
      if (o.nginx === true) {
        const nginx = await startSpec(nginxSpec({ dataDir, port: nginxPort, staticRoot: join(ROOT, "static") }))
        stoppers.push(nginx.stop)
      }
      const haproxy = await startSpec(haproxySpec({ dataDir, port: frontPort, bind: "127.0.0.1", nginxPort, backends: backends.map((b, i) => ({ name: `b${i + 1}`, port: b.port })) }))
      stoppers.push(haproxy.stop)
    }
    return {
      dataDir, workers, backends, cacheSocket, dbUrl, pgPid, frontPort,
      backendUrl: (i = 0) => `http://127.0.0.1:${backends[i]?.port ?? 0}`,
      frontUrl: () => `http://127.0.0.1:${frontPort ?? 0}`,
      startBackend,
      startWorker,
      cachePid: () => cache?.pid,
      stopCache: async () => {
        await cache?.stop()
        cache = undefined
      },
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

export const postJson = async (url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) })
  return { status: response.status, json: (await response.json()) as Record<string, unknown> }
}

/**
 * A web stack for the enclosing describe block (or file): started before its tests, stopped after them, with nothing
 * of it left running (asserted). The getter is for the tests, once it is up.
 */
export const webStackFor = (o: WebStackOptions = {}): (() => WebStack) => {
  let stack: WebStack | undefined
  beforeAll(async () => {
    stack = await startWebStack(o)
  })
  afterAll(async () => {
    const dir = stack?.dataDir
    await stack?.stop()
    if (dir !== undefined) expect(processesOf(dir)).toEqual([])
  })
  return () => {
    if (stack === undefined) throw new Error("the web stack did not start")
    return stack
  }
}
