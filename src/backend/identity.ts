// Server-issued client identities for admission control: a random client id and its issue time, HMAC-signed with
// <data>/secret/identity.key (shared by every backend of the tree), so any backend can verify what another issued.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { ensureSecret } from "../config/secret.ts"

const CLIENT_ID_BYTES = 16
const VERSION = "v1"
/** a token issued this far in the future still counts: backends' clocks may differ a little */
const CLOCK_SKEW_MS = 60_000
/** v1.<22 chars of client id>.<ms since the epoch>.<43 chars of HMAC-SHA256>, all base64url or digits */
const TOKEN_SHAPE = /^v1\.([A-Za-z0-9_-]{22})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/

export interface Identity {
  /** the server-issued client id: admission counts by it */
  readonly client: string
  /** ms since the epoch */
  readonly issuedAt: number
  readonly expiresAt: number
  readonly token: string
}

export type TokenProblem = "malformed" | "signature" | "future" | "expired"

export type Verified =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly problem: TokenProblem; readonly message: string }

/** Reads the identity key, creating it (random, 0600, in the 0700 secret directory) if it does not exist yet. */
export const ensureIdentityKey = async (dataDir: string): Promise<Buffer> => Buffer.from(await ensureSecret(dataDir, "identity.key"), "utf8")

const DAY_MS = 86_400_000
const lifetime = (ms: number): string => (ms % DAY_MS === 0 ? `${ms / DAY_MS} day${ms === DAY_MS ? "" : "s"}` : `${ms / 1000} s`)

export class IdentityIssuer {
  private readonly key: Buffer
  private readonly maxAgeMs: number
  private readonly now: () => number

  constructor(key: Buffer, maxAgeSeconds: number, now: () => number = Date.now) {
    this.key = key
    this.maxAgeMs = maxAgeSeconds * 1000
    this.now = now
  }

  /** seconds a token lives: the cookie's Max-Age */
  get maxAgeSeconds(): number {
    return this.maxAgeMs / 1000
  }

  /** A new client id, signed. */
  issue(): Identity {
    const client = randomBytes(CLIENT_ID_BYTES).toString("base64url")
    const issuedAt = this.now()
    const body = `${VERSION}.${client}.${issuedAt}`
    return { client, issuedAt, expiresAt: issuedAt + this.maxAgeMs, token: `${body}.${this.sign(body)}` }
  }

  /** Checks a token's shape, signature (in constant time) and age; a refusal says which and what to do. */
  verify(token: string): Verified {
    const match = TOKEN_SHAPE.exec(token)
    if (match === null) {
      return { ok: false, problem: "malformed", message: "the identity token is malformed (expected v1.<client>.<issuedAt>.<signature> as this service issues it); send hello without a token to get a new identity" }
    }
    const [, client = "", issued = "", mac = ""] = match
    // compared as text, not decoded: base64url's last character has spare bits, and a token is either the exact
    // string this service issued or not one at all
    const expected = Buffer.from(this.sign(`${VERSION}.${client}.${issued}`), "utf8")
    const got = Buffer.from(mac, "utf8")
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      return { ok: false, problem: "signature", message: "the identity token's signature does not match: it was altered, or was not issued by this service; send hello without a token to get a new identity" }
    }
    const issuedAt = Number(issued)
    const now = this.now()
    if (issuedAt > now + CLOCK_SKEW_MS) {
      return { ok: false, problem: "future", message: `the identity token claims to be issued at ${new Date(issuedAt).toISOString()}, in the future; send hello without a token to get a new identity` }
    }
    const expiresAt = issuedAt + this.maxAgeMs
    if (now >= expiresAt) {
      return { ok: false, problem: "expired", message: `the identity token expired at ${new Date(expiresAt).toISOString()} (tokens last ${lifetime(this.maxAgeMs)}); send hello without a token to get a new identity` }
    }
    return { ok: true, identity: { client, issuedAt, expiresAt, token } }
  }

  private sign(body: string): string {
    return createHmac("sha256", this.key).update(body, "utf8").digest("base64url")
  }
}
