// OpenID Connect sign-in (issue 10, item 1) against a real local provider (oidc-provider with its development login
// and consent pages, driven by fetch) and a real backend with PostgreSQL: start, the provider's login, the callback
// and its session cookie, the same person again, refused states, replays and unverified emails, unknown providers.
import { createServer, type Server } from "node:http"
import Provider from "oidc-provider"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort, processesOf, startWebStack, type WebStack } from "./harness.ts"

const CLIENT_ID = "sagews"
const CLIENT_SECRET = "a test client secret that is long enough"
/** the people the provider knows, by login */
const PEOPLE: Record<string, { email: string; verified: boolean; name: string }> = {
  ada: { email: "Ada@Example.org", verified: true, name: "Ada" },
  eve: { email: "eve@example.org", verified: false, name: "Eve" },
}

let stack: WebStack
let issuer: string
let server: Server

beforeAll(async () => {
  const port = await freePort()
  issuer = `http://127.0.0.1:${port}`
  stack = await startWebStack({
    postgres: true,
    workers: 0,
    backendConfig: { signIn: { providers: [{ name: "local", issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }] } },
  })
  // made once the backend's port, and so the redirect URI, is known; the backend discovers it at the first start
  const provider = new Provider(issuer, {
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [`${stack.backendUrl()}/api/v1/oidc/local/callback`], grant_types: ["authorization_code"], response_types: ["code"] }],
    findAccount: (_ctx, id) => {
      const person = PEOPLE[id]
      return person === undefined ? undefined : { accountId: id, claims: () => ({ sub: id, email: person.email, email_verified: person.verified, name: person.name }) }
    },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: ["a test cookie key"] },
  })
  server = createServer(provider.callback())
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
})

