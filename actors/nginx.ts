// The nginx actor: serves static/ and the published worksheets in <data>/pub/ (at /pub/) on 127.0.0.1 behind haproxy,
// from conf/nginx.conf.template rendered into <data>/nginx/ (its prefix: pid, temp dirs, access log); ready and alive
// when /nginx-healthz answers.
import { constants } from "node:fs"
import { chmod, mkdir, stat } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { Effect } from "effect"
import { CONF_DIR, renderTemplateFile } from "../src/config/render.ts"
import { PAGE_CSP } from "../src/publish/render.ts"
import { pubRoot } from "../src/publish/write.ts"
import type { ChildSpec, Restart } from "../supervisors/child.ts"
import { ExitReason } from "../supervisors/exit.ts"
import { type LivenessOptions, type LogLevel, processSpec } from "./process.ts"

export interface NginxOptions {
  readonly dataDir: string
  readonly port: number
  /** the directory served at / (the repo's static/) */
  readonly staticRoot: string
  readonly id?: string
  readonly restart?: Restart
  /** liveness timing (the probe is the actor's own); default: this file's LIVENESS */
  readonly liveness?: Omit<LivenessOptions, "probe">
  /** ms between the polite stop signal and SIGKILL (config: shutdownMs); default SHUTDOWN_MS */
  readonly shutdown?: number
}

export const NGINX_BIN = "/usr/sbin/nginx"
export const NGINX_TEMPLATE = join(CONF_DIR, "nginx.conf.template")
/** Debian's list of file extensions to content types. */
const MIME_TYPES = "/etc/nginx/mime.types"
export const HEALTH_PATH = "/nginx-healthz"
/**
 * An HTTP answer means a worker is running, so the master has passed the point where an early SIGQUIT
 * could kill it outright (INFRA.md): no need to also wait for the "start worker process" notice.
 */
const READY_TIMEOUT_MS = 10_000
/** A hung nginx is SIGKILLed after about interval x failures (3 s). */
const LIVENESS: Omit<LivenessOptions, "probe"> = { interval: 1_000, timeout: 1_000, failures: 3 }
/** SIGQUIT lets workers finish the requests in flight; static files finish fast. */
const SHUTDOWN_MS = 5_000

/** `<data>/nginx`: the prefix, holding the rendered config, pid file, temp dirs and access log. */
export const nginxPrefix = (dataDir: string): string => join(resolve(dataDir), "nginx")
export const nginxConfPath = (dataDir: string): string => join(nginxPrefix(dataDir), "nginx.conf")

/** nginx's error log lines start `2026/11/22 09:40:54 [notice] 17928#17928: ...`. */
export const nginxLevel = (line: string): LogLevel => {
  const level = /^\S+ \S+ \[(\w+)\]/.exec(line)?.[1]
  switch (level) {
    case "debug":
      return "debug"
    case "info":
    case "notice":
      return "info"
    case "warn":
      return "warn"
    case "error":
    case "crit":
      return "error"
    case "alert":
    case "emerg":
      return "fatal"
    default:
      return "info"
  }
}

/**
 * As root, nginx's workers run as `nobody`: every directory down to the static root must be searchable
 * by others and the root itself readable, or every page is a 403 while the health check still passes.
 */
export const checkReadableByOthers = (root: string): Effect.Effect<void, string> =>
  Effect.gen(function* () {
    let dir = resolve(root)
    const rootStat = yield* statOf(dir)
    if (!rootStat.isDirectory()) return yield* Effect.fail(`static root ${dir} is not a directory`)
    if ((rootStat.mode & (constants.S_IROTH | constants.S_IXOTH)) !== (constants.S_IROTH | constants.S_IXOTH)) {
      return yield* Effect.fail(
        `static root ${dir} is not readable by nginx's workers (user nobody); run: chmod o+rx ${dir}`,
      )
    }
    while (dirname(dir) !== dir) {
      dir = dirname(dir)
      const s = yield* statOf(dir)
      if ((s.mode & constants.S_IXOTH) === 0) {
        return yield* Effect.fail(
          `nginx's workers (user nobody) cannot reach the static root ${resolve(root)} through ${dir}; run: chmod o+x ${dir}`,
        )
      }
    }
  })

const statOf = (path: string) =>
  Effect.tryPromise({ try: () => stat(path), catch: (e) => `cannot stat ${path}: ${String(e)}` })

/** Creates the prefix and writes the rendered config; returns the config's path. */
export const renderNginxConf = (options: NginxOptions): Effect.Effect<string, string> =>
  Effect.gen(function* () {
    const prefix = nginxPrefix(options.dataDir)
    yield* Effect.tryPromise({
      try: () => mkdir(prefix, { recursive: true }),
      catch: (e) => `cannot create ${prefix}: ${String(e)}`,
    })
    const conf = nginxConfPath(options.dataDir)
    yield* renderTemplateFile(NGINX_TEMPLATE, conf, {
      prefix,
      port: options.port,
      static_root: resolve(options.staticRoot),
      pub_root: pubRoot(options.dataDir),
      pub_csp: PAGE_CSP,
      mime_types: MIME_TYPES,
    }).pipe(Effect.mapError((e) => e.message))
    return conf
  })

/** `<data>/pub/`, where the backends write published pages: made here so nginx answers 404, not 500, before the first. */
const ensurePubRoot = (dataDir: string): Effect.Effect<void, string> =>
  Effect.tryPromise({
    try: async () => {
      await mkdir(pubRoot(dataDir), { recursive: true })
      await chmod(pubRoot(dataDir), 0o755)
    },
    catch: (e) => `cannot create ${pubRoot(dataDir)}: ${String(e)}`,
  })

const prepare = (options: NginxOptions): Effect.Effect<string, string> =>
  Effect.gen(function* () {
    yield* ensurePubRoot(options.dataDir)
    if (process.getuid?.() === 0) {
      yield* checkReadableByOthers(options.staticRoot)
      yield* checkReadableByOthers(pubRoot(options.dataDir))
    }
    return yield* renderNginxConf(options)
  })

export const nginxSpec = (options: NginxOptions): ChildSpec => {
  const id = options.id ?? "nginx"
  const restart = options.restart ?? "permanent"
  const probe = { _tag: "http", port: options.port, path: HEALTH_PATH, host: "127.0.0.1" } as const
  return {
    id,
    restart,
    shutdown: options.shutdown ?? SHUTDOWN_MS,
    start: Effect.gen(function* () {
      const conf = yield* prepare(options).pipe(Effect.mapError((cause) => ExitReason.Crash({ detail: cause })))
      const spec = processSpec({
        id,
        command: NGINX_BIN,
        args: ["-p", `${nginxPrefix(options.dataDir)}/`, "-c", conf, "-e", "stderr", "-g", "daemon off;"],
        dataDir: options.dataDir,
        port: options.port,
        ready: probe,
        readyTimeout: READY_TIMEOUT_MS,
        liveness: { probe, ...(options.liveness ?? LIVENESS) },
        stopSignal: "SIGQUIT",
        shutdown: options.shutdown ?? SHUTDOWN_MS,
        restart,
        levelOf: (line) => nginxLevel(line),
      })
      return yield* spec.start
    }),
  }
}
