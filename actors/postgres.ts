// The postgres actor: the PostgreSQL cluster sagews owns in <data>/pg, run as an unprivileged system user.
// Each start: system user, directories, passwords, initdb (first start only), leftovers of a killed postmaster,
// pg_hba.conf and the roles (src/db/roles.ts), and with `listen` the host certificate and TLS for other hosts; ready =
// the superuser's SELECT 1, the database, the migrations, the service and join roles' rights, then the service role's
// own SELECT 1.
import * as path from "node:path"
import { Effect } from "effect"
import type { ChildSpec, Restart } from "../supervisors/child.ts"
import { ExitReason } from "../supervisors/exit.ts"
import { ensureHostCert, tlsPaths } from "../src/cluster/ca.ts"
import { grantJoinRights } from "../src/cluster/rights.ts"
import {
  ClusterError, type ClusterUser, clusterPaths, ensureSystemUser, findBinDir, initdb, installServerTls, prepareDirs, serverTlsPaths,
  writeHba,
} from "../src/db/cluster.ts"
import { connect, ensureDatabase, query } from "../src/db/client.ts"
import { type ClusterCredentials, clusterCredentials } from "../src/db/credentials.ts"
import { clearLeftovers } from "../src/db/leftovers.ts"
import { migrate } from "../src/db/migrate.ts"
import { grantService, setRoles } from "../src/db/roles.ts"
import { scramVerifier } from "../src/db/scram.ts"
import { localUrl, withDatabase } from "../src/db/url.ts"
import { type LivenessOptions, type LogLevel, type ProcessOptions, processSpec } from "./process.ts"

export interface PostgresOptions {
  readonly dataDir: string
  readonly port: number
  /**
   * config postgres.listen: also listen on `address` for other hosts, TLS only (the host certificate, re-issued for
   * `address` when needed) and scram-sha-256 (src/db/cluster.ts, hbaConf); `host` is the config's host name (a SAN)
   */
  readonly listen?: { readonly address: string; readonly host: string } | undefined
  /** initdb --no-sync and fsync=off: for tests only, a crash of the machine can lose data */
  readonly fastInit?: boolean
  /** where initdb and postgres are (default: Debian's PostgreSQL 15) */
  readonly binDir?: string
  readonly id?: string
  readonly restart?: Restart
  readonly liveness?: Omit<LivenessOptions, "probe">
  /** ms for the first SELECT 1 and the migrations together */
  readonly readyTimeout?: number
  /** ms between the polite stop signal and SIGKILL (config: shutdownMs); default SHUTDOWN_MS */
  readonly shutdown?: number
}

/** A hung postgres (SIGSTOP, stuck I/O) is killed after about interval x failures + timeout. */
const LIVENESS: Omit<LivenessOptions, "probe"> = { interval: 2_000, timeout: 2_000, failures: 3 }
/** SIGINT is a fast shutdown (~15 ms, INFRA.md), but its shutdown checkpoint can take seconds on a busy cluster. */
const SHUTDOWN_MS = 10_000
/** ms for the first SELECT 1 and the migrations together, counted from the spawn */
const READY_TIMEOUT = 30_000
/** one connection attempt of a probe: loopback answers in ms, so this only bounds a hung server */
const PROBE_CONNECT_TIMEOUT = 1_000

const LEVEL_OF: Readonly<Record<string, LogLevel>> = {
  DEBUG: "debug", LOG: "info", INFO: "info", NOTICE: "info", DETAIL: "info", HINT: "info", STATEMENT: "info",
  CONTEXT: "info", WARNING: "warn", ERROR: "error", FATAL: "fatal", PANIC: "fatal",
}
const LEVEL_PATTERN = /\b(DEBUG\d?|LOG|INFO|NOTICE|DETAIL|HINT|STATEMENT|CONTEXT|WARNING|ERROR|FATAL|PANIC):  /

/** postgres writes every message to stderr: its own severity decides the level, not the stream. */
export const postgresLevel = (line: string): LogLevel => {
  const severity = LEVEL_PATTERN.exec(line)?.[1]?.replace(/\d$/, "")
  return (severity !== undefined ? LEVEL_OF[severity] : undefined) ?? "info"
}

/** A real connection and a query, within the probe's time. */
export const ping = (url: string, timeout = PROBE_CONNECT_TIMEOUT): Effect.Effect<void, string> =>
  Effect.scoped(
    Effect.gen(function*() {
      const client = yield* connect(url, { connectTimeout: timeout, queryTimeout: timeout })
      yield* query(client, "SELECT 1")
    }),
  ).pipe(Effect.mapError((e) => `${e.operation}: ${e.message}`))

/** Creates the database when missing and brings it to the current schema (idempotent: runs on every start). */
export const prepareDatabase = (url: string): Effect.Effect<void, string> =>
  Effect.gen(function*() {
    yield* ensureDatabase(url, { connectTimeout: PROBE_CONNECT_TIMEOUT })
    yield* migrate(url, { connectTimeout: PROBE_CONNECT_TIMEOUT })
  }).pipe(Effect.mapError((e) => `${e.operation}: ${e.message}`))

/**
 * The own cluster's readiness: as the superuser the database and its schema, the service role's rights and the join
 * roles' (src/cluster/rights.ts); then the service role's login.
 */