afterAll(async () => {
  if (server !== undefined) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

/** cookies by name, kept by hand (fetch keeps none) */
type Jar = Map<string, string>
const keep = (jar: Jar, response: Response): void => {
  for (const line of response.headers.getSetCookie()) {
    const [pair = ""] = line.split(";")
    const at = pair.indexOf("=")
    const name = pair.slice(0, at)
    if (/Max-Age=0\b/i.test(line) || pair.slice(at + 1) === "") jar.delete(name)
    else jar.set(name, pair.slice(at + 1))
  }
}
const cookieHeader = (jar: Jar): string => [...jar].map(([k, v]) => `${k}=${v}`).join("; ")

const get = async (url: string, jar: Jar): Promise<Response> => {
  const response = await fetch(url, { redirect: "manual", headers: { cookie: cookieHeader(jar) } })
  keep(jar, response)
  return response
}

/** start at sagews; returns the callback URL the provider sends the browser back with, and sagews's cookies */
const throughProvider = async (login: string, returnTo?: string): Promise<{ callback: string; backendJar: Jar }> => {
  const backendJar: Jar = new Map()
  const start = await get(`${stack.backendUrl()}/api/v1/oidc/local/start${returnTo !== undefined ? `?return=${encodeURIComponent(returnTo)}` : ""}`, backendJar)
  expect(start.status).toBe(302)
  expect(backendJar.has("sagews_oidc")).toBe(true)
  const providerJar: Jar = new Map()
  let location = new URL(start.headers.get("location") ?? "", issuer).href
  expect(location.startsWith(`${issuer}/`)).toBe(true)
  for (let step = 0; step < 20; step++) {
    if (location.startsWith(stack.backendUrl())) return { callback: location, backendJar }
    const response = await get(location, providerJar)
    if (response.status >= 300 && response.status < 400) {
      location = new URL(response.headers.get("location") ?? "", location).href
      continue
    }
    // a development login or consent page: fill its one form in and send it
    const html = await response.text()
    expect(response.status, html).toBe(200)
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]
    expect(action, html).toBeDefined()
    const form = new URLSearchParams()
    for (const m of html.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) form.set(m[1] ?? "", m[2] ?? "")
    if (form.get("prompt") === "login") {
      form.set("login", login)
      form.set("password", "any password")
    }
    const posted = await fetch(new URL(action ?? "", location), { method: "POST", redirect: "manual", body: form, headers: { cookie: cookieHeader(providerJar) } })
    keep(providerJar, posted)
    expect(posted.status, await posted.clone().text()).toBeGreaterThanOrEqual(300)
    location = new URL(posted.headers.get("location") ?? "", location).href
  }
  throw new Error(`the provider never sent the browser back to sagews (last at ${location})`)
}

const signIn = async (login: string, returnTo?: string) => {
  const { callback, backendJar } = await throughProvider(login, returnTo)
  const response = await get(callback, backendJar)
  return { response, jar: backendJar, callback }
}

const me = async (jar: Jar) => {
  const response = await fetch(`${stack.backendUrl()}/api/v1/me`, { headers: { cookie: cookieHeader(jar) } })
  return { status: response.status, json: (await response.json()) as { account?: { id: string; email: string; name: string | null }; csrf?: string } }
}

describe("OpenID Connect sign-in", () => {
  it("lists the configured providers", async () => {
    const response = await fetch(`${stack.backendUrl()}/api/v1/oidc`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ providers: [{ name: "local", start: "/api/v1/oidc/local/start" }] })
  })

  it("signs in through the provider: the session cookie names the provider's email, and the same person is the same account", async () => {
    const first = await signIn("ada")
    expect(first.response.status, await first.response.clone().text()).toBe(302)
    expect(first.response.headers.get("location")).toBe("/")
    expect(first.jar.has("sagews_session")).toBe(true)
    expect(first.jar.has("sagews_oidc")).toBe(false)
    const who = await me(first.jar)
    expect(who.status).toBe(200)
    expect(who.json.account).toMatchObject({ email: "ada@example.org", name: "Ada" })
    expect(who.json.csrf).toMatch(/^[A-Za-z0-9_-]{43}$/)
    // the provider's subject, not the email, is who it is: a changed email at the provider is the same account
    PEOPLE["ada"] = { email: "ada.lovelace@example.org", verified: true, name: "Ada" }
    const second = await signIn("ada", "/worksheets?x=1")
    expect(second.response.status).toBe(302)
    expect(second.response.headers.get("location")).toBe("/worksheets?x=1")
    const again = await me(second.jar)
    expect(again.json.account).toEqual(who.json.account)
    PEOPLE["ada"] = { email: "Ada@Example.org", verified: true, name: "Ada" }
  })

  it("refuses a tampered state, a missing sign-in cookie, a replayed callback and a return path to another site", async () => {
    const { callback, backendJar } = await throughProvider("ada")
    const tampered = new URL(callback)
    tampered.searchParams.set("state", "not-the-state")
    const bad = await get(tampered.href, new Map(backendJar))
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ error: "BadState" })
    const missing = await get(callback, new Map())
    expect(missing.status).toBe(400)
    expect(await missing.json()).toMatchObject({ error: "NoSignInStarted" })
    const forged = await get(callback, new Map([["sagews_oidc", `${backendJar.get("sagews_oidc")?.slice(0, -2)}AA`]]))
    expect(forged.status).toBe(400)
    expect(await forged.json()).toMatchObject({ error: "BadState" })
    // the right one still works once, and its cookie replayed with the same code is refused by the provider's exchange
    const pending = backendJar.get("sagews_oidc") ?? ""
    expect((await get(callback, backendJar)).status).toBe(302)
    const replayed = await get(callback, new Map([["sagews_oidc", pending]]))
    expect(replayed.status).toBe(400)
    expect(await replayed.json()).toMatchObject({ error: "Exchange" })
    const elsewhere = await fetch(`${stack.backendUrl()}/api/v1/oidc/local/start?return=${encodeURIComponent("//evil.example/")}`, { redirect: "manual" })
    expect(elsewhere.status).toBe(400)
  })

  it("refuses an email the provider has not verified, with a page for a browser", async () => {
    const { callback, backendJar } = await throughProvider("eve")
    const response = await fetch(callback, { redirect: "manual", headers: { cookie: cookieHeader(backendJar), accept: "text/html" } })
    expect(response.status).toBe(400)
    expect(response.headers.get("content-type")).toContain("text/html")
    expect(await response.text()).toContain("has not verified the email eve@example.org")
  })

  it("answers 404 for a provider that is not configured", async () => {
    for (const route of ["start", "callback"]) {
      const response = await fetch(`${stack.backendUrl()}/api/v1/oidc/nosuch/${route}`, { redirect: "manual" })
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ error: "UnknownProvider", message: expect.stringContaining(`"nosuch"`) })
    }
  })
})
