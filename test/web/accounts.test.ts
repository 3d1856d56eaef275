// Local accounts (issue 10, item 1) against a real backend and PostgreSQL: `sagews user` through src/cli/sagews,
// sign-in and its cookie, /api/v1/me, sign-out, CSRF on cookie-authenticated POSTs, API tokens, and the rate limit.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"
import { PASSWORD, users } from "./users.ts"

let stack: WebStack

const LIMITS = { failuresPerEmail: 3, failuresPerAddress: 5, windowSeconds: 600 }

beforeAll(async () => {
  stack = await startWebStack({ postgres: true, workers: 0, backendConfig: { signIn: LIMITS } })
})

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

const { sagews, addUser: add } = users(() => stack)

const addUser = async (email: string): Promise<void> => {
  const run = await add(email)
  expect(run.out).toContain(`account ${email.toLowerCase()} added`)
}

/** A request from `address` (a local proxy's X-Forwarded-For, which the backend trusts as haproxy's) */
const request = (path: string, o: { method?: string; body?: unknown; headers?: Record<string, string>; address: string }) =>
  fetch(`${stack.backendUrl()}${path}`, {
    method: o.method ?? "GET",
    headers: { "x-forwarded-for": o.address, ...(o.body !== undefined ? { "content-type": "application/json" } : {}), ...o.headers },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  })

const login = (email: string, password: string, address: string, headers: Record<string, string> = {}) =>
  request("/api/v1/login", { method: "POST", body: { email, password }, address, headers })

const cookieOf = (response: Response): string => (response.headers.get("set-cookie") ?? "").split(";")[0] ?? ""

describe("sagews user", () => {
  it("add refuses a short password and a second account for one email, naming what is wrong", async () => {
    const short = await sagews(["user", "add", "short@example.org"], "1234567\n")
    expect(short.code).toBe(2)
    expect(short.err).toContain("the password on stdin has 7 characters; it needs at least 8")
    const bad = await sagews(["user", "add", "not-an-email"], `${PASSWORD}\n`)
    expect(bad.code).toBe(2)
    expect(bad.err).toContain(`"not-an-email" is not an email address`)
    await addUser("Ann@Example.org")
    const again = await sagews(["user", "add", "ann@example.org"], `${PASSWORD}\n`)
    expect(again.code).toBe(1)
    expect(again.err).toContain("an account with the email ann@example.org exists already")
  })

  it("list shows each account with its created, disabled and last sign-in times; --json for scripts", async () => {
    await addUser("lister@example.org")
    expect((await login("lister@example.org", PASSWORD, "198.51.100.1")).status).toBe(200)
    const json = await sagews(["user", "list", "--json"])
    expect(json.code).toBe(0)
    const rows = JSON.parse(json.out) as Array<Record<string, unknown>>
    const row = rows.find((r) => r["email"] === "lister@example.org")
    expect(row).toMatchObject({ disabledAt: null, createdAt: expect.stringMatching(/^\d{4}-/), lastSignInAt: expect.stringMatching(/^\d{4}-/) })
    expect(rows.find((r) => r["email"] === "short@example.org")).toBeUndefined()
    const text = await sagews(["user", "list"])
    expect(text.code).toBe(0)
    expect(text.out.split("\n")[0]).toMatch(/^EMAIL +CREATED +DISABLED +LAST SIGN-IN$/)
    expect(text.out).toMatch(/lister@example\.org +\d{4}-\S+ +- +\d{4}-\S+/)
  })

  it("disable and token of an unknown email say so and exit 1; a subcommand that does not exist exits 2", async () => {
    for (const sub of ["disable", "token"]) {
      const run = await sagews(["user", sub, "nobody@example.org"])
      expect(run.code).toBe(1)
      expect(run.err).toContain("no account has the email nobody@example.org")
      expect(run.out).toBe("")
    }
    const unknown = await sagews(["user", "remove", "x@example.org"])
    expect(unknown.code).toBe(2)
    expect(unknown.err).toContain(`unknown user subcommand "remove"`)
  })
})

