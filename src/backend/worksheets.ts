// The worksheet routes of the HTTP API (issue 10 item 6): /api/v1/worksheets (list, create), /api/v1/worksheets/{id}
// (read at the latest or a given version with its ETag, save with If-Match, delete), /{id}/history and /{id}/publish
// (the latest version as a static page at /pub/<slug>/, src/publish/; DELETE unpublishes), for the signed-in
// account only (another account's worksheet is not found, as an unknown id is). Bodies are nbformat-4 notebooks,
// validated here and stored byte for byte as the client sent them (src/protocol/notebook.ts, src/worksheets/).
import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect } from "effect"
import type { Account } from "../accounts/store.ts"
import { describeIssue } from "../protocol/browser.ts"
import { Notebook, titleOf } from "../protocol/notebook.ts"
import { renderPage } from "../publish/render.ts"
import { removePage, writePage, type PublishError } from "../publish/write.ts"
import { MAX_FILE_BYTES } from "../workspace/limits.ts"
import { type Publication, WorksheetsError } from "../worksheets/service.ts"
import type { BackendContext } from "./context.ts"
import { readBytes, reply } from "./reply.ts"

/** Largest worksheet body (bytes): the workspace's limit on one file, since the body is stored as that file. */
export const MAX_WORKSHEET_BYTES = MAX_FILE_BYTES

const ROUTE = /^\/api\/v1\/worksheets(?:\/([^/]+)(?:\/(history|publish))?)?$/
/** worksheet ids are uuids: anything else is not found without asking PostgreSQL */
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const VERSION = /^[0-9a-f]{40}$/
const IF_MATCH = /^"([0-9a-f]{40})"$/

/** Who the request is, or undefined once the caller was answered (401, 403 for CSRF, 503): http.ts's checks. */
export type SignedIn = (ctx: BackendContext, req: IncomingMessage, res: ServerResponse) => Promise<Account | undefined>


const invalid = (res: ServerResponse, message: string): void => reply(res, 400, { error: "invalid", message })
const notFound = (res: ServerResponse, id: string): void => reply(res, 404, { error: "not_found", message: `no worksheet ${id} in your account` })
const etag = (version: string): Record<string, string> => ({ etag: `"${version}"` })

/**
 * A call of the worksheets service (worksheets, files, share links, permalinks: `what`) failed: 503 when it is worth
 * trying again (or there is no PostgreSQL), else 500.
 */
export const storeFailed = (ctx: BackendContext, res: ServerResponse, e: WorksheetsError, what: string): void => {
  if (e.reason === "NoDatabase") return reply(res, 503, { error: "unavailable", message: e.message })
  ctx.log.warn(`${what}: ${e.message}`)
  if (e.reason === "Unavailable") return reply(res, 503, { error: "unavailable", message: `${what} are unavailable for a moment (PostgreSQL or the workspace store); try again`, retryAfterMs: 1_000 }, { "retry-after": "1" })
  reply(res, 500, { error: "failed", message: `the backend failed to handle this request for ${what}` })
}


const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The body as the notebook it must be, with its bytes; undefined once the caller was told what is wrong. */
const notebookBody = async (req: IncomingMessage, res: ServerResponse): Promise<{ bytes: Buffer; title: string } | undefined> => {
  const bytes = await readBytes(req, MAX_WORKSHEET_BYTES)
  if (bytes === "too-large") {
    reply(res, 413, { error: "invalid", message: `the worksheet is larger than ${MAX_WORKSHEET_BYTES} bytes (10 MiB), the limit of one file in a workspace; make its outputs smaller` })
    return undefined
  }
  let raw: unknown
  try {
    raw = JSON.parse(utf8.decode(bytes))
  } catch (e) {
    invalid(res, `the body is not UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}; send an nbformat-4 notebook (.ipynb)`)
    return undefined
  }
  const parsed = Notebook.safeParse(raw)
  if (!parsed.success) {
    invalid(res, `not an nbformat-4 notebook: ${describeIssue(parsed.error)}`)
    return undefined
  }
  return { bytes, title: titleOf(parsed.data) }
}

const notebook = (res: ServerResponse, content: Uint8Array, version: string): void => {
  res.writeHead(200, { "content-type": "application/x-ipynb+json", "content-length": content.byteLength, "cache-control": "no-store", ...etag(version) })
  res.end(content)
}

const METHODS: Record<"list" | "one" | "history" | "publish", ReadonlyArray<string>> = { list: ["GET", "POST"], one: ["GET", "PUT", "DELETE"], history: ["GET"], publish: ["POST", "DELETE"] }

const publishFailed = (e: PublishError): WorksheetsError => new WorksheetsError({ reason: "Failed", message: e.message })

/** The page of a publication, written where nginx serves /pub/ (src/publish/). */
const writePublication = (dataDir: string) => (p: Publication): Effect.Effect<void, WorksheetsError> =>
  Effect.gen(function*() {
    let raw: unknown
    try {
      raw = JSON.parse(utf8.decode(p.content))
    } catch (e) {
      return yield* new WorksheetsError({ reason: "Failed", message: `version ${p.version} is not UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}` })
    }
    const parsed = Notebook.safeParse(raw)
    if (!parsed.success) return yield* new WorksheetsError({ reason: "Failed", message: `version ${p.version} is not an nbformat-4 notebook: ${describeIssue(parsed.error)}` })
    const html = renderPage(parsed.data, { title: p.title, version: p.version, publishedAt: p.at })
    yield* writePage(dataDir, p.slug, html).pipe(Effect.mapError(publishFailed))
  })

