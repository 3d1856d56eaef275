// The files routes of the HTTP API: the files of the signed-in account's workspace but its worksheets/ (which the
// worksheet routes keep). GET /api/v1/files lists them at the latest version; GET /api/v1/files/{path} gives one's
// bytes with the version's ETag; PUT saves the raw body there (optionally only if the file is as it was at If-Match's
// version), answered once PostgreSQL has committed it; DELETE removes it. Every save and removal is a commit.
import type { IncomingMessage, ServerResponse } from "node:http"
import { MAX_FILE_BYTES } from "../workspace/limits.ts"
import { filePathProblem, type FileSaved } from "../worksheets/service.ts"
import type { BackendContext } from "./context.ts"
import { readBytes, reply } from "./reply.ts"
import { type SignedIn, storeFailed } from "./worksheets.ts"

const LIST = "/api/v1/files"
const PREFIX = "/api/v1/files/"
const IF_MATCH = /^"([0-9a-f]{40})"$/
const NO_DATABASE = "files need PostgreSQL, and this backend runs without one (--db): computing works, saving does not"
const WHAT = "workspace files"

export const isFilesRoute = (path: string): boolean => path === LIST || path.startsWith(PREFIX)

/** What a file is served as, by its extension; anything else is bytes. */
const TYPES: Record<string, string> = {
  txt: "text/plain; charset=utf-8", sage: "text/plain; charset=utf-8", py: "text/x-python; charset=utf-8", md: "text/markdown; charset=utf-8",
  csv: "text/csv; charset=utf-8", tsv: "text/tab-separated-values; charset=utf-8", tex: "text/x-tex; charset=utf-8", json: "application/json",
  ipynb: "application/x-ipynb+json", png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp",
  pdf: "application/pdf", svg: "image/svg+xml", html: "text/html; charset=utf-8", htm: "text/html; charset=utf-8", xml: "application/xml",
}
/** types a browser would run script in when opened: sent as downloads, never shown in the page's origin */
const ACTIVE = /^(text\/html|image\/svg\+xml|application\/xml)/

const typeOf = (path: string): string => TYPES[path.slice(path.lastIndexOf(".") + 1).toLowerCase()] ?? "application/octet-stream"

const etag = (version: string): Record<string, string> => ({ etag: `"${version}"` })
const invalid = (res: ServerResponse, message: string): void => reply(res, 400, { error: "invalid", message })
const notFound = (res: ServerResponse, path: string): void => reply(res, 404, { error: "not_found", message: `no file ${path} in your workspace` })

/** The workspace path a URL names, or undefined once the caller was told why it is not one. */
const pathOf = (res: ServerResponse, raw: string): string | undefined => {
  let path: string
  try {
    path = decodeURIComponent(raw)
  } catch {
    invalid(res, `the path ${JSON.stringify(raw)} is not valid percent-encoding: encode each segment with encodeURIComponent`)
    return undefined
  }
  const problem = filePathProblem(path)
  if (problem !== undefined) {
    invalid(res, `refused the path ${JSON.stringify(path)}: ${problem}; name a file relative to the workspace, such as data/primes.csv`)
    return undefined
  }
  return path
}

/** If-Match's version, null without one, undefined once the caller was told it is not one quoted version. */
const ifMatchOf = (req: IncomingMessage, res: ServerResponse): string | null | undefined => {
  const header = req.headers["if-match"]
  if (header === undefined) return null
  const version = IF_MATCH.exec(header)?.[1]
  if (version === undefined) invalid(res, `the If-Match header ${JSON.stringify(header)} is not one version: send If-Match: "<version>", the ETag of the GET the edit started from, or no If-Match to save over whatever is there`)
  return version
}

const changed = (res: ServerResponse, path: string, outcome: FileSaved, base: string | null, status: number): void => {
  if (outcome.type === "missing") return notFound(res, path)
  if (outcome.type === "stale") {
    return reply(res, 409, {
      error: "conflict",
      version: outcome.latest,
      message: `${path} was changed since version ${base}: the latest version is ${outcome.latest}; nothing was written. GET it, merge, and send again with If-Match: "${outcome.latest}"`,
    }, etag(outcome.latest))
  }
  reply(res, status, status === 204 ? undefined : { version: outcome.version }, etag(outcome.version))
}

/** Answers every request under /api/v1/files. */
export const files = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, path: string, signedIn: SignedIn): Promise<void> => {
  const method = req.method ?? "GET"
  const allowed = path === LIST ? ["GET"] : ["GET", "PUT", "DELETE"]
  if (!allowed.includes(method)) {
    req.resume()
    return reply(res, 405, { error: "invalid", message: `use ${allowed.join(" or ")} for ${path === LIST ? LIST : `${PREFIX}{path}`}, not ${method}` }, { allow: allowed.join(", ") })
  }
  if (!ctx.worksheets.available) {
    req.resume()
    return reply(res, 503, { error: "unavailable", message: NO_DATABASE })
  }
  const account = await signedIn(ctx, req, res)
  if (account === undefined) return void req.resume()
  const w = ctx.worksheets

  if (path === LIST) {
    const listed = await w.listFiles(account)
    if (listed._tag === "Failure") return storeFailed(ctx, res, listed.failure, WHAT)
    const { version, files } = listed.success
    return reply(res, 200, files, version !== undefined ? etag(version) : {})
  }

  const file = pathOf(res, path.slice(PREFIX.length))
  if (file === undefined) return void req.resume()

  if (method === "GET") {
    const read = await w.readFile(account, file)
    if (read._tag === "Failure") return storeFailed(ctx, res, read.failure, WHAT)
    if (read.success === undefined) return notFound(res, file)
    const type = typeOf(file)
    const name = file.slice(file.lastIndexOf("/") + 1)
    res.writeHead(200, {
      "content-type": type,
      "content-length": read.success.content.byteLength,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      // whatever a file holds, it runs nothing in the page's origin
      "content-security-policy": "sandbox; default-src 'none'",
      ...(ACTIVE.test(type) ? { "content-disposition": `attachment; filename*=UTF-8''${encodeURIComponent(name)}` } : {}),
      ...etag(read.success.version),
    })
    return void res.end(read.success.content)
  }

  const base = ifMatchOf(req, res)
  if (base === undefined) return void req.resume()
  if (method === "DELETE") {
    req.resume()
    const removed = await w.deleteFile(account, file, base ?? undefined)
    if (removed._tag === "Failure") return storeFailed(ctx, res, removed.failure, WHAT)
    return changed(res, file, removed.success, base, 204)
  }
  const body = await readBytes(req, MAX_FILE_BYTES)
  if (body === "too-large") return reply(res, 413, { error: "invalid", max: MAX_FILE_BYTES, message: `the file is larger than ${MAX_FILE_BYTES} bytes (10 MiB), the limit of one file in a workspace; save a smaller file` })
  const saved = await w.writeFile(account, file, body, base ?? undefined)
  if (saved._tag === "Failure") return storeFailed(ctx, res, saved.failure, WHAT)
  changed(res, file, saved.success, base, 200)
}