describe("sign-in", () => {
  it("a right password gets the account, a CSRF token and an HttpOnly SameSite=Lax cookie, Secure over TLS", async () => {
    await addUser("bea@example.org")
    const ok = await login("BEA@example.org", PASSWORD, "198.51.100.2")
    expect(ok.status).toBe(200)
    const body = (await ok.json()) as { account: { id: string; email: string; name: unknown }; csrf: string }
    expect(body).toEqual({ account: { id: expect.stringMatching(/^[0-9a-f-]{36}$/), email: "bea@example.org", name: null }, csrf: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) })
    expect(ok.headers.get("set-cookie")).toMatch(/^sagews_session=v1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/)
    const tls = await login("bea@example.org", PASSWORD, "198.51.100.2", { "x-forwarded-proto": "https" })
    expect(tls.headers.get("set-cookie")).toMatch(/; HttpOnly; SameSite=Lax; Secure$/)
  })

  it("a wrong password, an unknown email and a disabled account get the same 401", async () => {
    await addUser("cy@example.org")
    const signedIn = await login("cy@example.org", PASSWORD, "198.51.100.3")
    const cookie = cookieOf(signedIn)
    expect((await request("/api/v1/me", { headers: { cookie }, address: "198.51.100.3" })).status).toBe(200)
    const wrong = await login("cy@example.org", "not the password", "198.51.100.3")
    const unknown = await login("nobody@example.org", PASSWORD, "198.51.100.3")
    const disable = await sagews(["user", "disable", "cy@example.org"])
    expect(disable).toMatchObject({ code: 0, out: expect.stringContaining("account cy@example.org disabled") })
    const disabled = await login("cy@example.org", PASSWORD, "198.51.100.3")
    const answers = [wrong, unknown, disabled]
    expect(answers.map((r) => r.status)).toEqual([401, 401, 401])
    const bodies = await Promise.all(answers.map((r) => r.json()))
    expect(bodies[0]).toEqual({ error: "unauthorized", message: expect.stringContaining("the email or the password is wrong") })
    expect(bodies[1]).toEqual(bodies[0])
    expect(bodies[2]).toEqual(bodies[0])
    for (const r of answers) expect(r.headers.get("set-cookie")).toBe(null)
    // disabling ended the session it had
    expect((await request("/api/v1/me", { headers: { cookie }, address: "198.51.100.3" })).status).toBe(401)
    expect((await sagews(["user", "token", "cy@example.org"])).err).toContain("the account cy@example.org is disabled")
  })

  it("the cookie authenticates /api/v1/me; sign-out needs the CSRF token, ends the session and clears the cookie", async () => {
    await addUser("dee@example.org")
    const address = "198.51.100.4"
    expect((await request("/api/v1/me", { address })).status).toBe(401)
    const signedIn = await login("dee@example.org", PASSWORD, address)
    const { csrf } = (await signedIn.json()) as { csrf: string }
    const cookie = cookieOf(signedIn)
    const me = await request("/api/v1/me", { headers: { cookie }, address })
    expect(me.status).toBe(200)
    expect(await me.json()).toMatchObject({ account: { email: "dee@example.org" }, csrf })

    const missing = await request("/api/v1/logout", { method: "POST", headers: { cookie }, address })
    expect(missing.status).toBe(403)
    expect(await missing.json()).toMatchObject({ error: "csrf", header: "X-CSRF-Token", message: expect.stringContaining("must carry the X-CSRF-Token header") })
    const wrong = await request("/api/v1/logout", { method: "POST", headers: { cookie, "x-csrf-token": `${csrf.slice(0, -1)}${csrf.endsWith("A") ? "B" : "A"}` }, address })
    expect(wrong.status).toBe(403)
    expect(await wrong.json()).toMatchObject({ error: "csrf", message: expect.stringContaining("does not match") })
    // refused, the session is still there
    expect((await request("/api/v1/me", { headers: { cookie }, address })).status).toBe(200)

    const out = await request("/api/v1/logout", { method: "POST", headers: { cookie, "x-csrf-token": csrf }, address })
    expect(out.status).toBe(200)
    expect(out.headers.get("set-cookie")).toMatch(/^sagews_session=; Path=\/; Max-Age=0;/)
    // the old cookie, sent again, is no one
    expect((await request("/api/v1/me", { headers: { cookie }, address })).status).toBe(401)
    expect((await request("/api/v1/logout", { method: "POST", headers: { cookie, "x-csrf-token": csrf }, address })).status).toBe(401)
  })

  it("an API token from `sagews user token` authenticates without a CSRF token; a wrong one is refused", async () => {
    await addUser("eve@example.org")
    const made = await sagews(["user", "token", "eve@example.org"])
    expect(made.code).toBe(0)
    const token = made.out.trim()
    expect(token).toMatch(/^sgw_[A-Za-z0-9_-]{43}$/)
    const address = "198.51.100.5"
    const authorization = `Bearer ${token}`
    const me = await request("/api/v1/me", { headers: { authorization }, address })
    expect(me.status).toBe(200)
    expect(await me.json()).toEqual({ account: { id: expect.any(String), email: "eve@example.org", name: null }, socket: expect.stringMatching(/^a1\./), socketExpiresAt: expect.any(Number) })
    const post = await request("/api/v1/logout", { method: "POST", headers: { authorization }, address })
    expect(post.status).toBe(200)
    expect(await post.json()).toEqual({ signedOut: false })
    const forged = await request("/api/v1/me", { headers: { authorization: `Bearer sgw_${"A".repeat(43)}` }, address })
    expect(forged.status).toBe(401)
    expect(await forged.json()).toMatchObject({ message: expect.stringContaining("the API token is not valid") })
    expect((await request("/api/v1/me", { headers: { authorization: token }, address })).status).toBe(401)
  })
})

