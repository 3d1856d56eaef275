// Every tunable of the backend, with what it limits and why that default; parsed from the command line
// (`--data DIR --port N --id ID --workers H:P,... [--db URL] [--cache PATH|H:P] [--cache-ttl S] [--config FILE]
// [--config-json JSON]`, and the JSON of SAGEWS_BACKEND_CONFIG: the tree passes the config's admission and sign-in
// sections there, in the environment, which only the backend's own user can read, never on the command line, which
// every user of the host can: a provider's client secret is in it) into the Options service.
import { readFileSync } from "node:fs"
import { hostname } from "node:os"
import { Context, Data, Effect, Layer } from "effect"
import { z } from "zod"
import { parse, UsageError } from "../cli/args.ts"
import { SignInProvider } from "../config/schema.ts"

export const BACKEND_DEFAULTS = {
  admission: {
    /** live sessions one client (a server-issued identity: a browser) may hold on this backend: a tab or two, a terminal */
    sessionsPerClient: 8,
    /**
     * live sessions of every client of one source address on this backend: identities cost nothing to get, so this
     * is what bounds one attacker; high enough for a classroom behind one NAT address
     */
    sessionsPerAddress: 40,
    /** live sessions this backend routes: each costs a kernel on some worker */
    sessionsPerBackend: 400,
    /** executions (session and stateless) one client may have running at once */
    execsPerClient: 4,
    /** executions of every client of one source address running at once on this backend (HTTP callers without a cookie included) */
    execsPerAddress: 20,
    /** executions this backend may have running at once on the workers */
    execsPerBackend: 200,
    /** ms a refused client is told to wait before trying again */
    retryAfterMs: 2_000,
  },
  /** limits of a stateless run (s, MiB): a single cell is short; a cached answer must not take minutes */
  statelessLimits: { wall: 60, exec: 30, idle: 60, memory: 1024, cpu: 60 },
  /** ms to connect to and authenticate with a worker */
  workerConnectTimeout: 5_000,
  /** ms between reconnect attempts to a lost worker, doubling up to the cap (the links supervisor's backoff) */
  workerReconnect: { initial: 100, max: 5_000 },
  /** s a session can live at most (the workers' wall limit): older registry rows are not counted as load */
  sessionMaxAge: 4 * 3600,
  /** ms a session whose worker connection is lost waits for the worker before it is reported ended */
  workerLostGrace: 15_000,
  /** ms one memcached operation may take before it counts as a miss */
  cacheTimeout: 200,
  /** largest cached result (memcached's default item limit is 1 MiB) */
  cacheMaxBytes: 900 * 1024,
  /** bytes of an HTTP request body */
  maxBodyBytes: 512 * 1024,
  /** s an issued identity token (and its cookie) stays valid: long enough that a returning browser keeps its id */
  identityMaxAge: 30 * 86_400,
  /** sign-in (src/backend/auth.ts): how long a web session lasts, and the rate limit on failed sign-ins */
  signIn: {
    /** s a web session (and its cookie) lasts after sign-in */
    sessionMaxAge: 14 * 86_400,
    /** failed sign-ins of one email within the window: enough for typos, too few to guess a password */
    failuresPerEmail: 5,
    /** failed sign-ins from one source address within the window, whatever the emails: a classroom behind one NAT address */
    failuresPerAddress: 30,
    /** s the window slides over */
    windowSeconds: 15 * 60,
    /** OpenID Connect providers (the config's signIn.providers; src/accounts/oidc.ts): none, local accounts only */
    providers: [] as Array<z.infer<typeof SignInProvider>>,
  },
}

const Admission = z.object({
  sessionsPerClient: z.number().int().positive(),
  sessionsPerAddress: z.number().int().positive(),
  sessionsPerBackend: z.number().int().positive(),
  execsPerClient: z.number().int().positive(),
  execsPerAddress: z.number().int().positive(),
  execsPerBackend: z.number().int().positive(),
  retryAfterMs: z.number().int().positive(),
}).strict()

const HostPort = z.string().regex(/^[A-Za-z0-9_.:-]+:\d{1,5}$/, "expected host:port")
/** memcached: its unix socket (what the tree passes) or host:port */
const CacheAddress = z.union([z.string().regex(/^\/\S+$/, "expected an absolute socket path"), HostPort])

