// Who an HTTP request is, for the routes that need an account (the Auth service): the signed sign-in cookie or an
// API token (`Authorization: Bearer`), the CSRF token a cookie's state-changing request must carry, and sign-in with
// its rate limit on failures per email and per source address (counted in PostgreSQL, so over every backend).
import { createHmac, timingSafeEqual } from "node:crypto"
import { Clock, Context, Data, Effect, Layer, type Result } from "effect"
import { ensureSecret } from "../config/secret.ts"
import { Accounts, type AccountsError, type AccountsService } from "../accounts/service.ts"
import { type Account, normalizeEmail } from "../accounts/store.ts"
import { API_TOKEN_SHAPE } from "../accounts/tokens.ts"
import { Options } from "./options.ts"

/** the cookie that carries a web session: v1.<session id>.<HMAC-SHA256 of v1.<session id>>, base64url */
export const SESSION_COOKIE = "sagews_session"
/** the header a cookie-authenticated POST, PUT or DELETE carries the session's CSRF token in */
export const CSRF_HEADER = "X-CSRF-Token"
const COOKIE_SHAPE = /^v1\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/
const BEARER_SHAPE = /^Bearer +(\S+)$/
const STATE_CHANGING = new Set(["POST", "PUT", "DELETE", "PATCH"])

export type Caller =
  | { readonly type: "anonymous" }
  /** credentials that were sent and are not good: a Bearer token that is unknown, revoked or whose account is disabled */
  | { readonly type: "refused"; readonly message: string }
  | { readonly type: "session"; readonly account: Account; readonly sessionId: string; readonly csrf: string }
  | { readonly type: "token"; readonly account: Account }

export type SignIn =
  | { readonly type: "ok"; readonly account: Account; readonly sessionId: string; readonly csrf: string }
  /** the email is unknown, the password wrong, or the account disabled: which, the caller is not told */
  | { readonly type: "invalid" }
  | { readonly type: "limited"; readonly by: "email" | "address"; readonly max: number; readonly retryAfterMs: number }

/** Signs short texts a cookie carries for one purpose (an OpenID Connect sign-in in progress), with a key derived from the session key. */
export interface Sealer {
  seal(text: string): string
  /** the text when `value` is one `seal` made for this purpose, else undefined */
  open(value: string | undefined): string | undefined
}

export interface AuthService {
  signIn(email: string, password: string, address: string): Effect.Effect<SignIn, AccountsError>
  /** starts a web session for an account another way has vouched for (an OpenID Connect provider), as a good password does */
  startSession(account: Account, address: string): Effect.Effect<Extract<SignIn, { readonly type: "ok" }>, AccountsError>
  sealer(purpose: string): Sealer
  authenticate(headers: { readonly cookie: string | undefined; readonly authorization: string | undefined }): Effect.Effect<Caller, AccountsError>
  signOut(sessionId: string): Effect.Effect<void, AccountsError>
  /** what is wrong when `method` changes state and the caller's cookie session is not matched by `header`, else undefined */
  csrfProblem(caller: Caller, method: string, header: string | undefined): string | undefined
  /** the Set-Cookie value that starts (`sessionId`) or ends (undefined) the web session; Secure over TLS */
  cookie(sessionId: string | undefined, secure: boolean): string
}

/** The value of one cookie of a Cookie header, if it has it. */
export const cookieValue = (header: string | undefined, name: string): string | undefined => {
  for (const part of (header ?? "").split(";")) {
    const at = part.indexOf("=")
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim()
  }
  return undefined
}

const sameText = (a: string, b: string): boolean => {
  const x = Buffer.from(a, "utf8")
  const y = Buffer.from(b, "utf8")
  return x.length === y.length && timingSafeEqual(x, y)
}

