// Read-only share links of worksheets (issue 10 item 4): the owner's POST /api/v1/worksheets/{id}/share gives the
// worksheet's one share token (made the first time, the same until revoked) and the page's address /?s=<token>,
// DELETE revokes it; anyone holding it reads the worksheet's latest version with GET /api/v1/shared/{token}. A token
// revoked and one never made are answered alike, and another account's worksheet is not found, as an unknown id is.
import type { IncomingMessage, ServerResponse } from "node:http"
import { SHARE_TOKEN } from "../worksheets/service.ts"
import type { BackendContext } from "./context.ts"
import { reply } from "./reply.ts"
import { type SignedIn, storeFailed } from "./worksheets.ts"

const SHARE_ROUTE = /^\/api\/v1\/worksheets\/([^/]+)\/share$/
const SHARED_ROUTE = /^\/api\/v1\/shared\/([^/]*)$/
/** worksheet ids are uuids: anything else is not found without asking PostgreSQL */
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const ETAG = /^"([0-9a-f]{40})"$/

const NO_DATABASE = "share links need PostgreSQL, and this backend runs without one (--db)"

/** The page's address of a share link. */
export const shareUrl = (token: string): string => `/?s=${token}`

export const isShareRoute = (path: string): boolean => SHARE_ROUTE.test(path) || SHARED_ROUTE.test(path)

const refuseMethod = (req: IncomingMessage, res: ServerResponse, path: string, allowed: ReadonlyArray<string>): boolean => {
  const method = req.method ?? "GET"
  if (allowed.includes(method)) return false
  req.resume()
  reply(res, 405, { error: "invalid", message: `use ${allowed.join(" or ")} for ${path}, not ${method}` }, { allow: allowed.join(", ") })
  return true
}

/** POST (share) and DELETE (revoke) /api/v1/worksheets/{id}/share, for the worksheet's owner. */
const share = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, path: string, id: string, signedIn: SignedIn): Promise<void> => {
  if (refuseMethod(req, res, path, ["POST", "DELETE"])) return
  req.resume()
  if (!ctx.worksheets.available) return reply(res, 503, { error: "unavailable", message: NO_DATABASE })
  const account = await signedIn(ctx, req, res)
  if (account === undefined) return
  const notFound = (): void => reply(res, 404, { error: "not_found", message: `no worksheet ${id} in your account` })
  if (!ID.test(id)) return notFound()
  if (req.method === "POST") {
    const shared = await ctx.worksheets.share(account, id)
    if (shared._tag === "Failure") return storeFailed(ctx, res, shared.failure, "share links")
    if (shared.success === undefined) return notFound()
    return reply(res, 200, { url: shareUrl(shared.success), token: shared.success })
  }
  const revoked = await ctx.worksheets.unshare(account, id)
  if (revoked._tag === "Failure") return storeFailed(ctx, res, revoked.failure, "share links")
  return revoked.success ? reply(res, 204, undefined) : notFound()
}

/** GET /api/v1/shared/{token}: the shared worksheet's latest version, for anyone holding the token. */
const shared = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, path: string, token: string): Promise<void> => {
  if (refuseMethod(req, res, path, ["GET"])) return
  req.resume()
  if (!ctx.worksheets.available) return reply(res, 503, { error: "unavailable", message: NO_DATABASE })
  // the same answer for a wrong token and a revoked one: a holder learns nothing about other tokens
  const gone = (): void => reply(res, 404, { error: "not_found", message: "no worksheet is shared by this link: it was revoked, or the link is wrong; ask its owner for a new one" })
  if (!SHARE_TOKEN.test(token)) return gone()
  const found = await ctx.worksheets.byShare(token)
  if (found._tag === "Failure") return storeFailed(ctx, res, found.failure, "share links")
  if (found.success === undefined) return gone()
  const { content, version } = found.success
  // the token is in the page's address: nothing this answer leads to may pass it on, and search engines keep out
  const headers = { etag: `"${version}"`, "cache-control": "no-store", "referrer-policy": "no-referrer", "x-robots-tag": "noindex" }
  if (ETAG.exec(req.headers["if-none-match"] ?? "")?.[1] === version) {
    res.writeHead(304, headers)
    res.end()
    return
  }
  res.writeHead(200, { ...headers, "content-type": "application/x-ipynb+json", "content-length": content.byteLength })
  res.end(content)
}

/** Answers /api/v1/worksheets/{id}/share and /api/v1/shared/{token} (isShareRoute). */
export const shares = async (ctx: BackendContext, req: IncomingMessage, res: ServerResponse, path: string, signedIn: SignedIn): Promise<void> => {
  const id = SHARE_ROUTE.exec(path)?.[1]
  if (id !== undefined) return share(ctx, req, res, path, id, signedIn)
  const token = SHARED_ROUTE.exec(path)?.[1]
  if (token !== undefined) return shared(ctx, req, res, path, token)
  req.resume()
  reply(res, 404, { error: "invalid", message: `no route for ${req.method} ${path}` })
}
