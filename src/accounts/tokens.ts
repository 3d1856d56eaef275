// Random secrets handed out once (web session ids, API tokens) and the SHA-256 that PostgreSQL keeps in their place.
import { createHash, randomBytes } from "node:crypto"

const SECRET_BYTES = 32
/** API tokens start with this, so that one pasted in the wrong place (a log, an issue) is recognisable */
export const API_TOKEN_PREFIX = "sgw_"
/** sgw_ and 43 characters of base64url (32 random bytes) */
export const API_TOKEN_SHAPE = /^sgw_[A-Za-z0-9_-]{43}$/

/** 32 random bytes, base64url (43 characters) */
export const newSecret = (): string => randomBytes(SECRET_BYTES).toString("base64url")

export const newApiToken = (): string => `${API_TOKEN_PREFIX}${newSecret()}`

/** what is stored for a secret: its SHA-256, hex */
export const secretHash = (secret: string): string => createHash("sha256").update(secret, "utf8").digest("hex")
