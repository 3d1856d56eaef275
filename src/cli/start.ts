// `sagews start` and `sagews stop`: bring the tree up (foreground or --daemon), serve the control socket, stop it.
// The root's life: pid file, the tree in a Scope, the URL once every component is ready, then wait for stop.
import { spawn } from "node:child_process"
import { closeSync, existsSync, linkSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Cause, Deferred, Effect, Exit, Option, Scope } from "effect"
import type { Config } from "../config/schema.ts"
import { frontUrl } from "../config/load.ts"
import { dataPaths, type DataPaths } from "../config/paths.ts"
import { make, type SupervisorHandle } from "../../supervisors/supervisor.ts"
import { treeSpec } from "../../supervisors/tree.ts"
import { callControl, controlChild, NotRunning, type ControlReply, type ControlRequest } from "./control.ts"
import { initDataDir } from "./init.ts"
import { rootLoggerLayer } from "./rootlog.ts"
import { type ComponentRow, flattenStatus } from "./status.ts"
import { formatExit } from "../../supervisors/exit.ts"
import { processGone } from "../../actors/procstat.ts"
import { diskSpace } from "../../actors/room.ts"

const SAGEWS = fileURLToPath(new URL("./sagews", import.meta.url))
/** How long `start --daemon` and `stop` wait for the root before they give up and say so. */
const DAEMON_READY_TIMEOUT_MS = 180_000
const STOP_TIMEOUT_MS = 120_000

/** A living process; a zombie is dead (the machine's PID 1 may never reap it). */
const pidAlive = (pid: number): boolean => !processGone(pid)

/** The root pid from the pid file, if that process still lives and is a sagews root. */
const livingRoot = (paths: DataPaths): number | undefined => {
  if (!existsSync(paths.rootPid)) return undefined
  const pid = Number(readFileSync(paths.rootPid, "utf8").trim())
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return undefined
  let cmdline = ""
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8")
  } catch {
    return undefined
  }
  return cmdline.includes("main.ts") && cmdline.includes("start") ? pid : undefined
}

const waitGone = async (pid: number, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return !pidAlive(pid)
}


export interface StartOptions {
  readonly dataDir: string
  readonly config: Config
  readonly daemon: boolean
  readonly argv: ReadonlyArray<string>
}

export const startCommand = async (o: StartOptions): Promise<number> => {
  const paths = dataPaths(o.dataDir)
  const running = livingRoot(paths)
  if (running !== undefined) {
    process.stderr.write(`sagews: already running on ${paths.data} (pid ${running}); \`sagews stop\` first, or use another --data\n`)
    return 1
  }
  await initDataDir(o.dataDir)
  return o.daemon ? startDaemon(o, paths) : runRoot(o, paths)
}

