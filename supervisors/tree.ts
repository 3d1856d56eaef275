// The sagews tree, declared as data from the configuration (DESIGN.md, "The tree"):
// store (postgres, memcached), logwatch, compute (workers), web (backends, nginx, haproxy), control.
import { tlsPaths } from "../src/cluster/ca.ts"
import { joinedCluster } from "../src/cluster/join.ts"
import { fileURLToPath } from "node:url"
import { rolesOf } from "../src/config/roles.ts"
import type { Config } from "../src/config/schema.ts"
import { Effect } from "effect"
import { backendSpec } from "../actors/backend.ts"
import { haproxySpec } from "../actors/haproxy.ts"
import { haproxyServersChild } from "../src/front/servers.ts"
import { proxyTimeouts } from "../src/config/proxy.ts"
import { logwatchSpec } from "../actors/logwatch.ts"
import { memcachedSocket, memcachedSpec } from "../actors/memcached.ts"
import { nginxSpec } from "../actors/nginx.ts"
import { postgresSpec, prepareDatabase } from "../actors/postgres.ts"
import { withRoom } from "../actors/room.ts"
import { workerSpec } from "../actors/worker.ts"
import { defaultUidRange } from "../src/worker/config.ts"
import type { ChildSpec } from "./child.ts"
import { ExitReason } from "./exit.ts"
import { fiberChild } from "./fiber.ts"
import type { SupervisorSpec } from "./declaration.ts"
import { supervisorChild } from "./supervisor.ts"

const STATIC_ROOT = fileURLToPath(new URL("../static", import.meta.url))

/** An operator's own PostgreSQL: nothing to run, but the schema is brought up to date before anything uses it. */
const externalPostgres = (url: string): ChildSpec =>
  fiberChild({
    id: "postgres",
    ready: prepareDatabase(url).pipe(Effect.mapError((cause) => ExitReason.Crash({ detail: `external PostgreSQL: ${cause}` }))),
    run: Effect.never,
  })

/** The session settings of the config, in the worker's own terms (src/worker/config.ts). */
const workerConfig = ({ sessions: s }: Config, id: string, cluster: ClusterPlace) => ({
  name: cluster.name(id),
  machine: cluster.machine,
  ...(cluster.tls !== undefined ? { tls: { cert: cluster.tls.cert, key: cluster.tls.key } } : {}),
  uidRange: defaultUidRange(id, s.uidBase),
  pool: s.pool,
  maxSessions: s.maxPerWorker,
  maxSessionsPerUser: s.maxPerUser,
  limits: { wall: s.wallSeconds, idle: s.idleSeconds, exec: s.execSeconds, memory: s.memoryMb, cpu: s.cpuSeconds },
  disk: { home: s.homeMb, tmp: s.tmpMb },
})

/**
 * Where this host stands in a cluster: its machine name, how its workers and backends are named cluster-wide (a joined
 * host's carry `@<host>`; the store host's keep their short ids), and, when it serves other hosts from a non-loopback
 * `address`, that address and its certificate (made at init, signed by the cluster's CA).
 */
export interface ClusterPlace {
  readonly machine: string
  readonly name: (id: string) => string
  /** the address other hosts reach this host's workers and backends at; undefined: loopback, this machine only */
  readonly address: string | undefined
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string } | undefined
}

const isLoopback = (address: string): boolean => address.startsWith("127.") || address === "::1"

export const clusterPlace = (config: Config, dataDir: string): ClusterPlace => {
  const joined = joinedCluster(dataDir) !== undefined
  const address = isLoopback(config.address) ? undefined : config.address
  const tls = tlsPaths(dataDir)
  return {
    machine: config.host,
    name: (id) => (joined ? `${id}@${config.host}` : id),
    address,
    tls: address === undefined ? undefined : { ca: tls.caCert, cert: tls.hostCert, key: tls.hostKey },
  }
}

/** The admission and sign-in settings of the config, in the backend's own terms (src/backend/options.ts). */
export const backendConfig = ({ admission: a, signIn }: Config) => ({
  admission: { sessionsPerClient: a.sessionsPerClient, sessionsPerAddress: a.sessionsPerAddress, execsPerClient: a.execsPerClient, execsPerAddress: a.execsPerAddress },
  identityMaxAge: a.identityDays * 86_400,
  signIn: { providers: signIn.providers },
})

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

