// The page's permalinks and share links (docs/PROTOCOL.md "Permalinks", "Share links"): the self-contained ?z= form
// made and read in the browser (CompressionStream, no server needed), ?q= permalinks stored on the server, and a
// worksheet's read-only ?s= share link. Functions only: the page decides when to call them and what to show.
import { z } from "zod"
import type { KernelKind } from "../protocol/browser.ts"
import { Notebook } from "../protocol/notebook.ts"

/** the kernel of a link that names none (sagecell's default too) */
export const DEFAULT_KERNEL: KernelKind = "sage"
const KERNELS: ReadonlySet<string> = new Set<KernelKind>(["sage", "python"])
/**
 * Largest code a ?z= link is read to (UTF-8 bytes): a few KiB of URL can inflate to far more, and a link is not a
 * way to make the page allocate without bound.
 */
export const MAX_Z_CODE_BYTES = 1024 * 1024

/** A link's code could not be read: `message` says why, for the page to show. */
export class PermalinkError extends Error {
  override readonly name = "PermalinkError"
}

/** What the page's address asks to open (readPageLink). */
export type PageLink =
  /** ?z=<code compressed>&kernel=<kernel>: self-contained, decodeZ gives the code */
  | { readonly type: "z"; readonly z: string; readonly kernel: KernelKind }
  /** ?q=<id>: code stored on the server, fetchPermalink gives it */
  | { readonly type: "q"; readonly q: string }
  /** ?s=<token>: a shared worksheet, fetchShared gives it */
  | { readonly type: "s"; readonly token: string }

/** A call's value, or what went wrong: `status` 0 when the server could not be reached, else the HTTP status. */
export type Answer<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly status: number; readonly message: string }

const bytesToBase64url = (bytes: Uint8Array): string => {
  let binary = ""
  // in slices: String.fromCharCode takes its arguments on the stack
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
}

/** base64url or base64, padded or not; a '+' that a query string turned into a space is a '+' again */
const base64ToBytes = (text: string): Uint8Array => {
  const standard = text.trim().replace(/ /g, "+").replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "")
  if (!/^[A-Za-z0-9+/]*$/.test(standard) || standard.length % 4 === 1) throw new PermalinkError("the z parameter is not base64url text: it was cut or altered; copy the whole link again")
  const binary = atob(standard + "=".repeat((4 - (standard.length % 4)) % 4))
  return Uint8Array.from(binary, (c) => c.charCodeAt(0))
}

const collect = async (stream: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array> => {
  const reader = stream.getReader()
  const chunks: Array<Uint8Array> = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel()
      throw new PermalinkError(`the link's code is larger than ${max} bytes, more than a link may hold`)
    }
    chunks.push(value)
  }
  const all = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    all.set(chunk, at)
    at += chunk.byteLength
  }
  return all
}

const through = (bytes: Uint8Array, transform: CompressionStream | DecompressionStream, max: number): Promise<Uint8Array> =>
  collect(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(transform), max)

/** a zlib stream (RFC 1950) starts with a header naming deflate whose first two bytes are a multiple of 31 */
const isZlib = (bytes: Uint8Array): boolean => bytes.length >= 2 && (bytes[0]! & 0x0f) === 8 && ((bytes[0]! << 8) | bytes[1]!) % 31 === 0

/**
 * The ?z= form of `code`: its UTF-8 compressed as zlib (RFC 1950, sagecell's `zlib.compress`), in base64url without
 * padding, so a link made here opens on sagecell and one made by sagecell opens here.
 */
export const encodeZ = async (code: string): Promise<string> =>
  bytesToBase64url(await through(new TextEncoder().encode(code), new CompressionStream("deflate"), Number.POSITIVE_INFINITY))

/**
 * The code of a ?z= value: base64url (or base64, padded or not) of zlib-compressed UTF-8 (raw deflate, RFC 1951, is
 * read too). Throws PermalinkError saying what is wrong with it.
 */
export const decodeZ = async (value: string): Promise<string> => {
  const bytes = base64ToBytes(value)
  if (bytes.length === 0) throw new PermalinkError("the z parameter is empty: the link has no code")
  let inflated: Uint8Array
  try {
    inflated = await through(bytes, new DecompressionStream(isZlib(bytes) ? "deflate" : "deflate-raw"), MAX_Z_CODE_BYTES)
  } catch (e) {
    if (e instanceof PermalinkError) throw e
    throw new PermalinkError(`the z parameter is not compressed code (${e instanceof Error ? e.message : String(e)}): the link was cut or altered; copy the whole link again`)
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(inflated)
  } catch {
    throw new PermalinkError("the z parameter's code is not UTF-8 text")
  }
}

/** The page's address (path and query) that opens `code` in `kernel` on any sagews server: `/?z=...&kernel=...`. */
export const zLink = async (code: string, kernel: KernelKind = DEFAULT_KERNEL): Promise<string> => `/?z=${await encodeZ(code)}&kernel=${kernel}`

