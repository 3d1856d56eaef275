// The memcached actor: the shared result cache, one memcached on a unix socket in <data>/run/memcached/ (0700, its
// system user's: no session uid can reach it; no TCP or UDP at all), ready and alive when it answers `version`
// (a stopped memcached still accepts connections but never answers).
import { execFile } from "node:child_process"
import { chmod, chown, mkdir } from "node:fs/promises"
import net from "node:net"
import { dirname, join, resolve } from "node:path"
import { Effect } from "effect"
import type { ChildSpec, Restart } from "../supervisors/child.ts"
import { ExitReason } from "../supervisors/exit.ts"
import { checkReachable } from "../src/db/cluster.ts"
import { type LivenessOptions, processSpec } from "./process.ts"

export interface MemcachedOptions {
  readonly dataDir: string
  /** cache size (memcached's -m) */
  readonly memoryMb: number
  /** child id, names the log and pid files */
  readonly id?: string
  readonly restart?: Restart
  /** liveness timing (the probe is the actor's own); default: this file's LIVENESS */
  readonly liveness?: Omit<LivenessOptions, "probe">
  /** ms between the polite stop signal and SIGKILL (config: shutdownMs); default SHUTDOWN_MS */
  readonly shutdown?: number
}

/** Debian's path; memcached is not a login tool, so it may be missing from a non-root PATH otherwise. */
export const MEMCACHED_BIN = "/usr/bin/memcached"

/** Max simultaneous client connections (-c): backends keep small pools, so this is ample headroom. */
const MAX_CONNECTIONS = 1024
/** Worker threads (-t): the machine has two cores shared with everything else. */
const THREADS = 2
/** One `version` round trip on loopback takes well under a millisecond; this only bounds a hung server. */
const VERSION_TIMEOUT_MS = 1_000
/** A hung memcached is SIGKILLed after about interval x failures (3 s). */
const LIVENESS: Omit<LivenessOptions, "probe"> = { interval: 1_000, timeout: 1_000, failures: 3 }
/** SIGTERM takes up to ~1 s (INFRA.md): wait a little longer before SIGKILL. */
const SHUTDOWN_MS = 3_000
/** The Debian package's system user; root must name one with -u or memcached exits 64. */
const MEMCACHED_USER = "memcache"
const FALLBACK_USER = "nobody"

/** Where memcached listens: the backends' `--cache`. */
export const memcachedSocket = (dataDir: string): string => join(resolve(dataDir), "run", "memcached", "memcached.sock")

/**
 * Sends `version\r\n` to memcached on its socket and returns the version it reports. Fails with a
 * message when nothing answers with `VERSION ...` within `timeoutMs`.
 */
export const memcachedVersion = (socketPath: string, timeoutMs = VERSION_TIMEOUT_MS): Effect.Effect<string, string> =>
  Effect.callback<string, string>((resume) => {
    let buffer = ""
    const where = `memcached on ${socketPath}`
    const socket = net.connect({ path: socketPath })
    const done = (result: Effect.Effect<string, string>) => {
      clearTimeout(timer)
      socket.destroy()
      resume(result)
    }
    const timer = setTimeout(
      () => done(Effect.fail(`${where} did not answer "version" within ${timeoutMs} ms`)),
      timeoutMs,
    )
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write("version\r\n"))
    socket.on("data", (chunk: string) => {
      buffer += chunk
      const end = buffer.indexOf("\r\n")
      if (end < 0) return
      const line = buffer.slice(0, end)
      done(
        line.startsWith("VERSION ")
          ? Effect.succeed(line.slice("VERSION ".length))
          : Effect.fail(`${where} answered "version" with ${JSON.stringify(line)}`),
      )
    })
    socket.on("error", (e) => done(Effect.fail(`${where}: ${e.message}`)))
    socket.on("close", () => done(Effect.fail(`${where} closed the connection`)))
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

const userExists = (name: string): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    execFile("id", ["-u", name], (error) => resume(Effect.succeed(error === null)))
  })

