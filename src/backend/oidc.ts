// The OpenID Connect sign-in routes: GET /api/v1/oidc (the providers, for the page's buttons), GET
// /api/v1/oidc/{name}/start[?return=/path] (302 to the provider, the sign-in in progress in a sealed cookie) and GET
// /api/v1/oidc/{name}/callback (the session cookie of POST /api/v1/login, then 302 to the return path). A failure is
// answered as a short HTML page to a browser and as JSON otherwise, naming what went wrong.
import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect, type Result } from "effect"
import type { OidcError } from "../accounts/oidc.ts"
import { type Finished, PENDING_MAX_AGE, type OidcSignInRefused, type OidcSignInService, type Started } from "../accounts/oidc-signin.ts"
import type { AccountsError } from "../accounts/service.ts"
import { sourceAddress } from "./address.ts"
import { cookieValue } from "./auth.ts"
import type { BackendContext } from "./context.ts"
import { reply } from "./reply.ts"

/** the cookie that carries a sign-in in progress from start to callback, sent only to these routes */
export const PENDING_COOKIE = "sagews_oidc"
const PREFIX = "/api/v1/oidc"
/** a return path: this site's, absolute, not `//host` (another origin) nor `/\host` (which browsers read as one) */
const RETURN_SHAPE = /^\/(?![/\\])[\x21-\x7e]{0,2047}$/
/** a Host header that can be put in a URL as it is: a name or IPv4 address, or a bracketed IPv6 one, and a port */
const HOST_SHAPE = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

/** The sign-in service as the promise-based routes call it: each call settles with its Result. */
export interface OidcCalls {
  readonly names: ReadonlyArray<string>
  start(provider: string, redirectUri: string, returnTo: string): Promise<Result.Result<Started, OidcError>>
  finish(provider: string, callbackUrl: URL, pending: string | undefined, address: string): Promise<Result.Result<Finished, OidcError | OidcSignInRefused | AccountsError>>
}

export const oidcCalls = (service: OidcSignInService, run: <A>(effect: Effect.Effect<A>) => Promise<A>): OidcCalls => ({
  names: service.names,
  start: (provider, redirectUri, returnTo) => run(Effect.result(service.start(provider, redirectUri, returnTo))),
  finish: (provider, callbackUrl, pending, address) => run(Effect.result(service.finish(provider, callbackUrl, pending, address))),
})

const pendingCookie = (value: string | undefined, secure: boolean): string =>
  `${PENDING_COOKIE}=${value ?? ""}; Path=${PREFIX}/; Max-Age=${value === undefined ? 0 : PENDING_MAX_AGE}; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c)

/** What went wrong, as a page for a browser (it navigated here) or as JSON for a program. */
const failure = (req: IncomingMessage, res: ServerResponse, status: number, error: string, message: string, headers: Record<string, string> = {}): void => {
  if (!/\btext\/html\b/.test(req.headers.accept ?? "")) return reply(res, status, { error, message }, headers)
  if (res.headersSent || res.destroyed) return
  const page = `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title></head>\n<body><h1>Sign-in failed</h1><p>${escapeHtml(message)}</p><p><a href="/">Back to sagews</a></p></body></html>\n`
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(page), "cache-control": "no-store", ...headers })
  res.end(page)
}

const STATUS: Record<(OidcError | OidcSignInRefused | AccountsError)["reason"], number> = {
  UnknownProvider: 404,
  Discovery: 502,
  Secret: 500,
  Denied: 403,
  Exchange: 400,
  NoSignInStarted: 400,
  BadState: 400,
  Expired: 400,
  NoEmail: 400,
  UnverifiedEmail: 400,
  Disabled: 403,
  NoDatabase: 503,
  Unavailable: 503,
  Query: 503,
}

const answerFailure = (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, e: OidcError | OidcSignInRefused | AccountsError, headers: Record<string, string>): void => {
  const status = STATUS[e.reason]
  if (status >= 500) ctx.log.warn(`sign-in: ${e.message}`)
  const message = e._tag === "AccountsError" && e.reason !== "NoDatabase" ? "sign-in is unavailable for a moment (the account store cannot be reached); try again" : e.message
  failure(req, res, status, e._tag === "AccountsError" ? "unavailable" : e.reason, message, headers)
}

/** Everything under /api/v1/oidc; `secure` when the request came over TLS. */
export const oidc = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, path: string, secure: boolean): Promise<void> => {
  req.resume()
  if (req.method !== "GET") return reply(res, 405, { error: "invalid", message: `use GET for ${path}, not ${req.method}` }, { allow: "GET" })
  if (path === PREFIX || path === `${PREFIX}/`) {
    return reply(res, 200, { providers: ctx.oidc.names.map((name) => ({ name, start: `${PREFIX}/${name}/start` })) })
  }
  const m = /^\/api\/v1\/oidc\/([^/]+)\/(start|callback)$/.exec(path)
  if (m === null || m[1] === undefined) return reply(res, 404, { error: "invalid", message: `no route for GET ${path}: use ${PREFIX}/{provider}/start` })
  const provider = decodeURIComponent(m[1])
  if (!ctx.oidc.names.includes(provider)) return failure(req, res, 404, "UnknownProvider", `no sign-in provider is named ${JSON.stringify(provider)}; the providers are ${JSON.stringify(ctx.oidc.names)} (GET ${PREFIX})`)
  const host = req.headers.host ?? ""
  if (!HOST_SHAPE.test(host)) return failure(req, res, 400, "invalid", `the Host header ${JSON.stringify(host)} cannot make the sign-in's redirect URI`)
  // haproxy passes the browser's Host and says X-Forwarded-Proto: https for TLS
  const origin = `${secure ? "https" : "http"}://${host}`
  const redirectUri = `${origin}${PREFIX}/${provider}/callback`
  const url = new URL(req.url ?? "/", origin)
  if (m[2] === "start") {
    const returnTo = url.searchParams.get("return") ?? "/"
    if (!RETURN_SHAPE.test(returnTo)) return failure(req, res, 400, "invalid", `return must be a path on this site such as /worksheets (starting with one /), got ${JSON.stringify(returnTo.slice(0, 100))}`)
    const started = await ctx.oidc.start(provider, redirectUri, returnTo)
    if (started._tag === "Failure") return answerFailure(ctx, req, res, started.failure, {})
    res.writeHead(302, { location: started.success.location, "set-cookie": pendingCookie(started.success.pending, secure), "cache-control": "no-store", "content-length": 0 })
    return void res.end()
  }
  const address = sourceAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"])
  // the pending cookie is spent whatever happens: a second callback with it is refused as not started
  const clear = pendingCookie(undefined, secure)
  const done = await ctx.oidc.finish(provider, url, cookieValue(req.headers.cookie, PENDING_COOKIE), address)
  if (done._tag === "Failure") return answerFailure(ctx, req, res, done.failure, { "set-cookie": clear })
  const { account, sessionId, returnTo, how } = done.success
  ctx.log.info(`sign-in through ${provider}: account ${account.email} (${how === "created" ? "new" : `found by ${how}`})`)
  res.writeHead(302, { location: returnTo, "set-cookie": [clear, ctx.auth.cookie(sessionId, secure)], "cache-control": "no-store", "content-length": 0 })
  res.end()
}
