// Permalinks as sagecell has them (issue 10 item 4): POST /api/v1/permalinks stores code and kernel under a short id
// derived from them (the page's ?q=<id>) and answers the self-contained ?z= form too; GET /api/v1/permalinks/{q}
// reads one back. Anyone may make one, without an account: code is size-limited and new ids are rate-limited per
// source address (counted in PostgreSQL, so over every backend). The z format is in docs/PROTOCOL.md "Permalinks".
import { createHash } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { deflateSync } from "node:zlib"
import { z } from "zod"
import { describeIssue, KernelKind } from "../protocol/browser.ts"
import { storeFailed } from "./worksheets.ts"
import { sourceAddress } from "./address.ts"
import type { BackendContext } from "./context.ts"
import { readText, reply } from "./reply.ts"

/** Largest code of a permalink (UTF-8 bytes): a cell, not a worksheet; more belongs in a worksheet and its share link. */
export const MAX_PERMALINK_CODE_BYTES = 64 * 1024
/** the body holds the code as a JSON string, whose escapes take up to 6 bytes for one of the code's */
const MAX_BODY_BYTES = 6 * MAX_PERMALINK_CODE_BYTES + 1024
/**
 * New permalinks per source address: a person shares a few an hour; a script filling PostgreSQL with them is held to
 * this. Code that has a permalink already costs nothing and is never refused.
 */
export const PERMALINK_RATE = { max: 100, windowSeconds: 3600 }
/** q is 12 bytes (96 bits) of SHA-256 over kernel and code, as 16 base64url characters: short, and no two codes meet */
const Q_BYTES = 12
export const PERMALINK_Q = /^[A-Za-z0-9_-]{16}$/

const ROUTE = /^\/api\/v1\/permalinks(?:\/([^/]*))?$/

/** The body of POST /api/v1/permalinks. */
const PermalinkRequest = z.strictObject({
  code: z.string().min(1, "the code is empty: a permalink needs code to run"),
  kernel: KernelKind.default("sage"),
})

/** The id of `code` in `kernel`: the same code and kernel are the same permalink on every server. */
export const permalinkId = (kernel: string, code: string): string =>
  createHash("sha256").update(`${kernel}\u0000${code}`, "utf8").digest().subarray(0, Q_BYTES).toString("base64url")

/** ?z=: the code's UTF-8 zlib-compressed (RFC 1950, as sagecell's zlib.compress) in base64url without padding. */
export const zOf = (code: string): string => deflateSync(Buffer.from(code, "utf8")).toString("base64url")

/** The page's address of a permalink. */
export const permalinkUrl = (q: string): string => `/?q=${q}`

export const isPermalinkRoute = (path: string): boolean => ROUTE.test(path)


const tooLarge = (bytes: string): string =>
  `the code is ${bytes}; a permalink holds at most ${MAX_PERMALINK_CODE_BYTES} bytes (64 KiB) of UTF-8 code: save longer code as a worksheet and share that (POST /api/v1/worksheets/{id}/share)`

