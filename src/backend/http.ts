// The backend's plain HTTP routes: GET /healthz, POST /api/v1/execute (stateless single cell, outputs as JSON),
// GET /api/v1/identity (the caller's server-issued identity, in the `sagews_id` cookie), GET /api/v1/status
// (counters for operators and benchmarks), POST /api/v1/login, POST /api/v1/logout and GET /api/v1/me (accounts,
// auth.ts), OpenID Connect sign-in under /api/v1/oidc (oidc.ts), everything under /api/v1/worksheets (worksheets.ts)
// but its share links (shares.ts, with /api/v1/shared), and /api/v1/permalinks (permalinks.ts). Bodies are
// size-limited and validated with zod.
import type { IncomingMessage, ServerResponse } from "node:http"
import { z } from "zod"
import { MAX_PASSWORD_CHARS } from "../accounts/password.ts"
import { MAX_EMAIL_CHARS } from "../accounts/store.ts"
import { describeIssue, HttpExecuteRequest, type HttpExecuteReply, type HttpIdentityReply } from "../protocol/browser.ts"
import { sourceAddress } from "./address.ts"
import type { Requester } from "./admission.ts"
import { type Caller, cookieValue, CSRF_HEADER } from "./auth.ts"
import type { BackendContext } from "./context.ts"
import { files, isFilesRoute } from "./files.ts"
import { oidc } from "./oidc.ts"
import { isPermalinkRoute, permalinks } from "./permalinks.ts"
import { readText, reply } from "./reply.ts"
import { isShareRoute, shares } from "./shares.ts"
import type { Identity } from "./identity.ts"
import { startRun } from "./stateless.ts"
import { type SignedIn, worksheets } from "./worksheets.ts"

/** the header that names a request (haproxy sets one when the client did not): the same id again is the same run */
const REQUEST_ID = "x-request-id"
const MAX_REQUEST_ID_CHARS = 128

/** the cookie that carries a caller's identity token */
export const IDENTITY_COOKIE = "sagews_id"

/**
 * The caller's identity: the one its cookie proves, else a new one, set in an HttpOnly cookie on the reply. A cookie
 * that does not verify (altered, expired, from another installation) is replaced rather than refused: a browser cannot
 * clear an HttpOnly cookie by itself. Either way the caller's address caps what all its identities hold.
 */
const identify = (ctx: BackendContext, req: IncomingMessage): { identity: Identity; setCookie?: string } => {
  const token = cookieValue(req.headers.cookie, IDENTITY_COOKIE)
  const verified = token !== undefined ? ctx.identities.verify(token) : undefined
  if (verified?.ok === true) return { identity: verified.identity }
  const identity = ctx.identities.issue()
  return { identity, setCookie: `${IDENTITY_COOKIE}=${identity.token}; Path=/; Max-Age=${ctx.identities.maxAgeSeconds}; HttpOnly; SameSite=Lax` }
}

const requester = (req: IncomingMessage, identity: Identity): Requester => ({
  client: `id:${identity.client}`,
  address: sourceAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"]),
})

