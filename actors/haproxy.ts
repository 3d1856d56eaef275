// The haproxy actor: the front door (one port; /sockjs, /api, /healthz to the backends, the rest to nginx),
// run master-worker from conf/haproxy.cfg.template with this host's backends as static servers, and `reloadHaproxy`
// for a new backend set without dropping connections. Remote backends come at run time (src/front/servers.ts).
import { execFile } from "node:child_process"
import { mkdir, readFile, rename, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { Data, Effect, Schedule, Semaphore } from "effect"
import { loadConfig } from "../src/config/load.ts"
import { invalidTimeouts, proxyTimeouts, type ProxyTimeouts } from "../src/config/proxy.ts"
import { CONF_DIR, renderTemplateFile, type TemplateValues } from "../src/config/render.ts"
import type { ChildSpec, Restart } from "../supervisors/child.ts"
import { ExitReason } from "../supervisors/exit.ts"
import { CLI_TIMEOUT_MS, haproxyCommand, parseShowProc, type ProcList } from "./haproxycli.ts"
import { DYNAMIC_PREFIX, serverIdOf } from "../src/front/names.ts"
import { type LivenessOptions, type LogLevel, processSpec } from "./process.ts"

export interface HaproxyBackend {
  /** haproxy server name and stickiness cookie value, e.g. "backend:1" */
  readonly name: string
  readonly port: number
  /**
   * the backend's id in the registry (e.g. `backend:1`): its haproxy server id is derived from it (src/front/names.ts),
   * so every haproxy of a cluster hashes a SockJS session to the same backend; without it haproxy numbers servers itself
   */
  readonly key?: string
  /** where it listens: this host's `address` when it serves other hosts; default 127.0.0.1 */
  readonly host?: string
}

export interface HaproxyOptions {
  readonly dataDir: string
  /** the front port (default config: 8080) */
  readonly port: number
  /** the address the front port binds, e.g. "0.0.0.0", or "127.0.0.1" in tests */
  readonly bind: string
  readonly backends: ReadonlyArray<HaproxyBackend>
  readonly nginxPort: number
  /**
   * how long haproxy waits on a backend: `proxyTimeouts(config)` (src/config/proxy.ts), so that every limit answers
   * first; default: derived from the default config (conf/sagews.json)
   */
  readonly timeouts?: ProxyTimeouts
  readonly id?: string
  readonly restart?: Restart
  /** liveness timing (the probe is the actor's own); default: this file's LIVENESS */
  readonly liveness?: Omit<LivenessOptions, "probe">
  /** ms between the polite stop signal and SIGKILL (config: shutdownMs); default SHUTDOWN_MS */
  readonly shutdown?: number
}

export const HAPROXY_BIN = "/usr/sbin/haproxy"
export const HAPROXY_TEMPLATE = join(CONF_DIR, "haproxy.cfg.template")
/** An old worker keeps serving its open connections (WebSockets) after a reload for at most this long. */
const HARD_STOP_AFTER = "30s"
const READY_TIMEOUT_MS = 10_000
/** A hung haproxy is SIGKILLed after about interval x failures (3 s). */
const LIVENESS: Omit<LivenessOptions, "probe"> = { interval: 1_000, timeout: CLI_TIMEOUT_MS, failures: 3 }
/** SIGTERM stops haproxy at once; a SIGTERM lost right after start is covered by the SIGKILL after this. */
const SHUTDOWN_MS = 3_000
/** How long a reload may take until the new worker shows up in `show proc`. */
const RELOAD_TIMEOUT_MS = 10_000
const RELOAD_POLL = Schedule.spaced("50 millis")
/**
 * Every server of the sections that serve backends: checks every 500 ms (250 ms while changing), DOWN after 2 failed
 * checks or at once on a refused connection, UP after 2. The template's `default-server`, and spelled out on each
 * server added at run time, which haproxy 2.6 gives no `default-server` settings.
 */
export const SERVER_OPTIONS = "inter 500ms fastinter 250ms downinter 1s fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down"
/** The sections of conf/haproxy.cfg.template that serve backends (be_static is nginx's). */
export const BACKEND_SECTIONS = ["be_sockjs", "be_websocket", "be_app"] as const
/** Linux's sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107

/** Everything haproxy reads or writes in the data dir, as absolute paths (`-S` requires one). */
export { haproxyCommand, parseShowProc, type ProcList }

export const haproxyPaths = (dataDir: string) => {
  const data = resolve(dataDir)
  return {
    dir: join(data, "haproxy"),
    config: join(data, "haproxy", "haproxy.cfg"),
    /** the options of the last start or reload, so `reloadHaproxy(dataDir, backends)` can re-render */
    options: join(data, "haproxy", "options.json"),
    serverState: join(data, "haproxy", "servers.state"),
    masterSocket: join(data, "run", "haproxy-master.sock"),
    adminSocket: join(data, "run", "haproxy-admin.sock"),
  }
}

export class HaproxyReloadError extends Data.TaggedError("HaproxyReloadError")<{
  readonly reason: "never-started" | "invalid-backends" | "invalid-config" | "not-running" | "reload-failed"
  readonly message: string
}> {}

const SERVER_NAME = /^[A-Za-z0-9_.:-]+$/

/** Names that could break the config (spaces, newlines) or ports out of range: a message, or undefined. */
export const invalidBackends = (backends: ReadonlyArray<HaproxyBackend>): string | undefined => {
  for (const b of backends) {
    if (!SERVER_NAME.test(b.name)) {
      return `backend name ${JSON.stringify(b.name)} is not a valid haproxy server name (letters, digits, "_.:-")`
    }
    if (b.name.startsWith(DYNAMIC_PREFIX)) {
      return `backend name ${JSON.stringify(b.name)} starts with "${DYNAMIC_PREFIX}", which names remote backends added at run time`
    }
    if (!Number.isInteger(b.port) || b.port < 1 || b.port > 65_535) {
      return `backend ${b.name}: port ${b.port} is not a TCP port (1-65535)`
    }
    if (b.host !== undefined && !/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\])$/.test(b.host)) {
      return `backend ${b.name}: host ${JSON.stringify(b.host)} is not an IPv4 address or a bracketed IPv6 address`
    }
  }
  return undefined
}