export const BackendOptions = z.object({
  id: z.string().min(1),
  dataDir: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  host: z.string(),
  /** host:port where haproxies on other hosts reach this backend (announced in the registry); none: not announced */
  advertise: HostPort.optional(),
  /** the machine's name in the registry (the config's `host`) */
  machine: z.string().min(1),
  /** discover workers in the registry (LISTEN/NOTIFY) besides --workers: needs --db */
  discover: z.boolean(),
  workers: z.array(HostPort),
  db: z.string().optional(),
  cache: CacheAddress.optional(),
  cacheTtl: z.number().int().positive(),
  admission: Admission,
  statelessLimits: z.object({ wall: z.number(), exec: z.number(), idle: z.number(), memory: z.number(), cpu: z.number() }).strict(),
  workerConnectTimeout: z.number().int().positive(),
  workerReconnect: z.object({ initial: z.number().int().positive(), max: z.number().int().positive() }).strict(),
  workerLostGrace: z.number().int().positive(),
  sessionMaxAge: z.number().int().positive(),
  cacheTimeout: z.number().int().positive(),
  cacheMaxBytes: z.number().int().positive(),
  maxBodyBytes: z.number().int().positive(),
  identityMaxAge: z.number().int().positive(),
  signIn: z.object({
    sessionMaxAge: z.number().int().positive(),
    failuresPerEmail: z.number().int().positive(),
    failuresPerAddress: z.number().int().positive(),
    windowSeconds: z.number().int().positive(),
    providers: z.array(SignInProvider),
  }).strict(),
}).strict()
export type BackendOptions = z.infer<typeof BackendOptions>

/** Defaults, then overrides; an error names the field and the value. */
export const makeBackendOptions = (overrides: Record<string, unknown>): BackendOptions => {
  const admission = { ...BACKEND_DEFAULTS.admission, ...(overrides["admission"] as object | undefined) }
  const signIn = { ...BACKEND_DEFAULTS.signIn, ...(overrides["signIn"] as object | undefined) }
  const merged = { host: "127.0.0.1", machine: hostname(), discover: false, cacheTtl: 3600, ...BACKEND_DEFAULTS, ...overrides, admission, signIn }
  const parsed = BackendOptions.safeParse(merged)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UsageError(`backend option ${issue?.path.join(".") ?? "?"}: ${issue?.message ?? "invalid"}`)
  }
  return parsed.data
}

const jsonObject = (option: string, text: string): Record<string, unknown> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    throw new UsageError(`${option} is not JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  const parsed = z.record(z.string(), z.unknown()).safeParse(value)
  if (!parsed.success) throw new UsageError(`${option} expects a JSON object, got ${JSON.stringify(value)}`)
  return parsed.data
}

/** the environment variable the tree passes the backend's config in (JSON, as --config-json) */
export const BACKEND_CONFIG_ENV = "SAGEWS_BACKEND_CONFIG"

export const parseBackendArgs = (argv: ReadonlyArray<string>, env: Readonly<Record<string, string | undefined>> = process.env): BackendOptions => {
  const { values } = parse(argv, {
    data: { type: "string" },
    port: { type: "string" },
    id: { type: "string" },
    workers: { type: "string" },
    db: { type: "string" },
    cache: { type: "string" },
    "cache-ttl": { type: "string" },
    config: { type: "string" },
    "config-json": { type: "string" },
  })
  if (values.data === undefined) throw new UsageError("--data DIR is required")
  if (values.port === undefined || !/^\d+$/.test(values.port)) throw new UsageError(`--port expects a whole number, got ${JSON.stringify(values.port)}`)
  const file = values.config !== undefined ? jsonObject("--config", readFileSync(values.config, "utf8")) : {}
  const passed = env[BACKEND_CONFIG_ENV] !== undefined ? jsonObject(BACKEND_CONFIG_ENV, env[BACKEND_CONFIG_ENV]) : {}
  const given = values["config-json"] !== undefined ? jsonObject("--config-json", values["config-json"]) : {}
  const inline = { ...passed, ...given, admission: { ...(passed["admission"] as object | undefined), ...(given["admission"] as object | undefined) } }
  const ttl = values["cache-ttl"]
  if (ttl !== undefined && !/^\d+$/.test(ttl)) throw new UsageError(`--cache-ttl expects whole seconds, got ${JSON.stringify(ttl)}`)
  return makeBackendOptions({
    ...file,
    ...inline,
    admission: { ...(file["admission"] as object | undefined), ...(inline["admission"] as object | undefined) },
    id: values.id ?? "backend",
    dataDir: values.data,
    port: Number(values.port),
    workers: (values.workers ?? "").split(",").filter((w) => w !== ""),
    ...(values.db ? { db: values.db } : {}),
    ...(values.cache ? { cache: values.cache } : {}),
    ...(ttl !== undefined ? { cacheTtl: Number(ttl) } : {}),
  })
}

/** The command line could not be turned into options: a bad argument or value (Usage), or an unreadable --config file. */
export class OptionsError extends Data.TaggedError("OptionsError")<{
  readonly reason: "Usage" | "Unreadable"
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

/** The backend's options, once parsed: every service reads its settings here. */
export class Options extends Context.Service<Options, BackendOptions>()("sagews/backend/Options") {
  /** From the command line; a bad argument fails with an OptionsError that names it. */
  static readonly fromArgv = (argv: ReadonlyArray<string>): Layer.Layer<Options, OptionsError> =>
    Layer.effect(Options, Effect.try({
      try: () => parseBackendArgs(argv),
      catch: (e) => new OptionsError({ reason: e instanceof UsageError ? "Usage" : "Unreadable", detail: e instanceof Error ? e.message : String(e) }),
    }))

  static readonly layer = (options: BackendOptions): Layer.Layer<Options> => Layer.succeed(Options, options)
}
