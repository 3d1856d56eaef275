// Test accounts on a web stack with PostgreSQL: `sagews user` through the real CLI (src/cli/sagews) against the
// stack's data directory, and accounts signed in by cookie (with its CSRF token) or holding an API token.
import { spawn } from "node:child_process"
import { join } from "node:path"
import { expect } from "vitest"
import { ROOT, type WebStack } from "./harness.ts"

export const PASSWORD = "correct horse battery"

export interface Run {
  readonly code: number | null
  readonly out: string
  readonly err: string
}

/** How a test account authenticates: the cookie and its CSRF token, or a Bearer token. */
export interface Who {
  readonly headers: Record<string, string>
  readonly csrf?: string
}

export const users = (stack: () => WebStack) => {
  /** `sagews ARGS` against the stack's data directory and PostgreSQL, `stdin` written to it */
  const sagews = (args: ReadonlyArray<string>, stdin = ""): Promise<Run> =>
    new Promise((resolve, reject) => {
      const s = stack()
      const port = new URL(s.dbUrl ?? "").port
      // the CLI refuses SAGEWS_* variables it does not know, and SAGEWS_SCREENSHOTS is the browser tests' own
      const { SAGEWS_SCREENSHOTS: _screenshots, ...env } = process.env
      const child = spawn(join(ROOT, "src/cli/sagews"), [...args, "--data", s.dataDir], { env: { ...env, SAGEWS_POSTGRES_PORT: port } })
      let out = ""
      let err = ""
      child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")))
      child.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")))
      child.on("error", reject)
      child.on("close", (code) => resolve({ code, out, err }))
      child.stdin.end(stdin)
    })

  const addUser = async (email: string): Promise<Run> => {
    const run = await sagews(["user", "add", email], `${PASSWORD}\n`)
    expect(run, run.err).toMatchObject({ code: 0 })
    return run
  }

  const cookieUser = async (email: string): Promise<Who> => {
    await addUser(email)
    const r = await fetch(`${stack().backendUrl()}/api/v1/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: PASSWORD }) })
    expect(r.status).toBe(200)
    const { csrf } = (await r.json()) as { csrf: string }
    return { headers: { cookie: (r.headers.get("set-cookie") ?? "").split(";")[0] ?? "" }, csrf }
  }

  const tokenUser = async (email: string): Promise<Who> => {
    await addUser(email)
    const made = await sagews(["user", "token", email])
    expect(made.code).toBe(0)
    return { headers: { authorization: `Bearer ${made.out.trim()}` } }
  }

  /** `path` of the stack's first backend as `who` (anyone when undefined): its cookie or token, and the CSRF token on what is not a GET unless `csrf: false` */
  const call = (who: Who | undefined, path: string, o: { method?: string; body?: string; headers?: Record<string, string>; csrf?: boolean } = {}): Promise<Response> => {
    const method = o.method ?? "GET"
    const csrf: Record<string, string> = who?.csrf !== undefined && method !== "GET" && o.csrf !== false ? { "x-csrf-token": who.csrf } : {}
    return fetch(`${stack().backendUrl()}${path}`, {
      method,
      headers: { ...who?.headers, ...csrf, ...(o.body !== undefined ? { "content-type": "application/json" } : {}), ...o.headers },
      ...(o.body !== undefined ? { body: o.body } : {}),
    })
  }

  return { sagews, addUser, cookieUser, tokenUser, call }
}
