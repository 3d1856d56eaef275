// SCRAM-SHA-256 verifiers (RFC 5802/7677, PostgreSQL's stored form), computed here so that a plaintext password
// never reaches PostgreSQL's command line, its stdin or a statement it might log: only the verifier does.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto"

/** PostgreSQL's own default (scram_iterations in 16+; fixed in 15) */
const ITERATIONS = 4096
const SALT_BYTES = 16

/**
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, what `pg_authid.rolpassword` holds. PostgreSQL stores
 * a string of this form as given (`ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'`). The password must be printable
 * ASCII (SASLprep leaves it unchanged): sagews's own are hex.
 */
export const scramVerifier = (password: string, salt: Buffer = randomBytes(SALT_BYTES)): string => {
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error("scramVerifier: the password must be printable ASCII without spaces")
  const salted = pbkdf2Sync(password, salt, ITERATIONS, 32, "sha256")
  const clientKey = createHmac("sha256", salted).update("Client Key").digest()
  const storedKey = createHash("sha256").update(clientKey).digest()
  const serverKey = createHmac("sha256", salted).update("Server Key").digest()
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`
}
