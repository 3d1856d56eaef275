// The page's side of the HTTP API (docs/PROTOCOL.md "Accounts", "Worksheets", "Publishing a worksheet", "Files"): who
// is signed in, sign-in and sign-out, the worksheet routes and the workspace's files, with the session's CSRF token
// on every change. Each call answers a result the page can show: the value, or a problem saying what happened
// (offline, conflict, refused).
import type { Notebook } from "../protocol/notebook.ts"

export interface Account {
  readonly id: string
  readonly email: string
  readonly name: string | null
}

export interface Me {
  readonly account: Account
  /** the ticket for SockJS's hello (`account`), when the server gives one */
  readonly socket?: string
}

export interface WorksheetEntry {
  readonly id: string
  readonly title: string
  readonly version: string
  readonly updated: number
}

export interface HistoryEntry {
  readonly version: string
  readonly time: number
  readonly message?: string
}

/** A file of the account's workspace (not in worksheets/), as GET /api/v1/files lists it. */
export interface FileEntry {
  readonly path: string
  readonly size: number
}

export interface Provider {
  readonly name: string
  readonly start: string
}

/**
 * Why a call did not give its value: `offline` (no answer, or 502/503/504: worth retrying), `conflict` (409, with the
 * latest version), `signedOut` (401), `refused` (any other status: `message` is the server's).
 */
export type Problem =
  | { readonly kind: "offline"; readonly message: string; readonly retryAfterMs?: number }
  | { readonly kind: "conflict"; readonly message: string; readonly latest: string }
  | { readonly kind: "signedOut"; readonly message: string }
  | { readonly kind: "refused"; readonly status: number; readonly message: string }

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: Problem }

const ok = <T>(value: T): Result<T> => ({ ok: true, value })
const fail = <T>(problem: Problem): Result<T> => ({ ok: false, problem })

const field = (body: unknown, name: string): unknown => (typeof body === "object" && body !== null ? (body as Record<string, unknown>)[name] : undefined)

const problemOf = async (response: Response): Promise<Problem> => {
  const body: unknown = await response.json().catch(() => undefined)
  const said = field(body, "message")
  const message = typeof said === "string" ? said : `the server answered ${response.status} ${response.statusText}`
  if (response.status === 401) return { kind: "signedOut", message }
  if (response.status === 409) return { kind: "conflict", message, latest: String(field(body, "version") ?? "") }
  if (response.status === 502 || response.status === 503 || response.status === 504) {
    const retry = field(body, "retryAfterMs")
    return { kind: "offline", message, ...(typeof retry === "number" ? { retryAfterMs: retry } : {}) }
  }
  return { kind: "refused", status: response.status, message }
}

const versionOf = (response: Response): string => /^"([0-9a-f]+)"$/.exec(response.headers.get("etag") ?? "")?.[1] ?? ""

/** The files route of a workspace path, each segment percent-encoded (docs/PROTOCOL.md "Files"). */
export const fileUrl = (path: string): string => `/api/v1/files/${path.split("/").map(encodeURIComponent).join("/")}`

const NOTEBOOK_TYPE = "application/x-ipynb+json"
/** ms the page waits for GET /api/v1/me when it loads: it connects only after, so a hung backend must not hold it */
export const ME_TIMEOUT_MS = 5_000

export class Api {
  /** the session's CSRF token (from the sign-in reply or GET /api/v1/me) */
  private csrf: string | undefined

  /** the session's CSRF token, for the calls made outside this class (src/client/permalink.ts's share link) */
  get csrfToken(): string | undefined {
    return this.csrf
  }

  private async call(path: string, init: RequestInit = {}): Promise<Result<Response>> {
    const headers = new Headers(init.headers)
    const method = init.method ?? "GET"
    if (method !== "GET" && this.csrf !== undefined) headers.set("x-csrf-token", this.csrf)
    let response: Response
    try {
      response = await fetch(path, { ...init, headers, credentials: "same-origin", cache: "no-store" })
    } catch (error) {
      return fail({ kind: "offline", message: `the server could not be reached (${error instanceof Error ? error.message : String(error)})` })
    }
    return response.ok ? ok(response) : fail(await problemOf(response))
  }

