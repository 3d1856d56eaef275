// The shape of sagews's configuration, validated with zod. Defaults live in conf/sagews.json, not here:
// every field is required in the merged result, so a default missing from that file is a startup error.
import { z } from "zod"

const port = z.number({ error: "expected a port number" }).int("expected an integer port").min(1, "expected a port 1-65535").max(65535, "expected a port 1-65535")
const positiveInt = z.number({ error: "expected a number" }).int("expected an integer").min(1, "expected an integer >= 1")
const ms = z.number({ error: "expected milliseconds" }).int("expected whole milliseconds").min(1, "expected milliseconds >= 1")

export const ConfigSchema = z.strictObject({
  $comment: z.string().optional(),
  /** the host name stored with every log row; empty = os.hostname() */
  host: z.string(),
  /** the address haproxy's front port binds (0.0.0.0 to serve other machines) */
  bind: z.string().min(1, "expected an address such as 127.0.0.1"),
  /** the front door: the only port a browser needs */
  port,
  postgres: z.strictObject({
    port,
    /** an external PostgreSQL instead of the cluster sagews owns; empty = own cluster */
    url: z.string(),
    /** initdb --no-sync and fsync=off: for tests only, a crash of the machine can lose data */
    fastInit: z.boolean({ error: "expected true or false" }),
  }),
  /** memcached listens on a unix socket in <data>/run/memcached/ (no port: nothing on the network reaches it) */
  cache: z.strictObject({
    enabled: z.boolean({ error: "expected true or false" }),
    memoryMb: positiveInt,
    ttlSeconds: positiveInt,
  }),
  nginx: z.strictObject({ port }),
  backends: z.strictObject({ count: positiveInt.max(32, "expected at most 32 backends"), basePort: port }),
  workers: z.strictObject({ count: positiveInt.max(64, "expected at most 64 workers"), basePort: port }),
  /** what every user session may use; the worker ends a session that passes one and names the limit */
  sessions: z.strictObject({
    /** pre-forked idle kernels kept per kind and worker: a new session waits for no fork */
    pool: z.number().int().min(0, "expected an integer >= 0").max(64, "expected at most 64"),
    maxPerWorker: positiveInt,
    maxPerUser: positiveInt,
    /** seconds of a session's whole life, idle time (computing is not idle), one execution; MiB; CPU seconds */
    wallSeconds: positiveInt,
    idleSeconds: positiveInt,
    execSeconds: positiveInt,
    memoryMb: positiveInt,
    cpuSeconds: positiveInt,
    /** MiB of a session's private home, and of each of its /tmp, /var/tmp and /dev/shm (tmpfs: they count as memory too) */
    homeMb: positiveInt,
    tmpMb: positiveInt,
  }),
  /**
   * what the backends let one client and one source address hold, each backend counting its own. A client is an
   * identity the backends issue (a signed token, the `sagews_id` cookie), never a name the client gives itself.
   */
  admission: z.strictObject({
    sessionsPerClient: positiveInt,
    /** every client of one address together: minting identities is free, so this is what bounds one attacker */
    sessionsPerAddress: positiveInt,
    /** executions running at once, stateless runs and HTTP calls included */
    execsPerClient: positiveInt,
    execsPerAddress: positiveInt,
    /** days an issued identity token (and its cookie) stays valid */
    identityDays: positiveInt,
  }),
  supervisor: z.strictObject({
    /** at most `intensity` restarts in `period` seconds before a supervisor gives up and escalates */
    intensity: z.number().int().min(0, "expected an integer >= 0"),
    period: positiveInt,
    backoffMs: ms,
    backoffCapMs: ms,
  }),
  liveness: z.strictObject({
    /** how often each component is probed; a hung one is killed after failures * intervalMs + timeoutMs */
    intervalMs: ms,
    timeoutMs: ms,
    failures: positiveInt,
  }),
  /** how long a component gets between SIGTERM and SIGKILL */
  shutdownMs: ms,
})

/** The ports the tree binds, by the field that sets them; two components on one port would restart forever. */
const portsOf = (c: z.infer<typeof ConfigSchema>): Array<[string, number]> => [
  ["port", c.port],
  ...(c.postgres.url ? [] : [["postgres.port", c.postgres.port] as [string, number]]),
  ["nginx.port", c.nginx.port],
  ...Array.from({ length: c.backends.count }, (_, i): [string, number] => [`backends.basePort+${i}`, c.backends.basePort + i]),
  ...Array.from({ length: c.workers.count }, (_, i): [string, number] => [`workers.basePort+${i}`, c.workers.basePort + i]),
]

/** Checks across fields: what each field alone cannot say. */
export const CheckedConfigSchema = ConfigSchema.superRefine((c, ctx) => {
  if (c.supervisor.backoffCapMs < c.supervisor.backoffMs) {
    ctx.addIssue({ code: "custom", path: ["supervisor", "backoffCapMs"], message: `expected at least supervisor.backoffMs (${c.supervisor.backoffMs})` })
  }
  const seen = new Map<number, string>()
  for (const [field, port] of portsOf(c)) {
    const other = seen.get(port)
    if (other !== undefined) ctx.addIssue({ code: "custom", path: field.split("+")[0]!.split("."), message: `port ${port} is also ${other}'s: every component needs its own port` })
    else if (port > 65535) ctx.addIssue({ code: "custom", path: field.split("+")[0]!.split("."), message: `port ${port} (${field}) is past 65535` })
    else seen.set(port, field)
  }
})

export type Config = z.infer<typeof ConfigSchema>
