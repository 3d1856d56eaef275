// Test harness: a real worker process on a free port with a temp data dir, a client for it, and the
// leftover check every worker test ends with (no session process, no session-uid process, no home dir, no cgroup).
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { chown, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expect } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import { WorkerClient } from "../../src/wire/client.ts"
import { ensureWorkerSecret } from "../../src/wire/secret.ts"
import { listProcesses } from "../../src/worker/uids.ts"
import { freePort } from "../ports.ts"
export { freePort }

export interface TestWorker {
  readonly port: number
  readonly dataDir: string
  readonly secret: Buffer
  readonly uidRange: { first: number; last: number }
  readonly proc: ChildProcess
  readonly logs: Array<string>
  connect(): Promise<WorkerClient>
  /** SIGTERM and wait for the exit code */
  stop(): Promise<number | null>
  /** resolves once a log line matches */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>
}

const WORKER_MAIN = join(import.meta.dirname, "../../src/worker/main.ts")

export const startTestWorker = async (
  config: Record<string, unknown> & { uidRange: { first: number; last: number } },
  reuse?: { dataDir: string; port: number },
  /** run the worker as this unprivileged uid (and gid) instead of root */
  asUid?: number,
): Promise<TestWorker> => {
  const dataDir = reuse?.dataDir ?? (await mkdtemp(join(tmpdir(), "sagews-worker-")))
  const port = reuse?.port ?? (await freePort())
  await writeFile(join(dataDir, "worker.json"), JSON.stringify({ pool: 1, kernels: ["python"], ...config }))
  if (asUid !== undefined) await chown(dataDir, asUid, asUid)
  const main = [process.execPath, WORKER_MAIN, "--data", dataDir, "--port", String(port), "--config", join(dataDir, "worker.json")]
  const [command, ...args] = asUid === undefined ? main : ["setpriv", `--reuid=${asUid}`, `--regid=${asUid}`, "--clear-groups", "--", ...main]
  const proc = spawn(command ?? process.execPath, args, {
    // a cwd that no session sees (their /tmp is their own), as a checkout in /tmp is: nothing may depend on it
    cwd: dataDir,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SAGEWS_TEST_SECRET_ENV: "hunter2-must-not-leak", MPLCONFIGDIR: join(tmpdir(), "sagews-test-matplotlib") },
  })
  const logs: Array<string> = []
  const watchers = new Set<(line: string) => void>()
  let pending = ""
  const onChunk = (chunk: Buffer): void => {
    pending += chunk.toString("utf8")
    const lines = pending.split("\n")
    pending = lines.pop() ?? ""
    for (const line of lines) {
      logs.push(line)
      for (const watch of watchers) watch(line)
    }
  }
  proc.stdout?.on("data", onChunk)
  proc.stderr?.on("data", onChunk)
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)))
  const waitForLog = (pattern: RegExp, timeoutMs = 120_000): Promise<string> => {
    const seen = logs.find((l) => pattern.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(watch)
        reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; last lines:\n${logs.slice(-10).join("\n")}`))
      }, timeoutMs)
      const watch = (line: string): void => {
        if (!pattern.test(line)) return
        clearTimeout(timer)
        watchers.delete(watch)
        resolve(line)
      }
      watchers.add(watch)
    })
  }
  await waitForLog(/worker listening/)
  const secret = await ensureWorkerSecret(dataDir)
  return {
    port,
    dataDir,
    secret,
    uidRange: config.uidRange,
    proc,
    logs,
    connect: () => WorkerClient.connect({ port, secret }),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM")
      return exited
    },
    waitForLog,
  }
}

export interface Leftovers {
  readonly uidProcesses: Array<string>
  readonly zombies: Array<string>
  readonly homes: Array<string>
  readonly kernels: Array<string>
  /** the worker's cgroup subtree (sagews.<id>.<pid>, src/worker/cgroups.ts), in any hierarchy */
  readonly cgroups: Array<string>
}

/** Everything a worker on `dataDir` might have left behind. */
type Watched = Pick<TestWorker, "dataDir" | "uidRange"> & { readonly proc?: { readonly pid?: number | undefined } }

const cgroupsOf = (pid: number | undefined): Array<string> => {
  if (pid === undefined) return []
  const found = spawnSync("find", ["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", `sagews.*.${pid}`], { encoding: "utf8" })
  return found.stdout.split("\n").filter(Boolean)
}

export const leftovers = async (worker: Watched): Promise<Leftovers> => {
  const processes = await listProcesses()
  const uidProcesses = processes.filter((p) => p.uid >= worker.uidRange.first && p.uid <= worker.uidRange.last).map((p) => `${p.pid} uid ${p.uid} ${p.state}`)
  const zombies: Array<string> = []
  const kernels: Array<string> = []
  for (const p of processes) {
    const cmdline = await readFile(`/proc/${p.pid}/cmdline`, "utf8").catch(() => "")
    if (cmdline.includes(worker.dataDir)) kernels.push(`${p.pid} ${p.state} ${cmdline.replaceAll("\0", " ")}`)
    if (p.state === "Z" && (p.uid >= worker.uidRange.first && p.uid <= worker.uidRange.last)) zombies.push(String(p.pid))
  }
  const homes = await readdir(join(worker.dataDir, "sessions")).catch(() => [])
  return { uidProcesses, zombies, homes, kernels, cgroups: cgroupsOf(worker.proc?.pid) }
}

/** Polls until nothing (of `what`) is left (cleanup after a kill is asynchronous), then returns what remains. */
export const settle = async (worker: Watched, timeoutMs = 10_000, what: ReadonlyArray<keyof Leftovers> = ["uidProcesses", "zombies", "homes", "kernels", "cgroups"]): Promise<Leftovers> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const left = await leftovers(worker)
    const empty = what.every((k) => left[k].length === 0)
    if (empty || Date.now() > deadline) return left
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export const removeDataDir = (worker: TestWorker): Promise<void> => rm(worker.dataDir, { recursive: true, force: true })

/** How every worker test ends: SIGTERM exits 0, nothing is left behind, the data dir goes. */
export const stopAndCheck = async (worker: TestWorker): Promise<void> => {
  expect(await worker.stop()).toBe(0)
  expect(await settle(worker)).toEqual(NO_LEFTOVERS)
  await removeDataDir(worker)
}

export const NO_LEFTOVERS: Leftovers = { uidProcesses: [], zombies: [], homes: [], kernels: [], cgroups: [] }

export const text = (messages: ReadonlyArray<{ kind: string }>, kind: "stdout" | "stderr" = "stdout"): string =>
  messages.flatMap((m) => (m.kind === kind && "text" in m ? [String(m.text)] : [])).join("")

type Display = Extract<OutputMessage, { kind: "display" }>

/** Each display's MIME bundle, in order. */
export const displays = (messages: ReadonlyArray<OutputMessage>): Array<Display["data"]> =>
  messages.filter((m): m is Display => m.kind === "display").map((m) => m.data)

/** The text of the last display: the cell's value, as Sage prints it. */
export const value = (messages: ReadonlyArray<OutputMessage>): string | undefined => displays(messages).at(-1)?.["text/plain"]

/** How the execution ended (its last message, done). */
export const status = (messages: ReadonlyArray<OutputMessage>): string | undefined => {
  const done = messages.at(-1)
  return done?.kind === "done" ? done.status : undefined
}