const removePublication = (dataDir: string) => (slug: string): Effect.Effect<void, WorksheetsError> =>
  removePage(dataDir, slug).pipe(Effect.mapError(publishFailed))

/** Answers every request under /api/v1/worksheets. */
export const worksheets = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, path: string, signedIn: SignedIn): Promise<void> => {
  const route = ROUTE.exec(path)
  const method = req.method ?? "GET"
  if (route === null) {
    req.resume()
    return reply(res, 404, { error: "invalid", message: `no route for ${method} ${path}` })
  }
  const [, id, sub] = route
  const kind = id === undefined ? "list" : sub === "history" || sub === "publish" ? sub : "one"
  if (!METHODS[kind].includes(method)) {
    req.resume()
    return reply(res, 405, { error: "invalid", message: `use ${METHODS[kind].join(" or ")} for ${path}, not ${method}` }, { allow: METHODS[kind].join(", ") })
  }
  if (!ctx.worksheets.available) {
    req.resume()
    return reply(res, 503, { error: "unavailable", message: "worksheets need PostgreSQL, and this backend runs without one (--db): computing works, saving does not" })
  }
  const account = await signedIn(ctx, req, res)
  if (account === undefined) return void req.resume()
  const w = ctx.worksheets

  if (id === undefined) {
    if (method === "GET") {
      const listed = await w.list(account)
      return listed._tag === "Failure" ? storeFailed(ctx, res, listed.failure, "worksheets") : reply(res, 200, listed.success)
    }
    const body = await notebookBody(req, res)
    if (body === undefined) return
    const made = await w.create(account, body.title, body.bytes)
    if (made._tag === "Failure") return storeFailed(ctx, res, made.failure, "worksheets")
    return reply(res, 201, made.success, { ...etag(made.success.version), location: `/api/v1/worksheets/${made.success.id}` })
  }

  if (!ID.test(id)) {
    req.resume()
    return notFound(res, id)
  }

  const dataDir = ctx.options.dataDir
  if (kind === "publish") {
    req.resume()
    if (method === "POST") {
      const published = await w.publish(account, id, writePublication(dataDir))
      if (published._tag === "Failure") return storeFailed(ctx, res, published.failure, "worksheets")
      if (published.success === undefined) return notFound(res, id)
      return reply(res, 200, { url: `/pub/${published.success.slug}/`, version: published.success.version })
    }
    const unpublished = await w.unpublish(account, id, removePublication(dataDir))
    if (unpublished._tag === "Failure") return storeFailed(ctx, res, unpublished.failure, "worksheets")
    return unpublished.success ? reply(res, 204, undefined) : notFound(res, id)
  }

  if (kind === "history") {
    const versions = await w.history(account, id)
    if (versions._tag === "Failure") return storeFailed(ctx, res, versions.failure, "worksheets")
    return versions.success === undefined ? notFound(res, id) : reply(res, 200, versions.success)
  }

  if (method === "GET") {
    const version = new URL(req.url ?? "/", "http://backend").searchParams.get("version") ?? undefined
    if (version !== undefined && !VERSION.test(version)) return invalid(res, `the version parameter ${JSON.stringify(version)} is not a version: a version is a 40-digit lowercase hex id from the ETag or the history`)
    const read = await w.read(account, id, version)
    if (read._tag === "Failure") return storeFailed(ctx, res, read.failure, "worksheets")
    if (read.success === undefined) {
      return version === undefined ? notFound(res, id) : reply(res, 404, { error: "not_found", message: `no version ${version} of worksheet ${id} in your account` })
    }
    return notebook(res, read.success.content, read.success.version)
  }

  if (method === "DELETE") {
    req.resume()
    // a deleted worksheet's page goes with it
    const unpublished = await w.unpublish(account, id, removePublication(dataDir))
    if (unpublished._tag === "Failure") return storeFailed(ctx, res, unpublished.failure, "worksheets")
    if (!unpublished.success) return notFound(res, id)
    const removed = await w.remove(account, id)
    if (removed._tag === "Failure") return storeFailed(ctx, res, removed.failure, "worksheets")
    return removed.success ? reply(res, 204, undefined) : notFound(res, id)
  }

  // PUT
  const ifMatch = req.headers["if-match"]
  if (ifMatch === undefined) {
    req.resume()
    return reply(res, 428, { error: "precondition", message: `a PUT must say which version it edits: If-Match: "<version>" (the ETag of the GET it started from)` })
  }
  const base = IF_MATCH.exec(ifMatch)?.[1]
  if (base === undefined) {
    req.resume()
    return invalid(res, `the If-Match header ${JSON.stringify(ifMatch)} is not one version: send If-Match: "<version>", the ETag of the GET the edit started from`)
  }
  const body = await notebookBody(req, res)
  if (body === undefined) return
  const saved = await w.save(account, id, base, body.title, body.bytes)
  if (saved._tag === "Failure") return storeFailed(ctx, res, saved.failure, "worksheets")
  const outcome = saved.success
  if (outcome.type === "missing") return notFound(res, id)
  if (outcome.type === "stale") {
    return reply(res, 409, {
      error: "conflict",
      version: outcome.latest,
      message: `worksheet ${id} was saved elsewhere since version ${base}: the latest is ${outcome.latest}; nothing was written. GET it, merge, and PUT again with If-Match: "${outcome.latest}"`,
    }, etag(outcome.latest))
  }
  reply(res, 200, { id, version: outcome.version }, etag(outcome.version))
}
