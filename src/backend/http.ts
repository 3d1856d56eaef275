// The backend's plain HTTP routes: GET /healthz, POST /api/v1/execute (stateless single cell, outputs as JSON),
// GET /api/v1/status (counters for operators and benchmarks). Bodies are size-limited and validated with zod.
import type { IncomingMessage, ServerResponse } from "node:http"
import { describeIssue, HttpExecuteRequest, type HttpExecuteReply } from "../protocol/browser.ts"
import type { BackendContext } from "./context.ts"
import { startRun } from "./stateless.ts"

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

/** Who asks, for per-client admission: haproxy's X-Forwarded-For when present, else the peer address. */
const clientOf = (req: IncomingMessage): string => {
  const forwarded = req.headers["x-forwarded-for"]
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim()
  return `ip:${first || req.socket.remoteAddress || "unknown"}`
}

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
  const run = startRun(ctx, { ...parsed.data, client: clientOf(req) }, () => undefined)
  res.on("close", () => {
    if (!res.writableFinished) run.cancel("the HTTP client went away")
  })
  const result = await run.done
  const { refusal } = result
  if (refusal !== undefined) {
    return json(res, 429, { error: "limit", message: refusal.message, limit: refusal.limit, max: refusal.max, retryAfterMs: refusal.retryAfterMs }, { "retry-after": String(Math.ceil(refusal.retryAfterMs / 1000)) })
  }
  if (result.noWorker === true) return json(res, 503, { error: "no_worker", message: result.message, retryAfterMs: 1_000 }, { "retry-after": "1" })
  const reply: HttpExecuteReply = {
    status: result.status,
    cached: result.cached,
    ms: result.ms,
    outputs: [...result.outputs],
    ...(result.message !== undefined ? { message: result.message } : {}),
    ...(result.limit !== undefined ? { limit: result.limit } : {}),
  }
  json(res, 200, reply)
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
