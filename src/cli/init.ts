// `sagews init`: creates the data directory layout, the worker secret, the backends' identity key, the PostgreSQL
// passwords, and the cluster's trust: on a host of its own the CA (once) and this host's certificate for its
// address; `sagews init --join TOKEN` instead joins an existing cluster (src/cluster/bootstrap.ts). Idempotent.
import { chmodSync, mkdirSync } from "node:fs"
import { Effect } from "effect"
import { ensureIdentityKey } from "../backend/identity.ts"
import { ensureHostTrust, joinCluster } from "../cluster/bootstrap.ts"
import type { JoinInfo } from "../cluster/join.ts"
import { dataPaths } from "../config/paths.ts"
import { clusterCredentials } from "../db/credentials.ts"
import { ensureWorkerSecret } from "../wire/secret.ts"

/** This host as the cluster sees it: config `address` and `host`, and postgres.port (a joined host's store URL). */
export interface HostTrust {
  readonly address: string
  readonly host: string
  readonly dbPort: number
}

/** The directories, with the modes every component relies on. */
const makeLayout = (dataDir: string): string => {
  const p = dataPaths(dataDir)
  mkdirSync(p.data, { recursive: true })
  // 0711: the PostgreSQL system user and session uids must traverse it, but not list it.
  chmodSync(p.data, 0o711)
  // run/: the PostgreSQL and memcached system users pass through it to their own 0700 socket directories.
  mkdirSync(p.run, { recursive: true, mode: 0o755 })
  // log/: read by root alone (logwatch); no session uid has anything to read there.
  mkdirSync(p.log, { recursive: true, mode: 0o700 })
  chmodSync(p.log, 0o700)
  mkdirSync(p.secret, { recursive: true, mode: 0o700 })
  chmodSync(p.secret, 0o700)
  mkdirSync(p.sessions, { recursive: true, mode: 0o711 })
  // pub/: published worksheets, read by nginx's workers (user nobody)
  mkdirSync(p.pub, { recursive: true, mode: 0o755 })
  chmodSync(p.pub, 0o755)
  return p.data
}

const ensureSecrets = async (data: string): Promise<void> => {
  await ensureWorkerSecret(data)
  await ensureIdentityKey(data)
  await clusterCredentials(data)
}

/**
 * The layout and the secrets; with `trust` (what `sagews init` passes) also the CA and the host certificate (a
 * joined data dir asks its store for a new certificate when its address changed). Returns the data dir.
 */
export const initDataDir = async (dataDir: string, trust?: HostTrust): Promise<string> => {
  const data = makeLayout(dataDir)
  await ensureSecrets(data)
  if (trust !== undefined) await Effect.runPromise(ensureHostTrust(data, trust))
  return data
}

/** `sagews init --join TOKEN`: the layout, then the cluster's CA, secrets and this host's certificate from the token. */
export const joinDataDir = async (
  dataDir: string,
  o: { readonly token: string; readonly role: string | undefined; readonly address: string; readonly host: string; readonly certWaitMs?: number },
): Promise<JoinInfo> => {
  const data = makeLayout(dataDir)
  const info = await Effect.runPromise(joinCluster({ dataDir: data, ...o }))
  await ensureSecrets(data)
  return info
}