describe("the sign-in rate limit", () => {
  it("after failuresPerEmail failures an email is refused with 429, even with the right password", async () => {
    await addUser("fay@example.org")
    for (let i = 0; i < LIMITS.failuresPerEmail; i++) {
      // a new address each time: only the email's count can be what refuses
      expect((await login("fay@example.org", `wrong ${i}`, `198.51.100.${10 + i}`)).status).toBe(401)
    }
    const limited = await login("fay@example.org", PASSWORD, "198.51.100.20")
    expect(limited.status).toBe(429)
    const body = (await limited.json()) as { retryAfterMs: number }
    expect(body).toMatchObject({ error: "limit", limit: "failuresPerEmail", max: 3, message: expect.stringContaining("this email had 3") })
    expect(body.retryAfterMs).toBeGreaterThan(0)
    expect(body.retryAfterMs).toBeLessThanOrEqual(LIMITS.windowSeconds * 1000)
    expect(Number(limited.headers.get("retry-after"))).toBe(Math.ceil(body.retryAfterMs / 1000))
    expect(limited.headers.get("set-cookie")).toBe(null)
  })

  it("after failuresPerAddress failures from one address, any email from it is refused; other addresses are not", async () => {
    await addUser("gus@example.org")
    const address = "203.0.113.7"
    for (let i = 0; i < LIMITS.failuresPerAddress; i++) expect((await login(`guess${i}@example.org`, "guess", address)).status).toBe(401)
    const limited = await login("gus@example.org", PASSWORD, address)
    expect(limited.status).toBe(429)
    expect(await limited.json()).toMatchObject({ error: "limit", limit: "failuresPerAddress", max: 5, message: expect.stringContaining(`your address (${address})`) })
    expect((await login("gus@example.org", PASSWORD, "203.0.113.8")).status).toBe(200)
  })
})
