// Who connects to the cluster sagews owns, with which password: the superuser `postgres` (migrations and role
// setup only) and the service role `sagews` (everything else). Both passwords live in <data>/secret/ (0600).
import { readFile } from "node:fs/promises"
import { joinedCluster, joinedUrl, joinPaths } from "../cluster/join.ts"
import { ensureSecret, secretPath } from "../config/secret.ts"
import { DATABASE, localUrl } from "./url.ts"

/** A role and its password. */
export interface Role {
  readonly user: string
  readonly password: string
}

export interface ClusterCredentials {
  /** initdb's superuser: creates the database, runs the migrations, grants the service role its rights */
  readonly superuser: Role
  /** the backends', logwatch's and `sagews logs`' role: no superuser, no CREATEDB/CREATEROLE; owns the sagews database */
  readonly service: Role
}

export const SUPERUSER = "postgres"
export const SERVICE_ROLE = "sagews"

const secretName = (role: string): string => `pg-${role}.password`

/** `<data>/secret/pg-<role>.password` */
export const passwordFile = (dataDir: string, role: string): string => secretPath(dataDir, secretName(role))

/** The two roles' passwords, generated on first use (the postgres actor sets them in the cluster on every start). */
export const clusterCredentials = async (dataDir: string): Promise<ClusterCredentials> => ({
  superuser: { user: SUPERUSER, password: await ensureSecret(dataDir, secretName(SUPERUSER)) },
  service: { user: SERVICE_ROLE, password: await ensureSecret(dataDir, secretName(SERVICE_ROLE)) },
})

/** Where the service finds PostgreSQL: an operator's `postgres.url`, else the cluster sagews owns on `port`. */
export interface DbTarget {
  readonly port: number
  /** an external PostgreSQL, used as given (the operator's credentials); empty or missing = the own cluster */
  readonly url?: string | undefined
}

/**
 * The URL the service connects with (it holds the password: keep it in memory, see `splitPassword` for children):
 * an operator's `postgres.url`; on a host that joined a cluster (`sagews init --join`), the store's PostgreSQL as
 * the join role, over TLS verified against the cluster CA (src/cluster/join.ts); else the own cluster on `port`.
 */
export const serviceUrl = async (dataDir: string, target: DbTarget): Promise<string> => {
  if (target.url) return target.url
  const joined = joinedCluster(dataDir)
  if (joined !== undefined) {
    const file = joinPaths(dataDir).password
    const password = (await readFile(file, "utf8").catch((e: unknown) => {
      throw new Error(`this host joined a cluster but ${file} cannot be read (${e instanceof Error ? e.message : String(e)}): run \`sagews init --join TOKEN\` again`)
    })).trim()
    return joinedUrl(joined, password, DATABASE)
  }
  return localUrl(target.port, { user: SERVICE_ROLE, password: await ensureSecret(dataDir, secretName(SERVICE_ROLE)) })
}
