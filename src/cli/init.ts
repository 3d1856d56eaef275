// `sagews init`: creates the data directory layout, the worker secret and the backends' identity key. Idempotent.
import { chmodSync, mkdirSync } from "node:fs"
import { ensureIdentityKey } from "../backend/identity.ts"
import { dataPaths } from "../config/paths.ts"
import { ensureWorkerSecret } from "../worker/secret.ts"

export const initDataDir = async (dataDir: string): Promise<string> => {
  const p = dataPaths(dataDir)
  mkdirSync(p.data, { recursive: true })
  // 0711: the PostgreSQL system user and session uids must traverse it, but not list it.
  chmodSync(p.data, 0o711)
  for (const dir of [p.log, p.run]) mkdirSync(dir, { recursive: true, mode: 0o755 })
  mkdirSync(p.secret, { recursive: true, mode: 0o700 })
  chmodSync(p.secret, 0o700)
  mkdirSync(p.sessions, { recursive: true, mode: 0o711 })
  await ensureWorkerSecret(p.data)
  await ensureIdentityKey(p.data)
  return p.data
}
