// Server-issued client identities for admission control (the Identities service): a random client id and its issue
// time (from Effect's Clock), HMAC-signed with <data>/secret/identity.key (shared by every backend of the tree), so
// any backend can verify what another issued. And account tickets: a signed-in caller's account id and an expiry,
// signed with the same key under another prefix, which a page hands to its SockJS `hello` (SockJS does not pass the
// HttpOnly sign-in cookie on, and a cookie would let any site's page open a socket as its reader): the connection's
// sessions then belong to the account.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Context, Data, Effect, Layer } from "effect"
import { ensureSecret } from "../config/secret.ts"
import { Options } from "./options.ts"

const CLIENT_ID_BYTES = 16
const VERSION = "v1"
/** a token issued this far in the future still counts: backends' clocks may differ a little */
const CLOCK_SKEW_MS = 60_000
/** v1.<22 chars of client id>.<ms since the epoch>.<43 chars of HMAC-SHA256>, all base64url or digits */
const TOKEN_SHAPE = /^v1\.([A-Za-z0-9_-]{22})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/
const TICKET_VERSION = "a1"
/** a1.<account id, a uuid>.<expiry, ms since the epoch>.<43 chars of HMAC-SHA256> */
const TICKET_SHAPE = /^a1\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/
/** how long an account ticket is good for: a page asks GET /api/v1/me for a new one when its hello is refused */
export const TICKET_LIFETIME_MS = 3_600_000

export interface Ticket {
  readonly account: string
  readonly expiresAt: number
  readonly ticket: string
}

export type VerifiedTicket =
  | { readonly ok: true; readonly account: string; readonly expiresAt: number }
  | { readonly ok: false; readonly message: string }

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
const HOUR_MS = 3_600_000
const lifetime = (ms: number): string =>
  ms % DAY_MS === 0 ? `${ms / DAY_MS} day${ms === DAY_MS ? "" : "s"}` : ms % HOUR_MS === 0 ? `${ms / HOUR_MS} hour${ms === HOUR_MS ? "" : "s"}` : `${ms / 1000} s`

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
    if (!this.sameSignature(mac, `${VERSION}.${client}.${issued}`)) {
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

  /** A ticket naming `account`, good for TICKET_LIFETIME_MS. */
  ticket(account: string): Ticket {
    const expiresAt = this.now() + TICKET_LIFETIME_MS
    const body = `${TICKET_VERSION}.${account}.${expiresAt}`
    return { account, expiresAt, ticket: `${body}.${this.sign(body)}` }
  }

  /** Checks a ticket's shape, signature (in constant time) and expiry. */
  verifyTicket(ticket: string): VerifiedTicket {
    const again = "ask GET /api/v1/me (signed in) for a new one, or send hello without `account` to stay anonymous"
    const match = TICKET_SHAPE.exec(ticket)
    if (match === null) return { ok: false, message: `the account ticket is malformed (expected a1.<account>.<expiresAt>.<signature> as GET /api/v1/me gives it); ${again}` }
    const [, account = "", expires = "", mac = ""] = match
    if (!this.sameSignature(mac, `${TICKET_VERSION}.${account}.${expires}`)) {
      return { ok: false, message: `the account ticket's signature does not match: it was altered, or was not issued by this service; ${again}` }
    }
    const expiresAt = Number(expires)
    if (this.now() >= expiresAt) return { ok: false, message: `the account ticket expired at ${new Date(expiresAt).toISOString()} (tickets last ${lifetime(TICKET_LIFETIME_MS)}); ${again}` }
    if (expiresAt > this.now() + TICKET_LIFETIME_MS + CLOCK_SKEW_MS) return { ok: false, message: `the account ticket claims to expire at ${new Date(expiresAt).toISOString()}, later than any this service issues; ${again}` }
    return { ok: true, account, expiresAt }
  }

  /** `mac` is the signature of `body`, compared as text in constant time */
  private sameSignature(mac: string, body: string): boolean {
    const expected = Buffer.from(this.sign(body), "utf8")
    const got = Buffer.from(mac, "utf8")
    return got.length === expected.length && timingSafeEqual(got, expected)
  }

  private sign(body: string): string {
    return createHmac("sha256", this.key).update(body, "utf8").digest("base64url")
  }
}

/** The identity key could not be read or created (a data directory that is not ours, a full disk, ...). */
export class IdentityKeyError extends Data.TaggedError("IdentityKeyError")<{
  readonly dataDir: string
  readonly reason: "Unreadable"
  readonly detail: string
}> {
  override get message(): string {
    return `cannot read or create the identity key in ${this.dataDir}/secret: ${this.detail}`
  }
}

export type IdentityService = Pick<IdentityIssuer, "issue" | "verify" | "maxAgeSeconds" | "ticket" | "verifyTicket">

export class Identities extends Context.Service<Identities, IdentityService>()("sagews/backend/Identities") {
  static readonly layer = Layer.effect(Identities, Effect.gen(function*() {
    const { dataDir, identityMaxAge } = yield* Options
    const key = yield* Effect.tryPromise({
      try: () => ensureIdentityKey(dataDir),
      catch: (e) => new IdentityKeyError({ dataDir, reason: "Unreadable", detail: e instanceof Error ? e.message : String(e) }),
    })
    const clock = yield* Clock.Clock
    return new IdentityIssuer(key, identityMaxAge, () => clock.currentTimeMillisUnsafe())
  }))
}
