// Sign-in through the plain OAuth 2 presets (issue 10, item 1: "GitHub and Facebook as plain OAuth 2 presets"), on a
// real backend with PostgreSQL. This machine cannot reach github.com or facebook.com, so the providers are stand-ins
// on 127.0.0.1 that answer as their documentation says (the configs name them as a GitHub Enterprise Server and a
// Facebook-shaped host by `issuer` and `api`): authorization with PKCE and state, the code exchange, and the API
// that says who signed in. The stand-ins check what sagews sends: the client secret, the redirect URI, the PKCE
// verifier against its challenge, the access token on every API call.
import { createHash, randomBytes } from "node:crypto"
import { createServer, type IncomingMessage, type Server } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ConfigSchema } from "../../src/config/schema.ts"
import { freePort, processesOf, startWebStack, type WebStack } from "./harness.ts"

const SECRET = "a stand-in client secret"

interface Person {
  readonly id: number | string
  readonly login?: string
  readonly name: string
  /** GitHub: the public profile email; Facebook: the confirmed email */
  readonly email: string | null
  /** GitHub's /user/emails */
  readonly emails?: ReadonlyArray<{ email: string; primary: boolean; verified: boolean }>
}

/** who the stand-ins sign in next */
let next: Person = { id: 1, name: "nobody", email: null }
const grants = new Map<string, { person: Person; challenge: string; redirect: string; clientId: string }>()
const tokens = new Map<string, Person>()
const seen: Array<{ path: string; body: URLSearchParams }> = []

const body = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    let text = ""
    req.on("data", (d: Buffer) => (text += d.toString("utf8")))
    req.on("end", () => resolve(text))
  })

/** GitHub at /gh (web) and /gh/api/v3 (API, as a GitHub Enterprise Server has it); Facebook at /fb and /fb/graph/v19.0 */
const standIn = async (req: IncomingMessage, res: import("node:http").ServerResponse): Promise<void> => {
  const url = new URL(req.url ?? "/", "http://stand-in")
  const json = (status: number, value: unknown) => {
    res.writeHead(status, { "content-type": "application/json" })
    res.end(JSON.stringify(value))
  }
  if (url.pathname === "/gh/login/oauth/authorize" || url.pathname === "/fb/v19.0/dialog/oauth") {
    const q = url.searchParams
    expect(q.get("response_type")).toBe("code")
    expect(q.get("code_challenge_method")).toBe("S256")
    expect(q.get("nonce")).toBeNull()
    expect(q.get("scope")).toBe(url.pathname.startsWith("/gh") ? "read:user user:email" : "email public_profile")
    const code = randomBytes(12).toString("hex")
    grants.set(code, { person: next, challenge: q.get("code_challenge") ?? "", redirect: q.get("redirect_uri") ?? "", clientId: q.get("client_id") ?? "" })
    const back = new URL(q.get("redirect_uri") ?? "")
    back.searchParams.set("code", code)
    back.searchParams.set("state", q.get("state") ?? "")
    res.writeHead(302, { location: back.href })
    return void res.end()
  }
  if (req.method === "POST" && (url.pathname === "/gh/login/oauth/access_token" || url.pathname === "/fb/graph/v19.0/oauth/access_token")) {
    const form = new URLSearchParams(await body(req))
    seen.push({ path: url.pathname, body: form })
    const grant = grants.get(form.get("code") ?? "")
    grants.delete(form.get("code") ?? "")
    const verifier = form.get("code_verifier") ?? ""
    if (grant === undefined) return json(400, { error: "bad_verification_code" })
    if (form.get("client_secret") !== SECRET || form.get("client_id") !== grant.clientId) return json(401, { error: "incorrect_client_credentials" })
    if (form.get("redirect_uri") !== grant.redirect) return json(400, { error: "redirect_uri_mismatch" })
    if (createHash("sha256").update(verifier).digest("base64url") !== grant.challenge) return json(400, { error: "invalid_grant", error_description: "PKCE" })
    const token = randomBytes(16).toString("hex")
    tokens.set(token, grant.person)
    return json(200, { access_token: token, token_type: "bearer", scope: "read:user,user:email" })
  }
  const person = tokens.get(/^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "")
  if (person === undefined) return json(401, { message: "Bad credentials" })
  if (url.pathname === "/gh/api/v3/user") {
    expect(req.headers["user-agent"]).toBeTruthy() // GitHub refuses API calls without one
    return json(200, { id: person.id, login: person.login, name: person.name, email: person.email })
  }
  if (url.pathname === "/gh/api/v3/user/emails") return json(200, person.emails ?? [])
  if (url.pathname === "/fb/graph/v19.0/me") {
    expect(url.searchParams.get("fields")).toBe("id,name,email")
    return json(200, { id: String(person.id), name: person.name, ...(person.email !== null ? { email: person.email } : {}) })
  }
  json(404, { message: "Not Found" })
}

