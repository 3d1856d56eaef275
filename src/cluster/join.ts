// What a joined host knows about its cluster (<data>/cluster/join.json: no secrets) and the URL its components
// reach the store's PostgreSQL with. Kept small and synchronous: src/db/credentials.ts reads it on every start.
import { readFileSync } from "node:fs"
import { isIP } from "node:net"
import * as path from "node:path"
import { dataPaths } from "../config/paths.ts"
import { secretPath } from "../config/secret.ts"

export const JOIN_FILE_VERSION = 1
/** the join role's password, beside the other secrets (0600 in the 0700 secret/) */
export const JOIN_PASSWORD_SECRET = "pg-join.password"

export interface JoinInfo {
  readonly version: typeof JOIN_FILE_VERSION
  /** the join_tokens id this host joined with */
  readonly tokenId: string
  /** the store's PostgreSQL as this host reaches it */
  readonly store: { readonly address: string; readonly port: number }
  /** the PostgreSQL role this host logs in as */
  readonly user: string
  /** what the token let this host be (worker or web) */
  readonly roles: ReadonlyArray<string>
  /** the cluster CA's certificate, fetched and pinned by fingerprint at join */
  readonly ca: string
  readonly joinedAt: string
}

export const joinPaths = (dataDir: string) => {
  const cluster = path.join(dataPaths(dataDir).data, "cluster")
  return { cluster, joinFile: path.join(cluster, "join.json"), password: secretPath(dataDir, JOIN_PASSWORD_SECRET) }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** Checks what was read back from join.json; the error names the file and the field. */
const checkJoinInfo = (file: string, value: unknown): JoinInfo => {
  const bad = (field: string) => new Error(`${file}: ${field} is missing or wrong; run \`sagews init --join TOKEN\` again with a new token`)
  if (!isRecord(value) || value.version !== JOIN_FILE_VERSION) throw bad("version")
  const store = value.store
  if (!isRecord(store) || typeof store.address !== "string" || isIP(store.address) === 0) throw bad("store.address")
  if (typeof store.port !== "number" || !Number.isInteger(store.port)) throw bad("store.port")
  for (const field of ["tokenId", "user", "ca", "joinedAt"] as const) if (typeof value[field] !== "string") throw bad(field)
  if (!Array.isArray(value.roles) || !value.roles.every((r) => typeof r === "string")) throw bad("roles")
  return value as unknown as JoinInfo
}

/** This host's join.json, or undefined when it did not join a cluster (it is a store, or runs alone). */
export const joinedCluster = (dataDir: string): JoinInfo | undefined => {
  const file = joinPaths(dataDir).joinFile
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return undefined
    throw error
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new Error(`${file} is not valid JSON; run \`sagews init --join TOKEN\` again with a new token`)
  }
  return checkJoinInfo(file, parsed)
}

/** The store's PostgreSQL for a joined host: TLS verified against the cluster CA, the host name checked against the certificate. */
export const joinedUrl = (info: JoinInfo, password: string, database: string): string => {
  const host = info.store.address.includes(":") ? `[${info.store.address}]` : info.store.address
  const url = new URL(`postgres://${host}:${info.store.port}/${encodeURIComponent(database)}`)
  url.username = encodeURIComponent(info.user)
  url.password = encodeURIComponent(password)
  url.searchParams.set("sslmode", "verify-full")
  url.searchParams.set("sslrootcert", info.ca)
  return url.toString()
}
