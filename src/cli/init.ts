// `sagews init`: creates the data directory layout, the worker secret, the backends' identity key and the
// PostgreSQL passwords. Idempotent.
import { chmodSync, mkdirSync } from "node:fs"
import { ensureIdentityKey } from "../backend/identity.ts"
import { dataPaths } from "../config/paths.ts"
import { clusterCredentials } from "../db/credentials.ts"
import { ensureWorkerSecret } from "../wire/secret.ts"

export const initDataDir = async (dataDir: string): Promise<string> => {
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
  await ensureWorkerSecret(p.data)
  await ensureIdentityKey(p.data)
  await clusterCredentials(p.data)
  return p.data
}
