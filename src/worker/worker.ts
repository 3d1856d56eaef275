// The worker: its data directories, the kernel socket that forked kernels connect back to, one forkserver
// pool per kernel kind, the session supervisor and the backend server, started and stopped in order.
import { chmod, mkdir, readFile, rm, stat } from "node:fs/promises"
import { createServer, type Server } from "node:net"
import { join } from "node:path"
import { encodeFrame } from "../protocol/frames.ts"
import { KernelKind } from "../protocol/worker.ts"
import type { WorkerConfig } from "./config.ts"
import { KernelConn, KernelPool } from "./forkserver.ts"
import { readLines } from "./lines.ts"
import { log } from "./log.ts"
import { ensureWorkerSecret } from "./secret.ts"
import { startServer } from "./server.ts"
import { superviseKernels } from "./kernels.ts"
import { containSpec, SessionSupervisor } from "./sessions.ts"
import { WorkerCgroups } from "./cgroups.ts"
import { listProcesses, sweepUid } from "./uids.ts"

const sweepRange = async (first: number, last: number): Promise<Array<Promise<boolean>>> => {
  const uids = new Set((await listProcesses()).filter((p) => p.uid >= first && p.uid <= last && p.state !== "Z").map((p) => p.uid))
  if (uids.size > 0) log("warn", `killing processes a previous life left under ${uids.size} session uids`)
  return [...uids].map((uid) => sweepUid(uid))
}

export interface RunningWorker {
  readonly port: number
  readonly sessions: SessionSupervisor
  readonly pools: ReadonlyMap<KernelKind, KernelPool>
  /** ends every session with WorkerStopped, tells every backend, closes the server, stops the forkservers */
  readonly stop: () => Promise<void>
}

/** Session homes live under dirs that session uids must be able to traverse (0711), not list. */
const prepareDirs = async (config: WorkerConfig, kernelDir: string): Promise<void> => {
  const root = process.getuid?.() === 0
  await mkdir(config.dataDir, { recursive: true })
  if (root && ((await stat(config.dataDir)).mode & 0o001) === 0) await chmod(config.dataDir, 0o711)
  // Sessions of a previous life of this worker died with it (PR_SET_PDEATHSIG): clear what they left.
  if (root) await Promise.all(await sweepRange(config.uidRange.first, config.uidRange.last))
  await rm(join(config.dataDir, "sessions"), { recursive: true, force: true })
  await mkdir(join(config.dataDir, "sessions"), { recursive: true, mode: 0o711 })
  await chmod(join(config.dataDir, "sessions"), 0o711)
  await mkdir(join(config.dataDir, "run"), { recursive: true, mode: 0o755 })
  await rm(kernelDir, { recursive: true, force: true })
  // Only root (kernels before they drop privileges) can reach the kernel socket.
  await mkdir(kernelDir, { recursive: true, mode: 0o700 })
}

/** Kernels connect here after the fork and say hello; each is handed to its kind's pool. */
const startKernelSocket = (path: string, pools: ReadonlyMap<KernelKind, KernelPool>): Promise<Server> => {
  const server = createServer((socket) => {
    let conn: KernelConn | undefined
    socket.on("error", () => undefined)
    socket.on("close", () => {
      if (conn === undefined) return
      conn.closed = true
      conn.onClose?.()
    })
    readLines(
      socket,
      (message) => {
        if (conn !== undefined) return conn.handler?.(message)
        const kind = KernelKind.safeParse(message["kind"])
        const pid = message["pid"]
        const tag = message["tag"]
        if (message["type"] !== "hello" || !kind.success || typeof pid !== "number" || typeof tag !== "string") return void socket.destroy()
        conn = new KernelConn(pid, tag, kind.data, socket)
        pools.get(kind.data)?.deliver(conn)
      },
      () => undefined,
      () => log("warn", `a kernel (pid ${conn?.pid ?? "?"}) sent a line longer than the limit; its connection is closed`),
    )
  })
  server.on("error", (error) => log("error", `kernel socket: ${error.message}`))
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(path, () => resolve(server))
  })
}

export const startWorker = async (config: WorkerConfig): Promise<RunningWorker> => {
  const kernelDir = join(config.dataDir, "run", `${config.id.replace(/[^\w.-]/g, "_")}.kernels`)
  await prepareDirs(config, kernelDir)
  const secret = await ensureWorkerSecret(config.dataDir)
  const socketPath = join(kernelDir, "k.sock")
  const pools = new Map<KernelKind, KernelPool>()
  const root = process.getuid?.() === 0
  const cgroups = root ? WorkerCgroups.make(config.id) : undefined
  for (const name of ["protected_symlinks", "protected_hardlinks"]) {
    const value = await readFile(`/proc/sys/fs/${name}`, "utf8").then((v) => v.trim(), () => "unknown")
    if (value !== "1") log("warn", `fs.${name} is ${value}: sessions have no shared writable directory, but set it to 1 for the host's own users (sagews doctor)`)
  }
  if (root && cgroups === undefined) log("warn", "no writable memory and pids cgroup controllers: sessions run without per-session memory and task limits (see `sagews doctor`)")
  const containers = root ? { spec: containSpec(config), cgroups } : undefined
  let sessions: SessionSupervisor | undefined
  for (const kind of config.kernels) {
    pools.set(kind, new KernelPool(config, kind, socketPath, {
      onExit: (pid, exit) => sessions?.kernelExited(pid, exit),
      onDied: (pids, why) => sessions?.forkserverDied(pids, why),
    }, containers))
  }
  sessions = new SessionSupervisor(config, pools, cgroups)
  const kernelSocket = await startKernelSocket(socketPath, pools)
  const kernels = superviseKernels(config.id, pools, (why) => {
    log("fatal", `the kernel supervisor gave up: ${why}`)
    process.exit(1)
  })
  const { server, port, peers } = await startServer(config, secret, sessions)
  log("info", `worker listening on ${config.host}:${port}`, { isolation: sessions.isolation, kernels: config.kernels })
  const running = sessions
  const stop = async (): Promise<void> => {
    server.close()
    await running.stopAll({ _tag: "WorkerStopped" })
    const bye = encodeFrame({ type: "error", message: "WorkerStopped: the worker is shutting down" })
    for (const socket of peers) {
      socket.end(bye)
      setTimeout(() => socket.destroy(), 500).unref()
    }
    await kernels.stop()
    cgroups?.removeAll()
    kernelSocket.close()
    await rm(kernelDir, { recursive: true, force: true })
  }
  return { port, sessions, pools, stop }
}