/** Detach a foreground root, wait until it answers as ready, print the URL. */
const startDaemon = async (o: StartOptions, paths: DataPaths): Promise<number> => {
  const out = openSync(paths.daemonOut, "a")
  const args = o.argv.filter((a) => a !== "--daemon")
  // The detached root must get its own tini (the wrapper skips it when SAGEWS_UNDER_TINI is set), and it has
  // no terminal: its log goes to log/sagews.log only.
  const env: NodeJS.ProcessEnv = { ...process.env, SAGEWS_DATA: paths.data, SAGEWS_DAEMON: "1" }
  delete env.SAGEWS_UNDER_TINI
  const child = spawn(SAGEWS, args, { detached: true, stdio: ["ignore", out, out], env })
  closeSync(out)
  let exited: number | null = null
  child.once("exit", (code) => (exited = code ?? 1))
  child.unref()
  const deadline = Date.now() + DAEMON_READY_TIMEOUT_MS
  let notRunning: string[] = []
  while (Date.now() < deadline) {
    if (exited !== null) {
      process.stderr.write(`sagews: the tree exited (${exited}) while starting; see ${paths.daemonOut} and ${paths.logFile("sagews")}\n`)
      return 1
    }
    try {
      const reply = await callControl(paths.control, { cmd: "status" }, 2000)
      const rows = reply.ok ? (reply.components as ComponentRow[]) : []
      notRunning = rows.filter((r) => r.state !== "running").map((r) => `${r.id} (${r.state}${r.lastExit ? `, last exit ${r.lastExit}` : ""})`)
      if (reply.ok && notRunning.length === 0) {
        process.stdout.write(`sagews is running: ${frontUrl(o.config)}  (pid ${String(reply.pid)}, data ${paths.data})\n`)
        return 0
      }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const which = notRunning.length > 0 ? `: ${notRunning.join(", ")} not running` : ""
  process.stderr.write(`sagews: the tree did not become ready within ${DAEMON_READY_TIMEOUT_MS / 1000} s${which}; it keeps trying (\`sagews status\`, \`sagews stop\`); see ${paths.logFile("sagews")}\n`)
  return 1
}

const statusReply = (root: SupervisorHandle, config: Config, paths: DataPaths) =>
  Effect.gen(function*() {
    const children = yield* root.children
    const events = yield* root.recentEvents
    return {
      ok: true as const,
      url: frontUrl(config),
      pid: process.pid,
      isolation: process.getuid?.() === 0 ? "full" : "reduced (not root: sessions share the worker's uid and network)",
      components: flattenStatus(children, Date.now()),
      disk: diskSpace(paths.data) ?? null,
      events: events.slice(-50).map((e) => ({ ...e, reason: e.reason ? formatExit(e.reason) : undefined })),
    }
  })

/** Exclusive create of the root pid file: of two starts racing on one data dir, exactly one becomes the root. */
const claimRoot = (paths: DataPaths): boolean => {
  for (let attempt = 0; attempt < 2; attempt++) {
    // written whole under a temporary name, then linked into place: nobody ever reads a half-written pid file
    const temp = `${paths.rootPid}.${process.pid}`
    writeFileSync(temp, `${process.pid}\n`)
    try {
      linkSync(temp, paths.rootPid)
      return true
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || livingRoot(paths) !== undefined) return false
      rmSync(paths.rootPid, { force: true }) // left by a root that died without cleaning up
    } finally {
      rmSync(temp, { force: true })
    }
  }
  return false
}

/** The root itself: runs the tree until a stop request, a signal or an escalation of the root. */
const runRoot = async (o: StartOptions, paths: DataPaths): Promise<number> => {
  if (!claimRoot(paths)) {
    process.stderr.write(`sagews: another start on ${paths.data} got there first (pid ${livingRoot(paths) ?? "?"})\n`)
    return 1
  }
  const program = Effect.gen(function*() {
    const stopRequested = yield* Deferred.make<string>()
    const signal = (name: string) => () => Effect.runFork(Deferred.succeed(stopRequested, name))
    process.on("SIGTERM", signal("SIGTERM"))
    process.on("SIGINT", signal("SIGINT"))
    process.on("SIGHUP", signal("SIGHUP"))

    const scope = yield* Scope.make()
    const rootHandle = yield* Deferred.make<SupervisorHandle>()
    const services = yield* Effect.context<never>()
    const run = <A>(e: Effect.Effect<A, unknown>) => Effect.runPromiseWith(services)(e)
    const handle = async (req: ControlRequest): Promise<ControlReply> => {
      switch (req.cmd) {
        case "ping":
          return { ok: true, pid: process.pid }
        case "stop":
          await run(Deferred.succeed(stopRequested, "sagews stop"))
          return { ok: true }
        case "status":
          return run(Effect.flatMap(Deferred.await(rootHandle), (root) => statusReply(root, o.config, paths)))
        case "restart": {
          const exit = await run(Effect.exit(Effect.flatMap(Deferred.await(rootHandle), (root) => root.restartChild(req.id))))
          return Exit.isSuccess(exit) ? { ok: true } : { ok: false, error: `cannot restart ${req.id}: ${Cause.pretty(exit.cause).split("\n")[0]}` }
        }
      }
    }
    yield* Effect.logInfo(`starting the tree in ${paths.data}`)
    // A signal or `sagews stop` while the tree is still starting interrupts the start; the scope then
    // stops whatever had started, in reverse order.
    const started = yield* Effect.raceFirst(
      make(treeSpec(o.config, paths.data, [controlChild(paths.control, handle)])).pipe(Scope.provide(scope), Effect.map(Option.some)),
      Deferred.await(stopRequested).pipe(Effect.as(Option.none<SupervisorHandle>())),
    )
    let why = { reason: "stopped while starting", code: 0 }
    if (Option.isSome(started)) {
      const root = started.value
      yield* Deferred.succeed(rootHandle, root)
      yield* Effect.logInfo(`sagews is running: ${frontUrl(o.config)}  (pid ${process.pid}, data ${paths.data})`)
      why = yield* Effect.raceFirst(
        Deferred.await(stopRequested).pipe(Effect.map((reason) => ({ reason, code: 0 }))),
        Effect.exit(root.await).pipe(
          Effect.map((exit) => Exit.isSuccess(exit) ? { reason: "the tree stopped", code: 0 } : { reason: `the root gave up: ${Cause.pretty(exit.cause)}`, code: 1 }),
        ),
      )
    }
    yield* Effect.logInfo(`stopping (${why.reason})`)
    yield* Scope.close(scope, Exit.void)
    yield* Effect.logInfo("stopped; nothing of the tree is left running")
    return why.code
  })
  return Effect.runPromise(program.pipe(Effect.provide(rootLoggerLayer(paths.logFile("sagews"), process.env.SAGEWS_DAEMON !== "1")))).finally(() => {
    rmSync(paths.control, { force: true })
    rmSync(paths.rootPid, { force: true })
  })
}

export const stopCommand = async (paths: DataPaths): Promise<number> => {
  const pid = livingRoot(paths)
  try {
    const reply = await callControl(paths.control, { cmd: "stop" }, 10_000)
    if (!reply.ok) throw new Error(reply.error)
  } catch (e) {
    if (!(e instanceof NotRunning) || pid === undefined) throw e
    process.kill(pid, "SIGTERM") // starting up: no control socket yet, but the root handles SIGTERM
  }
  if (pid !== undefined && !(await waitGone(pid, STOP_TIMEOUT_MS))) {
    process.stderr.write(`sagews: the root (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s\n`)
    return 1
  }
  process.stdout.write("sagews: stopped\n")
  return 0
}