export const makeAuth = (accounts: AccountsService, key: Buffer, limits: {
  readonly sessionMaxAge: number
  readonly failuresPerEmail: number
  readonly failuresPerAddress: number
  readonly windowSeconds: number
}): AuthService => {
  const mac = (text: string): string => createHmac("sha256", key).update(text, "utf8").digest("base64url")
  const csrfOf = (sessionId: string): string => mac(`csrf.${sessionId}`)
  const windowMs = limits.windowSeconds * 1000
  const sessionFromCookie = (value: string | undefined): string | undefined => {
    const m = value === undefined ? null : COOKIE_SHAPE.exec(value)
    return m?.[1] !== undefined && m[2] !== undefined && sameText(m[2], mac(`v1.${m[1]}`)) ? m[1] : undefined
  }
  const startSession = Effect.fn("Auth.startSession")(function*(account: Account, address: string) {
    const session = yield* accounts.startSession(account, address, limits.sessionMaxAge * 1000)
    return { type: "ok", account, sessionId: session.id, csrf: csrfOf(session.id) } as const
  })
  return {
    startSession,
    sealer: (purpose) => {
      const derived = createHmac("sha256", key).update(`derive.${purpose}`, "utf8").digest()
      const sign = (text: string): string => createHmac("sha256", derived).update(text, "utf8").digest("base64url")
      return {
        seal: (text) => `${Buffer.from(text, "utf8").toString("base64url")}.${sign(text)}`,
        open: (value) => {
          const [body, signature, ...rest] = (value ?? "").split(".")
          if (body === undefined || signature === undefined || rest.length > 0) return undefined
          const text = Buffer.from(body, "base64url").toString("utf8")
          return sameText(signature, sign(text)) ? text : undefined
        },
      }
    },
    signIn: Effect.fn("Auth.signIn")(function*(email: string, password: string, address: string) {
      const keys = [
        { key: `email:${normalizeEmail(email)}`, max: limits.failuresPerEmail, by: "email" as const },
        { key: `address:${address}`, max: limits.failuresPerAddress, by: "address" as const },
      ]
      const now = yield* Clock.currentTimeMillis
      for (const { key, max, by } of keys) {
        const failures = yield* accounts.recentFailures(key, windowMs, max)
        const oldest = failures[max - 1]
        // refused before the password is looked at: a guess made while limited tells nothing
        if (oldest !== undefined) return { type: "limited", by, max, retryAfterMs: Math.max(1, oldest + windowMs - now) } satisfies SignIn
      }
      const account = yield* accounts.checkPassword(email, password)
      if (account === undefined) {
        yield* accounts.recordFailure(keys.map((k) => k.key), windowMs)
        return { type: "invalid" } satisfies SignIn
      }
      yield* accounts.clearFailures(keys[0]!.key)
      return yield* startSession(account, address)
    }),
    authenticate: Effect.fn("Auth.authenticate")(function*(headers: { readonly cookie: string | undefined; readonly authorization: string | undefined }) {
      if (headers.authorization !== undefined) {
        const token = BEARER_SHAPE.exec(headers.authorization)?.[1]
        if (token === undefined) return { type: "refused", message: "the Authorization header must be `Bearer TOKEN`, with a token from `sagews user token EMAIL`" } satisfies Caller
        const account = API_TOKEN_SHAPE.test(token) ? yield* accounts.tokenAccount(token) : undefined
        if (account === undefined) return { type: "refused", message: "the API token is not valid: unknown, revoked, or its account is disabled; an operator makes a new one with `sagews user token EMAIL`" } satisfies Caller
        return { type: "token", account } satisfies Caller
      }
      const sessionId = sessionFromCookie(cookieValue(headers.cookie, SESSION_COOKIE))
      const account = sessionId === undefined ? undefined : yield* accounts.sessionAccount(sessionId)
      if (sessionId === undefined || account === undefined) return { type: "anonymous" } satisfies Caller
      return { type: "session", account, sessionId, csrf: csrfOf(sessionId) } satisfies Caller
    }),
    signOut: (sessionId) => accounts.endSession(sessionId),
    csrfProblem: (caller, method, header) => {
      if (caller.type !== "session" || !STATE_CHANGING.has(method)) return undefined
      if (header === undefined || header === "") return `a ${method} signed in by the session cookie must carry the ${CSRF_HEADER} header (the csrf of the sign-in reply or of GET /api/v1/me)`
      return sameText(header, caller.csrf) ? undefined : `the ${CSRF_HEADER} header does not match this session's token (the csrf of the sign-in reply or of GET /api/v1/me)`
    },
    cookie: (sessionId, secure) => {
      const value = sessionId === undefined ? "" : `v1.${sessionId}.${mac(`v1.${sessionId}`)}`
      const maxAge = sessionId === undefined ? 0 : limits.sessionMaxAge
      return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`
    },
  }
}

/** The session key could not be read or created. */
export class SessionKeyError extends Data.TaggedError("SessionKeyError")<{
  readonly dataDir: string
  readonly detail: string
}> {
  override get message(): string {
    return `cannot read or create the session key in ${this.dataDir}/secret: ${this.detail}`
  }
}

export class Auth extends Context.Service<Auth, AuthService>()("sagews/backend/Auth") {
  /** signs cookies with <data>/secret/session.key, shared by every backend of the tree */
  static readonly layer = Layer.effect(Auth, Effect.gen(function*() {
    const { dataDir, signIn } = yield* Options
    const key = yield* Effect.tryPromise({
      try: () => ensureSecret(dataDir, "session.key"),
      catch: (e) => new SessionKeyError({ dataDir, detail: e instanceof Error ? e.message : String(e) }),
    })
    return makeAuth(yield* Accounts, Buffer.from(key, "utf8"), signIn)
  }))
}

/** The Auth service as the promise-based HTTP handlers call it: each call settles with its Result, never rejects but when the backend stops. */
export interface AuthCalls {
  signIn(email: string, password: string, address: string): Promise<Result.Result<SignIn, AccountsError>>
  authenticate(headers: { readonly cookie: string | undefined; readonly authorization: string | undefined }): Promise<Result.Result<Caller, AccountsError>>
  signOut(sessionId: string): Promise<Result.Result<void, AccountsError>>
  csrfProblem: AuthService["csrfProblem"]
  cookie: AuthService["cookie"]
}

export const authCalls = (auth: AuthService, run: <A>(effect: Effect.Effect<A>) => Promise<A>): AuthCalls => ({
  signIn: (email, password, address) => run(Effect.result(auth.signIn(email, password, address))),
  authenticate: (headers) => run(Effect.result(auth.authenticate(headers))),
  signOut: (sessionId) => run(Effect.result(auth.signOut(sessionId))),
  csrfProblem: auth.csrfProblem,
  cookie: auth.cookie,
})