const execute = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  const requestId = req.headers[REQUEST_ID]
  if (Array.isArray(requestId) || (requestId !== undefined && (requestId.length === 0 || requestId.length > MAX_REQUEST_ID_CHARS))) {
    req.resume()
    return reply(res, 400, { error: "invalid", message: `the ${REQUEST_ID} header must be one value of 1 to ${MAX_REQUEST_ID_CHARS} characters` })
  }
  const body = await readText(req, ctx.options.maxBodyBytes)
  if (body === "too-large") return reply(res, 413, { error: "invalid", message: `the request body is larger than ${ctx.options.maxBodyBytes} bytes` })
  let raw: unknown
  try {
    raw = JSON.parse(body)
  } catch (e) {
    return reply(res, 400, { error: "invalid", message: `the body is not JSON: ${e instanceof Error ? e.message : String(e)}` })
  }
  const parsed = HttpExecuteRequest.safeParse(raw)
  if (!parsed.success) return reply(res, 400, { error: "invalid", message: `invalid request: ${describeIssue(parsed.error)}` })
  const { identity, setCookie } = identify(ctx, req)
  const cookieHeader: Record<string, string> = setCookie !== undefined ? { "set-cookie": setCookie } : {}
  const who = requester(req, identity)
  // a caller without an identity cookie gets a new identity each time: its id is scoped by its address instead
  const key = requestId !== undefined ? { scope: setCookie === undefined ? who.client : `addr:${who.address}`, id: requestId } : undefined
  const run = startRun(ctx, { ...parsed.data, who, key, buffered: true }, () => undefined)
  res.on("close", () => {
    if (!res.writableFinished) run.cancel("the HTTP client went away")
  })
  const result = await run.done
  const { refusal } = result
  if (refusal !== undefined) {
    return reply(res, 429, { error: "limit", message: refusal.message, limit: refusal.limit, max: refusal.max, retryAfterMs: refusal.retryAfterMs }, { "retry-after": String(Math.ceil(refusal.retryAfterMs / 1000)), ...cookieHeader })
  }
  if (result.noWorker === true) return reply(res, 503, { error: "no_worker", message: result.message, retryAfterMs: 1_000 }, { "retry-after": "1", ...cookieHeader })
  const answer: HttpExecuteReply = {
    status: result.status,
    cached: result.cached,
    ms: result.ms,
    outputs: [...result.outputs],
    ...(result.message !== undefined ? { message: result.message } : {}),
    ...(result.limit !== undefined ? { limit: result.limit } : {}),
  }
  reply(res, 200, answer, cookieHeader)
}

/** the body of POST /api/v1/login */
const LoginRequest = z.strictObject({
  email: z.string().min(1).max(MAX_EMAIL_CHARS),
  password: z.string().min(1).max(MAX_PASSWORD_CHARS),
})

/** sign-in bodies are small: an email and a password */
const MAX_LOGIN_BODY_BYTES = 4 * 1024
const WRONG_CREDENTIALS = "the email or the password is wrong (or the account is disabled)"

/** haproxy says X-Forwarded-Proto: https for a request that came over TLS */
const overTls = (req: IncomingMessage): boolean => req.headers["x-forwarded-proto"] === "https" || ("encrypted" in req.socket && req.socket.encrypted === true)

const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name.toLowerCase()]
  return Array.isArray(value) ? value.join(", ") : value
}

const unavailable = (res: ServerResponse, message: string): void => reply(res, 503, { error: "unavailable", message, retryAfterMs: 1_000 }, { "retry-after": "1" })

const login = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  // a cross-site form cannot send JSON without asking first (CORS): the sign-in cannot be forged from another page
  if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
    req.resume()
    return reply(res, 415, { error: "invalid", message: "send the sign-in as JSON (content-type: application/json) with email and password" })
  }
  const body = await readText(req, MAX_LOGIN_BODY_BYTES)
  if (body === "too-large") return reply(res, 413, { error: "invalid", message: `the request body is larger than ${MAX_LOGIN_BODY_BYTES} bytes` })
  let raw: unknown
  try {
    raw = JSON.parse(body)
  } catch (e) {
    return reply(res, 400, { error: "invalid", message: `the body is not JSON: ${e instanceof Error ? e.message : String(e)}` })
  }
  const parsed = LoginRequest.safeParse(raw)
  if (!parsed.success) return reply(res, 400, { error: "invalid", message: `invalid sign-in: ${describeIssue(parsed.error)}` })
  const address = sourceAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"])
  const result = await ctx.auth.signIn(parsed.data.email, parsed.data.password, address)
  if (result._tag === "Failure") {
    ctx.log.warn(`sign-in: ${result.failure.message}`)
    return unavailable(res, result.failure.reason === "NoDatabase" ? "sign-in needs PostgreSQL, and this backend runs without one" : "sign-in is unavailable for a moment (the account store cannot be reached); try again")
  }
  const outcome = result.success
  if (outcome.type === "limited") {
    const whose = outcome.by === "email" ? "this email" : `your address (${address})`
    return reply(res, 429, {
      error: "limit",
      message: `too many failed sign-ins: ${whose} had ${outcome.max} within ${ctx.options.signIn.windowSeconds / 60} minutes; try again in ${Math.ceil(outcome.retryAfterMs / 1000)} s`,
      limit: outcome.by === "email" ? "failuresPerEmail" : "failuresPerAddress",
      max: outcome.max,
      retryAfterMs: outcome.retryAfterMs,
    }, { "retry-after": String(Math.ceil(outcome.retryAfterMs / 1000)) })
  }
  if (outcome.type === "invalid") return reply(res, 401, { error: "unauthorized", message: WRONG_CREDENTIALS })
  reply(res, 200, { account: outcome.account, csrf: outcome.csrf }, { "set-cookie": ctx.auth.cookie(outcome.sessionId, overTls(req)) })
}

