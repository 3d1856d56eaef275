// `POST /api/v1/execute` through the front door with a deadline, retrying only what docs/PROTOCOL.md says is safe:
// a connection that could not be made (nothing was sent), and 503/429 replies that carry retryAfterMs.
import { request } from "node:http"
import { HttpExecuteReply } from "../protocol/browser.ts"

export type HttpOutcome =
  | { readonly _tag: "reply"; readonly status: number; readonly body: string; readonly retries: number }
  | { readonly _tag: "error"; readonly message: string; readonly retries: number }
  | { readonly _tag: "hung"; readonly retries: number }

/** A pause before retrying a refused connection: the front door is coming back. */
const REFUSED_RETRY_MS = 250

const once = (url: URL, body: string, remainingMs: number): Promise<{ readonly status: number; readonly body: string } | { readonly error: NodeJS.ErrnoException } | "hung"> =>
  new Promise((resolve) => {
    let settled = false
    const settle = (v: { readonly status: number; readonly body: string } | { readonly error: NodeJS.ErrnoException } | "hung") => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(v)
    }
    const req = request(
      { host: url.hostname, port: url.port, path: "/api/v1/execute", method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (d: string) => (text += d))
        res.on("end", () => settle({ status: res.statusCode ?? 0, body: text }))
        res.on("error", (error: NodeJS.ErrnoException) => settle({ error }))
      },
    )
    const timer = setTimeout(() => {
      settle("hung")
      req.destroy()
    }, Math.max(1, remainingMs))
    req.on("error", (error: NodeJS.ErrnoException) => settle({ error }))
    req.end(body)
  })

const retryAfter = (status: number, body: string): number | undefined => {
  if (status !== 503 && status !== 429) return undefined
  try {
    const parsed = JSON.parse(body) as { retryAfterMs?: unknown }
    return typeof parsed.retryAfterMs === "number" ? parsed.retryAfterMs : undefined
  } catch {
    return undefined
  }
}

export const postExecute = async (base: string, payload: object, deadlineMs: number): Promise<HttpOutcome> => {
  const url = new URL(base)
  const body = JSON.stringify(payload)
  const end = Date.now() + deadlineMs
  let retries = 0
  for (;;) {
    const r = await once(url, body, end - Date.now())
    if (r === "hung") return { _tag: "hung", retries }
    if ("error" in r) {
      if (r.error.code !== "ECONNREFUSED") return { _tag: "error", message: `${r.error.code ?? "error"}: ${r.error.message}`, retries }
      if (Date.now() + REFUSED_RETRY_MS >= end) return { _tag: "hung", retries }
      retries++
      await new Promise((ok) => setTimeout(ok, REFUSED_RETRY_MS))
      continue
    }
    const wait = retryAfter(r.status, r.body)
    if (wait === undefined) return { _tag: "reply", status: r.status, body: r.body, retries }
    if (Date.now() + wait >= end) return { _tag: "reply", status: r.status, body: r.body, retries }
    retries++
    await new Promise((ok) => setTimeout(ok, wait))
  }
}

/** The reply's stdout, or why it is not an answer. */
export const readReply = (outcome: HttpOutcome): { readonly ok: true; readonly stdout: string; readonly cached: boolean } | { readonly ok: false; readonly hung: boolean; readonly message: string } => {
  if (outcome._tag === "hung") return { ok: false, hung: true, message: "no reply by the deadline" }
  if (outcome._tag === "error") return { ok: false, hung: false, message: outcome.message }
  if (outcome.status !== 200) return { ok: false, hung: false, message: `HTTP ${outcome.status}: ${outcome.body.slice(0, 200)}` }
  let json: unknown
  try {
    json = JSON.parse(outcome.body)
  } catch {
    return { ok: false, hung: false, message: `HTTP 200 that is not JSON: ${outcome.body.slice(0, 200)}` }
  }
  const reply = HttpExecuteReply.safeParse(json)
  if (!reply.success) return { ok: false, hung: false, message: `HTTP 200 that is not an execute reply: ${outcome.body.slice(0, 200)}` }
  if (reply.data.status !== "ok") return { ok: false, hung: false, message: `status ${reply.data.status}${reply.data.limit ? ` (${reply.data.limit})` : ""}: ${reply.data.message ?? ""}` }
  const stdout = reply.data.outputs.flatMap((m) => (m.kind === "stdout" ? [m.text] : [])).join("")
  return { ok: true, stdout, cached: reply.data.cached }
}