/**
 * What a page address's query (`location.search`) asks to open, or undefined for none: `s` wins over `q`, `q` over
 * `z`. The kernel of a z link is `kernel`, else sagecell's `lang` when it names a kernel sagews has, else sage.
 */
export const readPageLink = (search: string | URLSearchParams): PageLink | undefined => {
  const params = typeof search === "string" ? new URLSearchParams(search) : search
  const token = params.get("s")
  if (token !== null && token !== "") return { type: "s", token }
  const q = params.get("q")
  if (q !== null && q !== "") return { type: "q", q }
  const value = params.get("z")
  if (value === null || value === "") return undefined
  const named = params.get("kernel") ?? params.get("lang") ?? DEFAULT_KERNEL
  return { type: "z", z: value, kernel: KERNELS.has(named) ? (named as KernelKind) : DEFAULT_KERNEL }
}

const Permalink = z.object({ q: z.string(), z: z.string(), kernel: z.string(), url: z.string() })
const Code = z.object({ code: z.string(), kernel: z.string() })
const ShareLink = z.object({ url: z.string(), token: z.string() })

const unreachable = (e: unknown): Answer<never> => ({ ok: false, status: 0, message: `the server could not be reached (${e instanceof Error ? e.message : String(e)})` })

const refusal = async (response: Response): Promise<Answer<never>> => {
  const body: unknown = await response.json().catch(() => undefined)
  const said = typeof body === "object" && body !== null ? (body as Record<string, unknown>).message : undefined
  return { ok: false, status: response.status, message: typeof said === "string" ? said : `the server answered ${response.status} ${response.statusText}` }
}

const call = async <T>(path: string, init: RequestInit, shape: z.ZodType<T>): Promise<Answer<T>> => {
  let response: Response
  try {
    response = await fetch(path, { credentials: "same-origin", cache: "no-store", ...init })
  } catch (e) {
    return unreachable(e)
  }
  if (!response.ok) return refusal(response)
  if (response.status === 204) return { ok: true, value: undefined as T }
  try {
    const parsed = shape.safeParse(await response.json())
    return parsed.success ? { ok: true, value: parsed.data } : { ok: false, status: response.status, message: "the server's answer is not what this page expects: reload the page" }
  } catch {
    return unreachable(new Error("the answer was cut off"))
  }
}

/** Stores `code` as a ?q= permalink (POST /api/v1/permalinks; no account needed): `url` is the page's `/?q=<q>`. */
export const createPermalink = (code: string, kernel: KernelKind = DEFAULT_KERNEL): Promise<Answer<z.infer<typeof Permalink>>> =>
  call("/api/v1/permalinks", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code, kernel }) }, Permalink)

/** The code and kernel of permalink `q` (GET /api/v1/permalinks/{q}); 404 when the server has none. */
export const fetchPermalink = (q: string): Promise<Answer<z.infer<typeof Code>>> =>
  call(`/api/v1/permalinks/${encodeURIComponent(q)}`, {}, Code)

const csrfHeaders = (csrf: string | undefined): Record<string, string> => (csrf === undefined ? {} : { "x-csrf-token": csrf })

/**
 * The read-only share link of the signed-in account's worksheet `id` (POST /api/v1/worksheets/{id}/share): the same
 * until revoked. `csrf` is the session's token (sign-in reply or GET /api/v1/me); `url` is the page's `/?s=<token>`.
 */
export const shareWorksheet = (id: string, csrf?: string): Promise<Answer<z.infer<typeof ShareLink>>> =>
  call(`/api/v1/worksheets/${encodeURIComponent(id)}/share`, { method: "POST", headers: csrfHeaders(csrf) }, ShareLink)

/** Revokes worksheet `id`'s share link (DELETE /api/v1/worksheets/{id}/share): it reads nothing from then on. */
export const unshareWorksheet = (id: string, csrf?: string): Promise<Answer<undefined>> =>
  call(`/api/v1/worksheets/${encodeURIComponent(id)}/share`, { method: "DELETE", headers: csrfHeaders(csrf) }, z.undefined())

/** The worksheet a ?s= token shares, at its latest version (GET /api/v1/shared/{token}); 404 once revoked or for a wrong token. */
export const fetchShared = async (token: string): Promise<Answer<{ readonly notebook: Notebook; readonly version: string }>> => {
  let response: Response
  try {
    response = await fetch(`/api/v1/shared/${encodeURIComponent(token)}`, { credentials: "omit", cache: "no-store" })
  } catch (e) {
    return unreachable(e)
  }
  if (!response.ok) return refusal(response)
  const version = /^"([0-9a-f]+)"$/.exec(response.headers.get("etag") ?? "")?.[1] ?? ""
  let raw: unknown
  try {
    raw = await response.json()
  } catch {
    return unreachable(new Error("the answer was cut off"))
  }
  const parsed = Notebook.safeParse(raw)
  return parsed.success ? { ok: true, value: { notebook: parsed.data, version } } : { ok: false, status: response.status, message: "the shared worksheet is not an nbformat-4 notebook this page can show" }
}