/** Who the request is, answered for the caller when it cannot go on: refused credentials (401) or a missing CSRF token (403). */
const caller = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse): Promise<Exclude<Caller, { readonly type: "refused" }> | undefined> => {
  const result = await ctx.auth.authenticate({ cookie: req.headers.cookie, authorization: header(req, "authorization") })
  if (result._tag === "Failure") {
    ctx.log.warn(`authenticate: ${result.failure.message}`)
    unavailable(res, "the account store cannot be reached for a moment; try again")
    return undefined
  }
  const who = result.success
  if (who.type === "refused") {
    reply(res, 401, { error: "unauthorized", message: who.message })
    return undefined
  }
  const csrf = ctx.auth.csrfProblem(who, req.method ?? "GET", header(req, CSRF_HEADER))
  if (csrf !== undefined) {
    reply(res, 403, { error: "csrf", message: csrf, header: CSRF_HEADER })
    return undefined
  }
  return who
}

const NOT_SIGNED_IN = "not signed in: POST /api/v1/login, or send Authorization: Bearer TOKEN"

const logout = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  req.resume()
  const who = await caller(ctx, req, res)
  if (who === undefined) return
  if (who.type === "anonymous") return reply(res, 401, { error: "unauthorized", message: NOT_SIGNED_IN }, { "set-cookie": ctx.auth.cookie(undefined, overTls(req)) })
  if (who.type === "session") {
    const ended = await ctx.auth.signOut(who.sessionId)
    if (ended._tag === "Failure") return unavailable(res, "signing out failed for a moment (the account store cannot be reached); try again")
    return reply(res, 200, { signedOut: true }, { "set-cookie": ctx.auth.cookie(undefined, overTls(req)) })
  }
  // an API token has no web session: nothing to end, and the token stays valid
  reply(res, 200, { signedOut: false })
}

const me = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  const who = await caller(ctx, req, res)
  if (who === undefined) return
  if (who.type === "anonymous") return reply(res, 401, { error: "unauthorized", message: NOT_SIGNED_IN })
  // the ticket a page hands to its SockJS hello, so that the sessions it opens belong to this account
  const socket = ctx.identities.ticket(who.account.id)
  reply(res, 200, { account: who.account, ...(who.type === "session" ? { csrf: who.csrf } : {}), socket: socket.ticket, socketExpiresAt: socket.expiresAt })
}

/** the caller's account, or undefined once it was answered: 401 for no one, or what `caller` answered */
const signedIn: SignedIn = async (ctx, req, res) => {
  const who = await caller(ctx, req, res)
  if (who?.type === "anonymous") reply(res, 401, { error: "unauthorized", message: NOT_SIGNED_IN })
  return who === undefined || who.type === "anonymous" ? undefined : who.account
}

const ACCOUNT_ROUTES: Record<string, { readonly method: string; readonly handle: typeof login }> = {
  "/api/v1/login": { method: "POST", handle: login },
  "/api/v1/logout": { method: "POST", handle: logout },
  "/api/v1/me": { method: "GET", handle: me },
}

export interface StatusCounters {
  connections(): number
}