export const serverLines = (backends: ReadonlyArray<HaproxyBackend>): string =>
  backends
    .map((b) => `    server ${b.name} ${b.host ?? "127.0.0.1"}:${b.port} check cookie ${b.name}${b.key === undefined ? "" : ` id ${serverIdOf(b.key)}`}`)
    .join("\n")

/** The timeouts of `options`, else those the default config implies. */
const timeoutsOf = (options: Pick<HaproxyOptions, "timeouts">): Effect.Effect<ProxyTimeouts, string> =>
  options.timeouts !== undefined
    ? Effect.succeed(options.timeouts)
    : Effect.try({ try: () => proxyTimeouts(loadConfig({ env: {} })), catch: (e) => `cannot derive haproxy's timeouts from the default config: ${String(e)}` })

/** Every value conf/haproxy.cfg.template asks for. */
export const haproxyValues = (options: HaproxyOptions, timeouts: ProxyTimeouts): TemplateValues => {
  const paths = haproxyPaths(options.dataDir)
  return {
    admin_socket: paths.adminSocket,
    hard_stop_after: HARD_STOP_AFTER,
    server_state_file: paths.serverState,
    bind: options.bind,
    port: options.port,
    nginx_port: options.nginxPort,
    backend_servers: serverLines(options.backends),
    server_options: SERVER_OPTIONS,
    api_timeout: `${timeouts.api}ms`,
    api_timeout_seconds: timeouts.api / 1000,
    tunnel_timeout: `${timeouts.tunnel}ms`,
  }
}

/** `show proc` on the master CLI, parsed. */
export const showProc = (dataDir: string): Effect.Effect<ProcList, string> =>
  haproxyCommand(haproxyPaths(dataDir).masterSocket, "show proc").pipe(
    Effect.flatMap((text) => {
      const procs = parseShowProc(text)
      return procs === undefined ? Effect.fail(`unexpected "show proc" answer: ${JSON.stringify(text)}`) : Effect.succeed(procs)
    }),
  )

/**
 * haproxy's own stderr lines start `[NOTICE]   (123) :`; stdout carries the request log and the health
 * events (`Server be_app/backend:1 is DOWN, ...`).
 */
export const haproxyLevel = (line: string, stream: "stdout" | "stderr"): LogLevel => {
  if (stream === "stdout") {
    if (line.includes("has no server available")) return "error"
    return / is DOWN\b/.test(line) ? "warn" : "info"
  }
  // a worker ended by SIGTERM is what every stop and reload does
  if (line.startsWith("[ALERT]")) return line.includes("(Terminated)") ? "warn" : "error"
  if (line.startsWith("[WARNING]")) return "warn"
  return "info"
}

const run = (file: string, args: ReadonlyArray<string>) =>
  Effect.callback<{ readonly ok: boolean; readonly output: string }>((resume) => {
    execFile(file, args, (error, stdout, stderr) =>
      resume(Effect.succeed({ ok: error === null, output: `${stdout}${stderr}`.trim() })),
    )
  })

