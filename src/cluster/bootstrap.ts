// `sagews init --join TOKEN`: a new host becomes part of the cluster. Decode the token, pin the store's CA by the
// token's fingerprint (src/cluster/discovery.ts) before any password is sent, log in over verified TLS, get a host
// certificate from the store's signer (src/cluster/csr.ts), then write the secrets and, last, join.json (what makes
// every component connect to the store: src/db/credentials.ts). And the host certificate check of every start.
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Data, Effect } from "effect"
import { rolesOf } from "../config/roles.ts"
import { secretPath } from "../config/secret.ts"
import { closeClient, connectRaw } from "../db/client.ts"
import { serviceUrl } from "../db/credentials.ts"
import { DATABASE } from "../db/url.ts"
import { ensureCa, ensureHostCert, hasCaKey, PkiError, prepareTlsDirs, tlsPaths, writeAtomic } from "./ca.ts"
import { type CertRequestError, ensureJoinedHostCert, requestHostCert } from "./csr.ts"
import { discoverCa, type DiscoveryError } from "./discovery.ts"
import { JOIN_FILE_VERSION, type JoinInfo, joinedCluster, joinedUrl, joinPaths } from "./join.ts"
import { decodeToken, type JoinToken, TokenError } from "./token.ts"

/** Joining failed before join.json was written: the data dir is not (yet) part of a cluster. */
export class JoinError extends Data.TaggedError("JoinError")<{
  readonly reason: "Token" | "Role" | "AlreadyJoined" | "Login"
  readonly message: string
}> {}

/** PostgreSQL's invalid_authorization_specification: a role that may not log in (a revoked token's) */
const CANNOT_LOG_IN = "28000"
/** invalid_password: also what an unknown role gets */
const BAD_PASSWORD = "28P01"

/** What a token of each kind lets a host run: a web token's role has the service role's rights, a worker's only a worker's. */
const ALLOWED: Readonly<Record<JoinToken["role"], ReadonlyArray<string>>> = { worker: ["worker"], web: ["web", "worker"] }

export interface JoinOptions {
  readonly dataDir: string
  readonly token: string
  /** --role: what this host will run (worker, web, or both for a web token); default the token's role */
  readonly role?: string | undefined
  /** config `address` and `host` of this host: its certificate names them */
  readonly address: string
  readonly host: string
  /** ms to wait for the store's signer */
  readonly certWaitMs?: number
}

const loginProblem = (error: unknown, token: JoinToken): string => {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : ""
  const text = error instanceof Error ? error.message : String(error)
  const where = `${token.store.address}:${token.store.port}`
  if (code === CANNOT_LOG_IN) return `the store at ${where} refused the token's role ${token.user} (${text}): the token was revoked; make a new one with \`sagews join-token\` on the store host`
  if (code === BAD_PASSWORD) return `the store at ${where} refused the token's password for ${token.user}: the token was revoked or is not from this store; make a new one with \`sagews join-token\``
  return `cannot log in to the store at ${where} over verified TLS: ${text}`
}

/** Logs in once with `url` (verify-full against the pinned CA); fails with what the store said. */
const checkLogin = (url: string, token: JoinToken) =>
  Effect.tryPromise({
    try: async () => {
      const client = await connectRaw(url)
      try {
        await client.query("SELECT 1")
      } finally {
        await closeClient(client)
      }
    },
    catch: (e) => new JoinError({ reason: "Login", message: loginProblem(e, token) }),
  })

/** Writes a secret (0600) whatever was there: a joined host holds the cluster's, not its own. */
const writeSecret = (dataDir: string, name: string, value: string) => writeAtomic(secretPath(dataDir, name), value, 0o600)

export const joinCluster = (o: JoinOptions): Effect.Effect<JoinInfo, JoinError | DiscoveryError | CertRequestError | PkiError> =>
  Effect.gen(function*() {
    const token = yield* Effect.try({
      try: () => decodeToken(o.token),
      catch: (e) => new JoinError({ reason: "Token", message: e instanceof TokenError ? e.message : String(e) }),
    })
    const roleText = o.role ?? token.role
    const roles = [...rolesOf(roleText)]
    const refused = roles.filter((r) => !ALLOWED[token.role].includes(r))
    if (refused.length > 0) {
      return yield* new JoinError({
        reason: "Role",
        message: `a ${token.role} token cannot make this host ${refused.join(", ")} (--role ${roleText}): use --role ${ALLOWED[token.role].join(" or ")}` +
          (token.role === "worker" ? ", or make a web token on the store host (`sagews join-token --role web`)" : ""),
      })
    }
    const existing = yield* Effect.try({ try: () => joinedCluster(o.dataDir), catch: () => undefined }).pipe(Effect.orElseSucceed(() => undefined))
    if (existing !== undefined || (yield* hasCaKey(o.dataDir))) {
      return yield* new JoinError({
        reason: "AlreadyJoined",
        message: existing !== undefined
          ? `${o.dataDir} already joined a cluster (store ${existing.store.address}:${existing.store.port}, token ${existing.tokenId}); use a new --data, or remove ${joinPaths(o.dataDir).cluster} and ${tlsPaths(o.dataDir).tls} first`
          : `${o.dataDir} holds a cluster CA of its own (a store host's data dir); join with a new --data`,
      })
    }
    const caPem = yield* discoverCa(token.store.address, token.store.port, token.ca)
    yield* prepareTlsDirs(o.dataDir)
    const p = tlsPaths(o.dataDir)
    yield* writeAtomic(p.caCert, caPem, 0o644)
    const info: JoinInfo = {
      version: JOIN_FILE_VERSION,
      tokenId: token.id,
      store: token.store,
      user: token.user,
      roles,
      ca: p.caCert,
      joinedAt: new Date().toISOString(),
    }
    const url = joinedUrl(info, token.password, DATABASE)
    yield* checkLogin(url, token)
    yield* requestHostCert(o.dataDir, url, { host: o.host, address: o.address }, o.certWaitMs)
    yield* writeSecret(o.dataDir, path.basename(joinPaths(o.dataDir).password), token.password)
    yield* writeSecret(o.dataDir, "worker.key", token.workerKey)
    if (token.identityKey !== undefined) yield* writeSecret(o.dataDir, "identity.key", token.identityKey)
    const { cluster, joinFile } = joinPaths(o.dataDir)
    yield* Effect.promise(() => fs.mkdir(cluster, { recursive: true, mode: 0o755 }))
    yield* writeAtomic(joinFile, JSON.stringify(info, null, 2) + "\n", 0o644)
    return info
  })

/**
 * On every init and start, for config `address` and `host`: a host that holds the CA makes it once and keeps its own
 * certificate right (ensureHostCert); a joined host asks the store's signer when its certificate no longer fits.
 * Returns why the certificate was (re-)issued, or undefined when it was kept.
 */
export const ensureHostTrust = (dataDir: string, o: { readonly address: string; readonly host: string; readonly dbPort: number }) =>
  Effect.gen(function*() {
    const joined = yield* Effect.try({ try: () => joinedCluster(dataDir), catch: (e) => new PkiError({ message: String(e instanceof Error ? e.message : e) }) })
    if (joined === undefined) {
      yield* ensureCa(dataDir, o.host)
      return yield* ensureHostCert(dataDir, o.address, o.host)
    }
    const url = yield* Effect.tryPromise({
      try: () => serviceUrl(dataDir, { port: o.dbPort }),
      catch: (e) => new PkiError({ message: `the store's URL: ${e instanceof Error ? e.message : String(e)}` }),
    })
    return yield* ensureJoinedHostCert(dataDir, url, o.address, o.host)
  })