export const treeSpec = (config: Config, dataDir: string, extra: ReadonlyArray<ChildSpec> = []): SupervisorSpec => {
  const policy = {
    intensity: config.supervisor.intensity,
    period: config.supervisor.period,
    backoff: { initial: config.supervisor.backoffMs, max: config.supervisor.backoffCapMs },
  }
  const roles = rolesOf(config.role)
  const cluster = clusterPlace(config, dataDir)
  const shutdown = config.shutdownMs
  const liveness = { interval: config.liveness.intervalMs, timeout: config.liveness.timeoutMs, failures: config.liveness.failures }
  const db = { port: config.postgres.port, url: config.postgres.url || undefined }
  const backends = range(config.backends.count).map((i) => ({ name: `b${i}`, id: `backend:${i}`, port: config.backends.basePort + i - 1 }))
  const workers = range(config.workers.count).map((i) => ({ id: `worker:${i}`, port: config.workers.basePort + i - 1 }))
  // a full disk is waited out before a start (actors/room.ts), not restarted into until every supervisor gives up
  const room = (spec: ChildSpec): ChildSpec => withRoom(dataDir, spec)
  // this host's own workers are linked directly on loopback; a host that serves others finds every worker in the registry
  const localWorkers = roles.has("worker") && cluster.address === undefined ? workers.map((w) => `127.0.0.1:${w.port}`) : []
  const listenOn = cluster.address !== undefined ? { host: cluster.address } : {}

  const store = supervisorChild({
    id: "store",
    strategy: "one_for_one",
    ...policy,
    // PostgreSQL and memcached heal by restarts, however long they are down, and everything else goes on without
    // them meanwhile (sessions, stateless runs, the registry's backlog): the store never gives up, which would
    // restart it from the root and, on a PostgreSQL that cannot start, stop the whole tree. Every restart waits at
    // least backoffMs, so no more than this many fit in a period.
    intensity: Math.ceil((config.supervisor.period * 1000) / config.supervisor.backoffMs) + 1,
    children: [
      config.postgres.url
        ? externalPostgres(config.postgres.url)
        : room(postgresSpec({ dataDir, port: config.postgres.port, fastInit: config.postgres.fastInit, liveness, shutdown })),
      ...(config.cache.enabled ? [room(memcachedSpec({ dataDir, memoryMb: config.cache.memoryMb, liveness, shutdown }))] : []),
    ],
  })
  const compute = supervisorChild({
    id: "compute",
    strategy: "one_for_one",
    ...policy,
    children: workers.map((w) =>
      room(workerSpec({
        id: w.id,
        dataDir,
        port: w.port,
        ...listenOn,
        liveness,
        shutdown,
        db,
        ...(cluster.tls !== undefined ? { tls: { ca: cluster.tls.ca } } : {}),
        config: workerConfig(config, w.id, cluster),
      }))
    ),
  })
  const web = supervisorChild({
    id: "web",
    strategy: "one_for_one",
    ...policy,
    children: [
      ...backends.map((b) =>
        room(backendSpec({
          id: b.id,
          name: cluster.name(b.id),
          ...listenOn,
          dataDir,
          port: b.port,
          liveness,
          shutdown,
          workers: localWorkers,
          db,
          config: {
            ...backendConfig(config),
            machine: cluster.machine,
            discover: true,
            ...(cluster.address !== undefined ? { host: cluster.address, advertise: `${cluster.address}:${b.port}` } : {}),
          },
          ...(config.cache.enabled && roles.has("store") ? { cache: memcachedSocket(dataDir), cacheTtl: config.cache.ttlSeconds } : {}),
        }))
      ),
      room(nginxSpec({ dataDir, port: config.nginx.port, staticRoot: STATIC_ROOT, liveness, shutdown })),
      room(haproxySpec({ dataDir, port: config.port, bind: config.bind, backends: backends.map((b) => ({ name: b.name, port: b.port, key: cluster.name(b.id), ...(cluster.address !== undefined ? { host: cluster.address.includes(":") ? `[${cluster.address}]` : cluster.address } : {}) })), nginxPort: config.nginx.port, timeouts: proxyTimeouts(config), liveness, shutdown })),
      // every other web host's backends, from the registry, through haproxy's runtime API
      haproxyServersChild({ dataDir, db, local: backends.map((b) => cluster.name(b.id)) }),
    ],
  })
  return {
    id: "sagews",
    // Parts reconnect to what they use; nothing restarts a user session but its own failure.
    strategy: "one_for_one",
    ...policy,
    children: [
      ...(roles.has("store") ? [store] : []),
      room(logwatchSpec({ dataDir, db, host: config.host, liveness, shutdown })),
      ...(roles.has("worker") ? [compute] : []),
      ...(roles.has("web") ? [web] : []),
      ...extra,
    ],
  }
}