const io = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (e) => `${what}: ${String(e)}` })

/**
 * Renders the config to `out` and has `haproxy -c` check it. The check's ALERT lines become the message
 * of a failure; the rejected file is kept next to it (`.rejected`) for the operator to read.
 */
const renderChecked = (options: HaproxyOptions, out: string): Effect.Effect<void, string> =>
  Effect.gen(function* () {
    const invalid = invalidBackends(options.backends)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    const timeouts = yield* timeoutsOf(options)
    const badTimeout = invalidTimeouts(timeouts)
    if (badTimeout !== undefined) return yield* Effect.fail(badTimeout)
    const paths = haproxyPaths(options.dataDir)
    for (const socket of [paths.masterSocket, paths.adminSocket]) {
      if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
        return yield* Effect.fail(`socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter data dir`)
      }
    }
    yield* renderTemplateFile(HAPROXY_TEMPLATE, out, haproxyValues(options, timeouts)).pipe(Effect.mapError((e) => e.message))
    const check = yield* run(HAPROXY_BIN, ["-c", "-f", out])
    if (!check.ok) {
      const rejected = out.replace(/(\.new)?$/, ".rejected")
      yield* io(`cannot keep the rejected config as ${rejected}`, () => rename(out, rejected))
      return yield* Effect.fail(`haproxy rejected the config (kept as ${rejected}): ${checkErrors(check.output)}`)
    }
  })

/** The ALERT lines of `haproxy -c`, without their `[ALERT]    (123) : config : ` prefix and the summary. */
const checkErrors = (output: string): string => {
  const alerts = output.split("\n").filter((l) => l.startsWith("[ALERT]") && !l.includes("Fatal errors found"))
  if (alerts.length === 0) return output
  return alerts.map((l) => l.replace(/^\[ALERT\]\s+\(\d+\) : (config : )?/, "")).join("; ")
}

const saveOptions = (options: HaproxyOptions) =>
  io("cannot save haproxy options", () =>
    writeFile(
      haproxyPaths(options.dataDir).options,
      JSON.stringify({ port: options.port, bind: options.bind, nginxPort: options.nginxPort, backends: options.backends, timeouts: options.timeouts }),
    ),
  )

/** The options of the last start or reload in `dataDir`. */
const loadOptions = (dataDir: string): Effect.Effect<HaproxyOptions, string> =>
  Effect.tryPromise({
    try: async () => {
      const saved = JSON.parse(await readFile(haproxyPaths(dataDir).options, "utf8")) as Omit<HaproxyOptions, "dataDir">
      return { ...saved, dataDir }
    },
    catch: () => `no haproxy was ever started in ${resolve(dataDir)} (no ${haproxyPaths(dataDir).options}): start it first`,
  })

/**
 * The first start renders `options`; a restart by the supervisor keeps the backend set of the last
 * `reloadHaproxy`, so a crash does not bring back servers that were reloaded away.
 */
export const haproxySpec = (options: HaproxyOptions): ChildSpec => {
  const id = options.id ?? "haproxy"
  const restart = options.restart ?? "permanent"
  const paths = haproxyPaths(options.dataDir)
  const ready = {
    _tag: "custom",
    check: showProc(options.dataDir).pipe(
      Effect.flatMap((p) => (p.workers.length > 0 ? Effect.void : Effect.fail("haproxy has no worker yet"))),
    ),
  } as const
  const alive = { _tag: "custom", check: Effect.asVoid(showProc(options.dataDir)) } as const
  let started = false
  const prepare = Effect.gen(function* () {
    yield* io(`cannot create ${paths.dir}`, () => mkdir(paths.dir, { recursive: true }))
    yield* io("cannot create the run dir", () => mkdir(join(resolve(options.dataDir), "run"), { recursive: true }))
    const backends = started
      ? (yield* Effect.orElseSucceed(loadOptions(options.dataDir), () => options)).backends
      : options.backends
    started = true
    yield* renderChecked({ ...options, backends }, paths.config)
    yield* saveOptions({ ...options, backends })
    // a fresh start begins from the config, not from the runtime state of a previous life ("1" = format version)
    yield* io("cannot reset the server state file", () => writeFile(paths.serverState, "1\n"))
  })
  return {
    id,
    restart,
    shutdown: options.shutdown ?? SHUTDOWN_MS,
    start: Effect.gen(function* () {
      yield* prepare.pipe(Effect.mapError((cause) => ExitReason.Crash({ detail: cause })))
      const spec = processSpec({
        id,
        command: HAPROXY_BIN,
        args: ["-W", "-db", "-f", paths.config, "-S", `${paths.masterSocket},mode,600`],
        dataDir: options.dataDir,
        port: options.port,
        ready,
        readyTimeout: READY_TIMEOUT_MS,
        liveness: { probe: alive, ...(options.liveness ?? LIVENESS) },
        stopSignal: "SIGTERM",
        shutdown: options.shutdown ?? SHUTDOWN_MS,
        restart,
        levelOf: haproxyLevel,
      })
      return yield* spec.start
    }),
  }
}