const create = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  // a cross-site form cannot send JSON without asking first (CORS): other pages cannot spend an address's allowance
  if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
    req.resume()
    return reply(res, 415, { error: "invalid", message: `send the permalink as JSON (content-type: application/json): {"code": "...", "kernel": "sage"}` })
  }
  const body = await readText(req, MAX_BODY_BYTES)
  if (body === "too-large") return reply(res, 413, { error: "invalid", message: tooLarge(`more than ${MAX_BODY_BYTES} bytes of JSON`), max: MAX_PERMALINK_CODE_BYTES })
  let raw: unknown
  try {
    raw = JSON.parse(body)
  } catch (e) {
    return reply(res, 400, { error: "invalid", message: `the body is not JSON: ${e instanceof Error ? e.message : String(e)}; send {"code": "...", "kernel": "sage"}` })
  }
  const parsed = PermalinkRequest.safeParse(raw)
  if (!parsed.success) return reply(res, 400, { error: "invalid", message: `invalid permalink: ${describeIssue(parsed.error)}` })
  const { code, kernel } = parsed.data
  const bytes = Buffer.byteLength(code, "utf8")
  if (bytes > MAX_PERMALINK_CODE_BYTES) return reply(res, 413, { error: "invalid", message: tooLarge(`${bytes} bytes`), max: MAX_PERMALINK_CODE_BYTES })
  // PostgreSQL's text holds neither; and an unpaired surrogate has no UTF-8, so it could not be given back as sent
  if (code.includes("\u0000")) return reply(res, 400, { error: "invalid", message: "invalid permalink: code: the code contains a NUL character (U+0000), which a permalink cannot hold" })
  if (!code.isWellFormed()) return reply(res, 400, { error: "invalid", message: "invalid permalink: code: the code contains an unpaired UTF-16 surrogate (a \\ud800-\\udfff escape alone), which is not text" })

  if (!ctx.worksheets.available) {
    return reply(res, 503, { error: "unavailable", message: `?q= permalinks need PostgreSQL, and this backend runs without one (--db); a ?z= link needs no store: /?z=${zOf(code)}&kernel=${kernel}` })
  }
  const q = permalinkId(kernel, code)
  const address = sourceAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"])
  const stored = await ctx.worksheets.createPermalink({ q, code, kernel, address, max: PERMALINK_RATE.max, windowMs: PERMALINK_RATE.windowSeconds * 1000 })
  if (stored._tag === "Failure") return storeFailed(ctx, res, stored.failure, "permalinks")
  const outcome = stored.success
  if (outcome.type === "limited") {
    const seconds = Math.ceil(outcome.retryAfterMs / 1000)
    return reply(res, 429, {
      error: "limit",
      message: `too many new permalinks: your address (${address}) made ${PERMALINK_RATE.max} within ${PERMALINK_RATE.windowSeconds / 60} minutes; try again in ${seconds} s (code that has a permalink already can always be linked)`,
      limit: "permalinksPerAddress",
      max: PERMALINK_RATE.max,
      retryAfterMs: outcome.retryAfterMs,
    }, { "retry-after": String(seconds) })
  }
  reply(res, outcome.type === "created" ? 201 : 200, { q, z: zOf(code), kernel, url: permalinkUrl(q) }, { location: `/api/v1/permalinks/${q}` })
}

const read = async (ctx: BackendContext, res: ServerResponse, q: string): Promise<void> => {
  const notFound = (): void => reply(res, 404, { error: "not_found", message: `no permalink ${q} on this server` })
  if (!PERMALINK_Q.test(q)) return notFound()
  if (!ctx.worksheets.available) return reply(res, 503, { error: "unavailable", message: "?q= permalinks need PostgreSQL, and this backend runs without one (--db)" })
  const found = await ctx.worksheets.permalink(q)
  if (found._tag === "Failure") return storeFailed(ctx, res, found.failure, "permalinks")
  if (found.success === undefined) return notFound()
  // a permalink never changes: any page may read it (as sagecell's), and caches may keep it
  reply(res, 200, { code: found.success.code, kernel: found.success.kernel }, { "cache-control": "public, max-age=86400, immutable", "access-control-allow-origin": "*" })
}

/** Answers every request under /api/v1/permalinks. */
export const permalinks = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
  const route = ROUTE.exec(path)
  const method = req.method ?? "GET"
  const q = route?.[1]
  const allowed = q === undefined ? "POST" : "GET"
  if (route === null || method !== allowed) {
    req.resume()
    if (route === null) return reply(res, 404, { error: "invalid", message: `no route for ${method} ${path}` })
    return reply(res, 405, { error: "invalid", message: `use ${allowed} for ${path}, not ${method}` }, { allow: allowed })
  }
  if (q === undefined) return create(ctx, req, res)
  req.resume()
  return read(ctx, res, q)
}