export const prepareOwnDatabase = (port: number, credentials: ClusterCredentials): Effect.Effect<void, string> => {
  const superuserUrl = localUrl(port, credentials.superuser)
  return Effect.gen(function*() {
    yield* ping(withDatabase(superuserUrl, "postgres"))
    yield* prepareDatabase(superuserUrl)
    yield* grantService(superuserUrl, credentials.service.user, { connectTimeout: PROBE_CONNECT_TIMEOUT }).pipe(
      Effect.mapError((e) => `${e.operation}: ${e.message}`),
    )
    yield* grantJoinRights(superuserUrl, { connectTimeout: PROBE_CONNECT_TIMEOUT }).pipe(
      Effect.mapError((e) => `${e.operation}: ${e.message}`),
    )
    yield* ping(localUrl(port, credentials.service))
  })
}

export interface PreparedCluster {
  readonly user: ClusterUser
  readonly binDir: string
  readonly credentials: ClusterCredentials
}

/**
 * Everything before the postmaster, on every start: the system user, directories, passwords, initdb (first
 * start only), pg_hba.conf and the roles. Call only while this cluster's postmaster is not running.
 */
export const prepareCluster = (
  dataDir: string,
  options: {
    readonly binDir?: string | undefined
    readonly fastInit?: boolean | undefined
    readonly listen?: PostgresOptions["listen"]
  } = {},
): Effect.Effect<PreparedCluster, ClusterError> =>
  Effect.gen(function*() {
    const user = yield* ensureSystemUser
    const binDir = yield* findBinDir(options.binDir)
    yield* prepareDirs(dataDir, user)
    const credentials = yield* Effect.tryPromise({
      try: () => clusterCredentials(dataDir),
      catch: (e) => new ClusterError({ message: `the PostgreSQL passwords: ${e instanceof Error ? e.message : String(e)}` }),
    })
    // A SIGKILLed postmaster's orphaned backends (holding its shared memory) and postmaster.pid would stop this start.
    yield* clearLeftovers(clusterPaths(dataDir).pg)
    yield* initdb(dataDir, user, binDir, scramVerifier(credentials.superuser.password), { noSync: options.fastInit })
    if (options.listen !== undefined) {
      const { address, host } = options.listen
      yield* ensureHostCert(dataDir, address, host).pipe(
        Effect.mapError((e) => new ClusterError({ message: `postgres.listen needs this host's certificate: ${e.message}` })),
      )
      yield* installServerTls(dataDir, user, tlsPaths(dataDir))
    }
    yield* writeHba(dataDir, user, options.listen !== undefined)
    yield* setRoles(dataDir, user, binDir, credentials, { noSync: options.fastInit })
    return { user, binDir, credentials }
  })

export const postgresSpec = (options: PostgresOptions): ChildSpec => {
  const id = options.id ?? "postgres"
  const dataDir = path.resolve(options.dataDir)
  const paths = clusterPaths(dataDir)
  // The socket's own mode is a second lock behind its directory's (0700, the cluster user's).
  const addresses = [...new Set(["127.0.0.1", ...(options.listen ? [options.listen.address] : [])])]
  const args = [
    "-D", paths.pg, "-p", String(options.port), "-k", paths.socketDir, "-c", `listen_addresses=${addresses.join(",")}`,
    "-c", "unix_socket_permissions=0700",
  ]
  if (options.listen) {
    const tls = serverTlsPaths(dataDir)
    args.push("-c", "ssl=on", "-c", `ssl_cert_file=${tls.cert}`, "-c", `ssl_key_file=${tls.key}`, "-c", "ssl_min_protocol_version=TLSv1.2")
  }
  if (options.fastInit) args.push("-c", "fsync=off")
  const restart = options.restart ?? "permanent"

  // The uid/gid and the binaries are known only at start (the system user may not exist yet).
  const processOptions = ({ user, binDir, credentials }: PreparedCluster): ProcessOptions => ({
    id,
    command: path.join(binDir, "postgres"),
    args,
    dataDir,
    ...(user.uid !== undefined ? { uid: user.uid } : {}),
    ...(user.gid !== undefined ? { gid: user.gid } : {}),
    env: { LC_ALL: "C.UTF-8" },
    ready: { _tag: "custom", check: prepareOwnDatabase(options.port, credentials) },
    readyTimeout: options.readyTimeout ?? READY_TIMEOUT,
    liveness: { probe: { _tag: "custom", check: ping(localUrl(options.port, credentials.service)) }, ...(options.liveness ?? LIVENESS) },
    port: options.port,
    stopSignal: "SIGINT",
    shutdown: options.shutdown ?? SHUTDOWN_MS,
    restart,
    levelOf: postgresLevel,
  })

  const prepare = prepareCluster(dataDir, options).pipe(Effect.map(processOptions))

  return {
    id,
    restart,
    shutdown: options.shutdown ?? SHUTDOWN_MS,
    type: "worker",
    start: prepare.pipe(
      Effect.flatMap((opts) => Effect.try({ try: () => processSpec(opts), catch: (e) => new ClusterError({ message: String(e) }) })),
      Effect.mapError((error) => ExitReason.Crash({ detail: error.message })),
      Effect.flatMap((spec) => spec.start),
    ),
  }
}