const idOf = (flag: "-u" | "-g", name: string): Effect.Effect<number, string> =>
  Effect.callback<number, string>((resume) => {
    execFile("id", [flag, name], (error, stdout) =>
      resume(error === null ? Effect.succeed(Number(String(stdout).trim())) : Effect.fail(`id ${flag} ${name}: ${error.message}`)))
  })

const createSystemUser = (name: string): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    execFile(
      "useradd",
      ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
      (error) => resume(Effect.succeed(error === null)),
    )
  })

/**
 * The user memcached drops to when we run as root: Debian's `memcache` (created if the package did not),
 * else `nobody`. Undefined when not root: memcached then simply runs as us.
 */
export const memcachedUser: Effect.Effect<string | undefined> = Effect.gen(function* () {
  if (process.getuid?.() !== 0) return undefined
  if (yield* userExists(MEMCACHED_USER)) return MEMCACHED_USER
  if (yield* createSystemUser(MEMCACHED_USER)) return MEMCACHED_USER
  yield* Effect.logWarning(`cannot create the system user "${MEMCACHED_USER}"; memcached runs as "${FALLBACK_USER}"`)
  return FALLBACK_USER
})

/**
 * memcached's socket directory, made on every start: 0700 and owned by the user memcached drops to (it creates
 * the socket after dropping root), so that only that user and root can enter it.
 */
const prepareSocketDir = (dataDir: string, user: string | undefined): Effect.Effect<void, string> =>
  Effect.gen(function* () {
    const dir = dirname(memcachedSocket(dataDir))
    const fsCall = (what: string, f: () => Promise<unknown>) =>
      Effect.tryPromise({ try: f, catch: (e) => `${what} ${dir}: ${e instanceof Error ? e.message : String(e)}` })
    // run/ first, with the default mode: a recursive mkdir would make every missing level 0700
    yield* fsCall("mkdir", () => mkdir(dirname(dir), { recursive: true }))
    yield* fsCall("mkdir", () => mkdir(dir, { recursive: true, mode: 0o700 }))
    yield* fsCall("chmod", () => chmod(dir, 0o700))
    if (user !== undefined) {
      const uid = yield* idOf("-u", user)
      const gid = yield* idOf("-g", user)
      yield* fsCall("chown", () => chown(dir, uid, gid))
      yield* checkReachable(dir, { name: user, uid, gid }).pipe(Effect.mapError((e) => e.message))
    }
  })

export const memcachedArgs = (options: MemcachedOptions, user: string | undefined): ReadonlyArray<string> => [
  // a unix socket only: -s turns off TCP and UDP altogether; -a 0600 is a second lock behind the directory's
  "-s", memcachedSocket(options.dataDir),
  "-a", "0600",
  "-m", String(options.memoryMb),
  "-c", String(MAX_CONNECTIONS),
  "-t", String(THREADS),
  ...(user === undefined ? [] : ["-u", user]),
]

export const memcachedSpec = (options: MemcachedOptions): ChildSpec => {
  const id = options.id ?? "memcached"
  const probe = { _tag: "custom", check: memcachedVersion(memcachedSocket(options.dataDir)).pipe(Effect.asVoid) } as const
  return {
    id,
    restart: options.restart ?? "permanent",
    shutdown: options.shutdown ?? SHUTDOWN_MS,
    start: Effect.gen(function* () {
      const user = yield* memcachedUser
      yield* prepareSocketDir(options.dataDir, user).pipe(Effect.mapError((cause) => ExitReason.Crash({ detail: cause })))
      const spec = processSpec({
        id,
        command: MEMCACHED_BIN,
        args: memcachedArgs(options, user),
        dataDir: options.dataDir,
        ready: probe,
        liveness: { probe, ...(options.liveness ?? LIVENESS) },
        shutdown: options.shutdown ?? SHUTDOWN_MS,
        restart: options.restart ?? "permanent",
      })
      return yield* spec.start
    }),
  }
}