let stack: WebStack
let server: Server

beforeAll(async () => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  server = createServer((req, res) => {
    standIn(req, res).catch((e: unknown) => json500(res, e))
  })
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  stack = await startWebStack({
    postgres: true,
    workers: 0,
    backendConfig: {
      signIn: {
        providers: [
          { name: "github", preset: "github", issuer: `${base}/gh`, clientId: "gh-client", clientSecret: SECRET },
          { name: "facebook", preset: "facebook", issuer: `${base}/fb`, api: `${base}/fb/graph/v19.0`, clientId: "fb-app", clientSecret: SECRET },
        ],
      },
    },
  })
}, 120_000)

const json500 = (res: import("node:http").ServerResponse, e: unknown): void => {
  // an expectation that failed inside the stand-in: the sign-in fails, and the test sees why in the answer
  res.writeHead(500, { "content-type": "application/json" })
  res.end(JSON.stringify({ error: "stand-in", message: e instanceof Error ? e.message : String(e) }))
}

afterAll(async () => {
  if (server !== undefined) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

/** start at sagews, through the stand-in, back to the callback: its answer, and the session cookie it set */
const signIn = async (provider: string, person: Person): Promise<{ response: Response; cookie: string | undefined }> => {
  next = person
  const start = await fetch(`${stack.backendUrl()}/api/v1/oidc/${provider}/start`, { redirect: "manual" })
  expect(start.status, await start.clone().text()).toBe(302)
  const pending = start.headers.getSetCookie().map((c) => c.split(";")[0] ?? "").find((c) => c.startsWith("sagews_oidc=")) ?? ""
  const atProvider = await fetch(start.headers.get("location") ?? "", { redirect: "manual" })
  expect(atProvider.status).toBe(302)
  const callback = atProvider.headers.get("location") ?? ""
  expect(callback.startsWith(`${stack.backendUrl()}/api/v1/oidc/${provider}/callback?`)).toBe(true)
  const response = await fetch(callback, { redirect: "manual", headers: { cookie: pending } })
  const cookie = response.headers.getSetCookie().map((c) => c.split(";")[0] ?? "").find((c) => c.startsWith("sagews_session=") && c !== "sagews_session=")
  return { response, cookie }
}

const me = async (cookie: string | undefined): Promise<{ id: string; email: string; name: string | null }> => {
  const r = await fetch(`${stack.backendUrl()}/api/v1/me`, { headers: { cookie: cookie ?? "" } })
  expect(r.status).toBe(200)
  return ((await r.json()) as { account: { id: string; email: string; name: string | null } }).account
}

describe("GitHub and Facebook presets", () => {
  it("lists both with the OpenID Connect providers' routes", async () => {
    const r = await fetch(`${stack.backendUrl()}/api/v1/oidc`)
    expect(await r.json()).toEqual({ providers: [{ name: "github", start: "/api/v1/oidc/github/start" }, { name: "facebook", start: "/api/v1/oidc/facebook/start" }] })
  })

  it("GitHub: signs in with the primary verified email of /user/emails; the same GitHub id is the same account after its email changes", async () => {
    const octo: Person = {
      id: 583231,
      login: "octocat",
      name: "The Octocat",
      email: "public@example.org",
      emails: [{ email: "old@example.org", primary: false, verified: true }, { email: "Octo@Example.org", primary: true, verified: true }],
    }
    const first = await signIn("github", octo)
    expect(first.response.status, await first.response.clone().text()).toBe(302)
    expect(first.response.headers.get("location")).toBe("/")
    const account = await me(first.cookie)
    expect(account).toMatchObject({ email: "octo@example.org", name: "The Octocat" })
    // the code exchange sent the secret and the PKCE verifier (the stand-in refuses otherwise)
    expect(seen.at(-1)?.body.get("grant_type")).toBe("authorization_code")
    const moved = await signIn("github", { ...octo, emails: [{ email: "new@example.org", primary: true, verified: true }] })
    expect(moved.response.status).toBe(302)
    expect(await me(moved.cookie)).toEqual(account)
  })

  it("GitHub: a person whose only email is unverified, or who has none, is refused with the reason", async () => {
    const unverified = await signIn("github", { id: 7, login: "eve", name: "Eve", email: "eve@example.org", emails: [{ email: "eve@example.org", primary: true, verified: false }] })
    expect(unverified.response.status).toBe(400)
    expect(await unverified.response.json()).toMatchObject({ error: "UnverifiedEmail", message: expect.stringContaining("has not verified the email eve@example.org") })
    expect(unverified.cookie).toBeUndefined()
    const none = await signIn("github", { id: 8, login: "ghost", name: "Ghost", email: null, emails: [] })
    expect(none.response.status).toBe(400)
    expect(await none.response.json()).toMatchObject({ error: "NoEmail" })
  })

  it("Facebook: signs in with the confirmed email of /me; a different Facebook id with the same email is the same account", async () => {
    const zuck = await signIn("facebook", { id: "10001", name: "Mark", email: "mark@example.org" })
    expect(zuck.response.status, await zuck.response.clone().text()).toBe(302)
    const account = await me(zuck.cookie)
    expect(account).toMatchObject({ email: "mark@example.org", name: "Mark" })
    expect(seen.at(-1)?.path).toBe("/fb/graph/v19.0/oauth/access_token")
    // an email the provider vouches for finds the account it names, as with OpenID Connect
    const again = await signIn("facebook", { id: "10002", name: "Mark", email: "mark@example.org" })
    expect(await me(again.cookie)).toEqual(account)
  })

  it("refuses a replayed callback: the stand-in's code works once", async () => {
    next = { id: 9, login: "ann", name: "Ann", email: null, emails: [{ email: "ann@example.org", primary: true, verified: true }] }
    const start = await fetch(`${stack.backendUrl()}/api/v1/oidc/github/start`, { redirect: "manual" })
    const pending = start.headers.getSetCookie().map((c) => c.split(";")[0] ?? "").find((c) => c.startsWith("sagews_oidc=")) ?? ""
    const callback = (await fetch(start.headers.get("location") ?? "", { redirect: "manual" })).headers.get("location") ?? ""
    expect((await fetch(callback, { redirect: "manual", headers: { cookie: pending } })).status).toBe(302)
    const replayed = await fetch(callback, { redirect: "manual", headers: { cookie: pending } })
    expect(replayed.status).toBe(400)
    expect(await replayed.json()).toMatchObject({ error: "Exchange" })
  })
})

describe("preset configs", () => {
  const providersOf = (providers: unknown) => ConfigSchema.shape.signIn.safeParse({ providers })
  const one = { name: "gh", clientId: "x", clientSecret: "y" }
  it("takes a preset without an issuer, and refuses an unknown preset, no issuer without a preset, and api without one", () => {
    expect(providersOf([{ ...one, preset: "github" }]).success).toBe(true)
    const messages = [
      [{ ...one, preset: "gitlab" }, "expected one of github, facebook"],
      [{ ...one }, "expected the provider's issuer URL"],
      [{ ...one, issuer: "https://id.example.org", api: "https://api.example.org" }, "api is for a preset"],
      [{ ...one, preset: "github", api: "http://api.example.org" }, "expected an https API base URL"],
    ] as const
    for (const [provider, message] of messages) {
      const parsed = providersOf([provider])
      expect(parsed.success).toBe(false)
      expect(parsed.error?.issues.map((i) => i.message).join("; ")).toContain(message)
    }
  })
})
