// The shape of sagews's configuration, validated with zod. Defaults live in conf/sagews.json, not here:
// every field is required in the merged result, so a default missing from that file is a startup error.
import { z } from "zod"
import { RolesText } from "./roles.ts"

const port = z.number({ error: "expected a port number" }).int("expected an integer port").min(1, "expected a port 1-65535").max(65535, "expected a port 1-65535")
const positiveInt = z.number({ error: "expected a number" }).int("expected an integer").min(1, "expected an integer >= 1")
const ms = z.number({ error: "expected milliseconds" }).int("expected whole milliseconds").min(1, "expected milliseconds >= 1")

/** http is for a provider on this machine (a test's, a development Keycloak); anything else must be https */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"])

/** http is for a provider on this machine; anything else must be https */
const providerUrl = (what: string, example: string) =>
  z.url({ error: `expected the provider's ${what}, such as ${example}` }).refine((u) => {
    const url = new URL(u)
    return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK.has(url.hostname))
  }, `expected an https ${what} (http only for localhost)`)

/** the providers that speak plain OAuth 2, not OpenID Connect, each with its endpoints and its API (src/accounts/oauth-presets.ts) */
export const PRESETS = ["github", "facebook"] as const

/**
 * A provider people sign in with: an OpenID Connect provider by its issuer URL (discovery at
 * /.well-known/openid-configuration), or a preset of a plain OAuth 2 provider (GitHub, Facebook; `issuer` and `api`
 * then default to the public service's, and name a GitHub Enterprise Server instead), and sagews's client there.
 */
export const SignInProvider = z.strictObject({
  /** the path segment of /api/v1/oidc/{name}/start and the sign-in button's label */
  name: z.string({ error: "expected a name" }).regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "expected 1-32 lowercase letters, digits and -, starting with a letter or digit"),
  preset: z.enum(PRESETS, { error: `expected one of ${PRESETS.join(", ")} (or no preset: an OpenID Connect provider)` }).optional(),
  issuer: providerUrl("issuer URL", "https://accounts.google.com").optional(),
  /** a preset's API base (GitHub's https://api.github.com, Facebook's Graph API https://graph.facebook.com/v19.0) */
  api: providerUrl("API base URL", "https://api.github.com").optional(),
  clientId: z.string({ error: "expected the client id the provider gave sagews" }).min(1, "expected the client id the provider gave sagews"),
  /** the client secret itself, or (better: it stays out of the config and of command lines) a file holding it */
  clientSecret: z.string().min(1, "expected the client secret, or use clientSecretFile").optional(),
  clientSecretFile: z.string().regex(/^\//, "expected an absolute path").optional(),
  /** what is asked for; with OpenID Connect openid is always asked, and email is needed to make or find the account */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, "expected a scope token such as email")).optional(),
})
  .refine((p) => (p.clientSecret === undefined) !== (p.clientSecretFile === undefined), { message: "expected exactly one of clientSecret and clientSecretFile", path: ["clientSecret"] })
  .refine((p) => p.preset !== undefined || p.issuer !== undefined, { message: "expected the provider's issuer URL, such as https://accounts.google.com (or a preset: github, facebook)", path: ["issuer"] })
  .refine((p) => p.preset !== undefined || p.api === undefined, { message: "api is for a preset (github, facebook); an OpenID Connect provider's endpoints come from its discovery", path: ["api"] })

export const ConfigSchema = z.strictObject({
  $comment: z.string().optional(),
  /** the host name stored with every log row and naming this host in the cluster; empty = os.hostname() */
  host: z.string(),
  /** what this host runs: all (one machine, the default), or a comma list of store, web and worker (--role) */
  role: RolesText,
  /**
   * the address this host's components listen on for other hosts (PostgreSQL when postgres.listen, workers,
   * backends); 127.0.0.1 keeps everything on this machine
   */
  address: z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$/, "expected an IP address such as 10.0.0.5"),
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
    /**
     * the own cluster listens on `address` too, for the other hosts: TLS (the cluster's CA) and scram-sha-256 only,
     * a plain-text connection from another host is refused; false = loopback and the local socket only
     */
    listen: z.boolean({ error: "expected true or false" }),
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
    /**
     * the first session uid of worker:1 (as root); worker:N takes the 10,000 uids from uidBase + (N-1) * 10,000. Two
     * trees on one host need ranges that do not overlap: a worker refuses a range another live worker holds.
     */
    uidBase: z.number().int().min(1000, "expected an integer >= 1000").max(2 ** 31 - 1_000_000, "expected at most 2146483648"),
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
  /** sign-in beside local accounts: OpenID Connect providers (src/accounts/oidc.ts); none by default */
  signIn: z.strictObject({
    providers: z.array(SignInProvider, { error: "expected a list of providers" }),
  }),
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
  const names = new Set<string>()
  c.signIn.providers.forEach((p, i) => {
    if (names.has(p.name)) ctx.addIssue({ code: "custom", path: ["signIn", "providers", i, "name"], message: `${JSON.stringify(p.name)} names another provider too: each needs its own name` })
    names.add(p.name)
  })
})

export type Config = z.infer<typeof ConfigSchema>