export const httpHandler = (ctx: BackendContext, counters: StatusCounters) => (req: IncomingMessage, res: ServerResponse): void => {
  const path = (req.url ?? "/").split("?")[0]
  if (path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain", "x-sagews-backend": ctx.options.id })
    res.end("ok\n")
    return
  }
  if (path?.startsWith("/sockjs")) return // sockjs answers its own requests
  if (path === "/api/v1/execute") {
    if (req.method !== "POST") return reply(res, 405, { error: "invalid", message: `use POST for /api/v1/execute, not ${req.method}` }, { allow: "POST" })
    execute(ctx, req, res).catch((e: unknown) => {
      ctx.log.error(`execute: ${e instanceof Error ? e.message : String(e)}`)
      reply(res, 500, { error: "failed", message: "the backend failed to run this request" })
    })
    return
  }
  const account = path !== undefined ? ACCOUNT_ROUTES[path] : undefined
  if (account !== undefined) {
    if (req.method !== account.method) {
      req.resume()
      return reply(res, 405, { error: "invalid", message: `use ${account.method} for ${path}, not ${req.method}` }, { allow: account.method })
    }
    account.handle(ctx, req, res).catch((e: unknown) => {
      ctx.log.error(`${path}: ${e instanceof Error ? e.message : String(e)}`)
      reply(res, 500, { error: "failed", message: "the backend failed to handle this request" })
    })
    return
  }
  // share links and permalinks (shares.ts, permalinks.ts): /api/v1/worksheets/{id}/share before the worksheet routes
  const links = path === undefined ? undefined : isShareRoute(path) ? shares : isPermalinkRoute(path) ? permalinks : undefined
  if (path !== undefined && links !== undefined) {
    links(ctx, req, res, path, signedIn).catch((e: unknown) => {
      ctx.log.error(`${path}: ${e instanceof Error ? e.message : String(e)}`)
      reply(res, 500, { error: "failed", message: "the backend failed to handle this request" })
    })
    return
  }
  if (path === "/api/v1/worksheets" || path?.startsWith("/api/v1/worksheets/") === true) {
    worksheets(ctx, req, res, path, signedIn).catch((e: unknown) => {
      ctx.log.error(`${path}: ${e instanceof Error ? e.message : String(e)}`)
      reply(res, 500, { error: "failed", message: "the backend failed to handle this request" })
    })
    return
  }
  if (path !== undefined && isFilesRoute(path)) {
    files(ctx, req, res, path, signedIn).catch((e: unknown) => {
      ctx.log.error(`${path}: ${e instanceof Error ? e.message : String(e)}`)
      reply(res, 500, { error: "failed", message: "the backend failed to handle this request" })
    })
    return
  }
  if (path === "/api/v1/oidc" || path?.startsWith("/api/v1/oidc/") === true) {
    oidc(ctx, req, res, path, overTls(req)).catch((e: unknown) => {
      ctx.log.error(`${path}: ${e instanceof Error ? e.message : String(e)}`)
      reply(res, 500, { error: "failed", message: "the backend failed to handle this sign-in" })
    })
    return
  }
  if (path === "/api/v1/identity") {
    if (req.method !== "GET") return reply(res, 405, { error: "invalid", message: `use GET for /api/v1/identity, not ${req.method}` }, { allow: "GET" })
    const { identity, setCookie } = identify(ctx, req)
    const identityReply: HttpIdentityReply = { client: identity.client, token: identity.token, issuedAt: identity.issuedAt, expiresAt: identity.expiresAt }
    return reply(res, 200, identityReply, setCookie !== undefined ? { "set-cookie": setCookie } : {})
  }
  if (path === "/api/v1/status" && req.method === "GET") {
    const memory = process.memoryUsage()
    return reply(res, 200, {
      backend: ctx.options.id,
      connections: counters.connections(),
      routes: ctx.router.size(),
      admission: ctx.admission.counts(),
      workers: ctx.links.load(),
      cache: ctx.cache.stats(),
      memory: { rss: memory.rss, heapUsed: memory.heapUsed },
    })
  }
  reply(res, 404, { error: "invalid", message: `no route for ${req.method} ${path}` })
}