  private async json<T>(path: string, init: RequestInit = {}): Promise<Result<T>> {
    const r = await this.call(path, init)
    if (!r.ok) return r
    if (r.value.status === 204) return ok(undefined as T)
    try {
      return ok((await r.value.json()) as T)
    } catch {
      return fail({ kind: "offline", message: "the server's answer was cut off" })
    }
  }

  /** Who is signed in: undefined for no one (401) or when it cannot be told (no server, no PostgreSQL). */
  async me(): Promise<Me | undefined> {
    const r = await this.json<{ account: Account; csrf?: string; socket?: unknown }>("/api/v1/me", { signal: AbortSignal.timeout(ME_TIMEOUT_MS) })
    if (!r.ok) return undefined
    if (r.value.csrf !== undefined) this.csrf = r.value.csrf
    return { account: r.value.account, ...(typeof r.value.socket === "string" ? { socket: r.value.socket } : {}) }
  }

  async login(email: string, password: string): Promise<Result<Account>> {
    const r = await this.json<{ account: Account; csrf: string }>("/api/v1/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password }),
    })
    if (!r.ok) return r
    this.csrf = r.value.csrf
    return ok(r.value.account)
  }

  async logout(): Promise<Result<unknown>> {
    const r = await this.json<unknown>("/api/v1/logout", { method: "POST" })
    this.csrf = undefined
    return r
  }

  async providers(): Promise<ReadonlyArray<Provider>> {
    const r = await this.json<{ providers: Array<Provider> }>("/api/v1/oidc")
    return r.ok ? r.value.providers : []
  }

  list(): Promise<Result<ReadonlyArray<WorksheetEntry>>> {
    return this.json("/api/v1/worksheets")
  }

  /** Creates a worksheet from `body` (a notebook's text, as it will be stored). */
  create(body: string): Promise<Result<{ id: string; version: string }>> {
    return this.json("/api/v1/worksheets", { method: "POST", headers: { "content-type": NOTEBOOK_TYPE }, body })
  }

  /** The notebook at its latest version (or `version`), its text as stored and its version. */
  async read(id: string, version?: string): Promise<Result<{ notebook: Notebook; text: string; version: string }>> {
    const r = await this.call(`/api/v1/worksheets/${encodeURIComponent(id)}${version !== undefined ? `?version=${encodeURIComponent(version)}` : ""}`)
    if (!r.ok) return r
    const text = await r.value.text()
    try {
      return ok({ notebook: JSON.parse(text) as Notebook, text, version: versionOf(r.value) })
    } catch {
      return fail({ kind: "offline", message: "the worksheet's answer was cut off" })
    }
  }

  /** Saves `body` over `base`: the new version once PostgreSQL committed it, or `conflict` when `base` is not the latest. */
  save(id: string, base: string, body: string): Promise<Result<{ id: string; version: string }>> {
    return this.json(`/api/v1/worksheets/${encodeURIComponent(id)}`, { method: "PUT", headers: { "content-type": NOTEBOOK_TYPE, "if-match": `"${base}"` }, body })
  }

  remove(id: string): Promise<Result<unknown>> {
    return this.json(`/api/v1/worksheets/${encodeURIComponent(id)}`, { method: "DELETE" })
  }

  history(id: string): Promise<Result<ReadonlyArray<HistoryEntry>>> {
    return this.json(`/api/v1/worksheets/${encodeURIComponent(id)}/history`)
  }

  publish(id: string): Promise<Result<{ url: string; version: string }>> {
    return this.json(`/api/v1/worksheets/${encodeURIComponent(id)}/publish`, { method: "POST" })
  }

  unpublish(id: string): Promise<Result<unknown>> {
    return this.json(`/api/v1/worksheets/${encodeURIComponent(id)}/publish`, { method: "DELETE" })
  }

  listFiles(): Promise<Result<ReadonlyArray<FileEntry>>> {
    return this.json("/api/v1/files")
  }

  /** Saves `body` at `path` over whatever is there: the new version once PostgreSQL committed it. */
  putFile(path: string, body: Blob): Promise<Result<{ version: string }>> {
    return this.json(fileUrl(path), { method: "PUT", headers: { "content-type": "application/octet-stream" }, body })
  }

  removeFile(path: string): Promise<Result<unknown>> {
    return this.json(fileUrl(path), { method: "DELETE" })
  }
}