/** Tags a step's failure message with the reload failure reason. */
const as = (reason: HaproxyReloadError["reason"]) =>
  Effect.mapError((message: string) => new HaproxyReloadError({ reason, message }))

/**
 * Points the running haproxy of `dataDir` at a new backend set without dropping a connection: re-renders
 * the config, checks it with `haproxy -c`, saves the runtime server state (drain, maint) for the new
 * worker, then USR2 to the master, which starts a new worker on the same listening sockets while the old
 * one finishes its connections. A config haproxy rejects changes nothing: the old one keeps serving.
 */
export const reloadHaproxy = (
  dataDir: string,
  backends: ReadonlyArray<HaproxyBackend>,
): Effect.Effect<void, HaproxyReloadError> =>
  lockOf(dataDir).withPermit(reloadOnce(dataDir, backends)).pipe(Effect.withSpan("Haproxy.reload"))

/** One reload at a time per data dir: two at once would race on the config file and the master. */
const reloadLocks = new Map<string, Semaphore.Semaphore>()
const lockOf = (dataDir: string): Semaphore.Semaphore => {
  const key = resolve(dataDir)
  const lock = reloadLocks.get(key) ?? Semaphore.makeUnsafe(1)
  reloadLocks.set(key, lock)
  return lock
}

const reloadOnce = Effect.fnUntraced(function* (dataDir: string, backends: ReadonlyArray<HaproxyBackend>) {
  const paths = haproxyPaths(dataDir)
  const options: HaproxyOptions = { ...(yield* loadOptions(dataDir).pipe(as("never-started"))), dataDir, backends }
  const invalid = invalidBackends(backends)
  if (invalid !== undefined) return yield* new HaproxyReloadError({ reason: "invalid-backends", message: invalid })
  const before = yield* showProc(dataDir).pipe(as("not-running"))
  const candidate = `${paths.config}.new`
  yield* renderChecked(options, candidate).pipe(as("invalid-config"))

  const state = yield* Effect.result(haproxyCommand(paths.adminSocket, "show servers state"))
  if (state._tag === "Failure") {
    yield* Effect.logWarning(`runtime server state not saved, the new worker starts from the config: ${state.failure}`)
  }
  const previousConfig = yield* Effect.gen(function* () {
    if (state._tag === "Success") yield* io("cannot write the server state", () => writeFile(paths.serverState, state.success))
    const text = yield* io("cannot read the current config", () => readFile(paths.config, "utf8"))
    yield* io("cannot install the new config", () => rename(candidate, paths.config))
    return text
  }).pipe(as("reload-failed"))
  yield* Effect.try({
    try: () => process.kill(before.master, "SIGUSR2"),
    catch: (e) => `cannot signal the haproxy master ${before.master}: ${String(e)}`,
  }).pipe(as("not-running"))

  // the master re-executes itself (its CLI is briefly gone), then lists a worker it did not have before
  const after = yield* showProc(dataDir).pipe(
    Effect.flatMap((p) =>
      p.failedReloads > before.failedReloads || p.workers.some((w) => !before.workers.includes(w))
        ? Effect.succeed(p)
        : Effect.fail("the new haproxy worker has not started yet")
    ),
    Effect.retry(RELOAD_POLL),
    Effect.timeoutOrElse({
      duration: RELOAD_TIMEOUT_MS,
      orElse: () => Effect.fail(`no new haproxy worker within ${RELOAD_TIMEOUT_MS} ms of the reload`),
    }),
    as("reload-failed"),
  )
  if (after.failedReloads > before.failedReloads) {
    yield* io("cannot restore the previous config", () => writeFile(paths.config, previousConfig)).pipe(as("reload-failed"))
    return yield* new HaproxyReloadError({
      reason: "reload-failed",
      message: "haproxy refused the reload (see the haproxy log); the previous config keeps serving",
    })
  }
  yield* saveOptions(options).pipe(as("reload-failed"))
})
