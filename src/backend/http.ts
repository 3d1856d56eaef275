// The backend's plain HTTP routes: GET /healthz, POST /api/v1/execute (stateless single cell, outputs as JSON),
// GET /api/v1/identity (the caller's server-issued identity, in the `sagews_id` cookie), GET /api/v1/status
// (counters for operators and benchmarks). Bodies are size-limited and validated with zod.
import type { IncomingMessage, ServerResponse } from "node:http"
import { describeIssue, HttpExecuteRequest, type HttpExecuteReply, type HttpIdentityReply } from "../protocol/browser.ts"
import { sourceAddress } from "./address.ts"
import type { Requester } from "./admission.ts"
import type { BackendContext } from "./context.ts"
import type { Identity } from "./identity.ts"
import { startRun } from "./stateless.ts"

/** the cookie that carries a caller's identity token */
export const IDENTITY_COOKIE = "sagews_id"

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  if (res.headersSent || res.destroyed) return
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store", ...headers })
  res.end(text)
}

const readBody = (req: IncomingMessage, limit: number): Promise<string | "too-large"> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        resolve("too-large")
        req.resume()
        return
      }
      chunks.push(chunk)
    })
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

/** The value of one cookie of the request, if it has it. */
const cookie = (req: IncomingMessage, name: string): string | undefined => {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const at = part.indexOf("=")
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim()
  }
  return undefined
}

/**
 * The caller's identity: the one its cookie proves, else a new one, set in an HttpOnly cookie on the reply. A cookie
 * that does not verify (altered, expired, from another installation) is replaced rather than refused: a browser cannot
 * clear an HttpOnly cookie by itself. Either way the caller's address caps what all its identities hold.
 */
const identify = (ctx: BackendContext, req: IncomingMessage): { identity: Identity; setCookie?: string } => {
  const token = cookie(req, IDENTITY_COOKIE)
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
  const body = await readBody(req, ctx.options.maxBodyBytes)
  if (body === "too-large") return json(res, 413, { error: "invalid", message: `the request body is larger than ${ctx.options.maxBodyBytes} bytes` })
  let raw: unknown
  try {
    raw = JSON.parse(body)
  } catch (e) {
    return json(res, 400, { error: "invalid", message: `the body is not JSON: ${e instanceof Error ? e.message : String(e)}` })
  }
  const parsed = HttpExecuteRequest.safeParse(raw)
  if (!parsed.success) return json(res, 400, { error: "invalid", message: `invalid request: ${describeIssue(parsed.error)}` })
  const { identity, setCookie } = identify(ctx, req)
  const cookieHeader: Record<string, string> = setCookie !== undefined ? { "set-cookie": setCookie } : {}
  const run = startRun(ctx, { ...parsed.data, who: requester(req, identity) }, () => undefined)
  res.on("close", () => {
    if (!res.writableFinished) run.cancel("the HTTP client went away")
  })
  const result = await run.done
  const { refusal } = result
  if (refusal !== undefined) {
    return json(res, 429, { error: "limit", message: refusal.message, limit: refusal.limit, max: refusal.max, retryAfterMs: refusal.retryAfterMs }, { "retry-after": String(Math.ceil(refusal.retryAfterMs / 1000)), ...cookieHeader })
  }
  if (result.noWorker === true) return json(res, 503, { error: "no_worker", message: result.message, retryAfterMs: 1_000 }, { "retry-after": "1", ...cookieHeader })
  const reply: HttpExecuteReply = {
    status: result.status,
    cached: result.cached,
    ms: result.ms,
    outputs: [...result.outputs],
    ...(result.message !== undefined ? { message: result.message } : {}),
    ...(result.limit !== undefined ? { limit: result.limit } : {}),
  }
  json(res, 200, reply, cookieHeader)
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
    if (req.method !== "POST") return json(res, 405, { error: "invalid", message: `use POST for /api/v1/execute, not ${req.method}` }, { allow: "POST" })
    execute(ctx, req, res).catch((e: unknown) => {
      ctx.log.error(`execute: ${e instanceof Error ? e.message : String(e)}`)
      json(res, 500, { error: "failed", message: "the backend failed to run this request" })
    })
    return
  }
  if (path === "/api/v1/identity") {
    if (req.method !== "GET") return json(res, 405, { error: "invalid", message: `use GET for /api/v1/identity, not ${req.method}` }, { allow: "GET" })
    const { identity, setCookie } = identify(ctx, req)
    const reply: HttpIdentityReply = { client: identity.client, token: identity.token, issuedAt: identity.issuedAt, expiresAt: identity.expiresAt }
    return json(res, 200, reply, setCookie !== undefined ? { "set-cookie": setCookie } : {})
  }
  if (path === "/api/v1/status" && req.method === "GET") {
    const memory = process.memoryUsage()
    return json(res, 200, {
      backend: ctx.options.id,
      connections: counters.connections(),
      routes: ctx.router.size(),
      admission: ctx.admission.counts(),
      workers: ctx.pool.load(),
      cache: ctx.cache.stats(),
      memory: { rss: memory.rss, heapUsed: memory.heapUsed },
    })
  }
  json(res, 404, { error: "invalid", message: `no route for ${req.method} ${path}` })
}
