// Read-only share links (issue 10 item 4) against a real backend and PostgreSQL: the owner (cookie + CSRF, or an API
// token) shares a worksheet and gets the same token again; anyone holding it reads the latest version, and later
// saves; a revoked token and a wrong one get the same 404; another account's worksheet is 404; a cookie's POST or
// DELETE without the CSRF header is refused; the page's module (src/client/permalink.ts) does the same.
import { describe, expect, it } from "vitest"
import { fetchShared, readPageLink, shareWorksheet, unshareWorksheet } from "../../src/client/permalink.ts"
import { webStackFor } from "./harness.ts"
import { users, type Who } from "./users.ts"

const stack = webStackFor({ postgres: true, workers: 0 })

const { cookieUser, tokenUser, call } = users(stack)


const notebook = (title: string, source: string): string =>
  JSON.stringify({
    cells: [{ cell_type: "code", execution_count: 1, id: "c1", metadata: {}, outputs: [{ name: "stdout", output_type: "stream", text: ["4\n"] }], source }],
    metadata: { title },
    nbformat: 4,
    nbformat_minor: 5,
  }, null, 1)

const create = async (who: Who, title: string, source = "print(2+2)"): Promise<{ id: string; version: string }> => {
  const r = await call(who, "/api/v1/worksheets", { method: "POST", body: notebook(title, source) })
  expect(r.status, await r.clone().text()).toBe(201)
  return (await r.json()) as { id: string; version: string }
}

const share = async (who: Who, id: string): Promise<{ url: string; token: string }> => {
  const r = await call(who, `/api/v1/worksheets/${id}/share`, { method: "POST" })
  expect(r.status, await r.clone().text()).toBe(200)
  return (await r.json()) as { url: string; token: string }
}

/** GET /api/v1/shared/{token} by no one in particular: no cookie, no token */
const shared = (token: string, headers: Record<string, string> = {}) => fetch(`${stack().backendUrl()}/api/v1/shared/${token}`, { headers })

const TOKEN = /^[A-Za-z0-9_-]{43}$/
const GONE = "no worksheet is shared by this link: it was revoked, or the link is wrong; ask its owner for a new one"

describe("share links", () => {
  it("the owner shares a worksheet; anyone with the token reads its latest version, and later saves; POST again gives the same token", async () => {
    const ann = await cookieUser("ann@example.org")
    const { id, version } = await create(ann, "Shared", "factor(x^2 - 1)")
    const link = await share(ann, id)
    expect(link.token).toMatch(TOKEN)
    expect(link.url).toBe(`/?s=${link.token}`)
    expect(readPageLink(link.url.slice(1))).toEqual({ type: "s", token: link.token })

    const r = await shared(link.token)
    expect(r.status).toBe(200)
    expect(r.headers.get("etag")).toBe(`"${version}"`)
    expect(r.headers.get("cache-control")).toBe("no-store")
    expect(r.headers.get("content-type")).toBe("application/x-ipynb+json")
    expect(r.headers.get("referrer-policy")).toBe("no-referrer")
    // byte for byte what the owner reads
    const owners = await call(ann, `/api/v1/worksheets/${id}`)
    expect(await r.text()).toBe(await owners.text())

    // an edit is what the link shows from then on
    const edited = notebook("Shared", "factor(x^3 - 1)")
    const put = await call(ann, `/api/v1/worksheets/${id}`, { method: "PUT", body: edited, headers: { "if-match": `"${version}"` } })
    expect(put.status).toBe(200)
    const next = ((await put.json()) as { version: string }).version
    const after = await shared(link.token)
    expect(after.headers.get("etag")).toBe(`"${next}"`)
    expect(await after.text()).toBe(edited)
    // a reader polling with its ETag is told when nothing changed
    const unchanged = await shared(link.token, { "if-none-match": `"${next}"` })
    expect(unchanged.status).toBe(304)
    expect(unchanged.headers.get("etag")).toBe(`"${next}"`)
    expect((await shared(link.token, { "if-none-match": `"${version}"` })).status).toBe(200)

    expect(await share(ann, id)).toEqual(link)
    // a reader holding the link cannot write through it
    for (const method of ["PUT", "POST", "DELETE"]) expect((await fetch(`${stack().backendUrl()}/api/v1/shared/${link.token}`, { method })).status, method).toBe(405)
  })

  it("revoking makes the token read nothing, as a wrong one; sharing again makes a new token", async () => {
    const bob = await tokenUser("bob@example.org")
    const { id } = await create(bob, "Revoked")
    const first = await share(bob, id)
    expect((await shared(first.token)).status).toBe(200)

    const revoked = await call(bob, `/api/v1/worksheets/${id}/share`, { method: "DELETE" })
    expect(revoked.status).toBe(204)
    const gone = await shared(first.token)
    expect(gone.status).toBe(404)
    const wrong = await shared("A".repeat(43))
    expect(wrong.status).toBe(404)
    const malformed = await shared("not-a-token")
    expect(malformed.status).toBe(404)
    // the same answer for all three: a holder learns nothing about other tokens
    const bodies = [await gone.json(), await wrong.json(), await malformed.json()]
    for (const body of bodies) expect(body).toEqual({ error: "not_found", message: GONE })

    const second = await share(bob, id)
    expect(second.token).not.toBe(first.token)
    expect((await shared(second.token)).status).toBe(200)
    expect((await shared(first.token)).status).toBe(404)
    // revoking twice is fine
    expect((await call(bob, `/api/v1/worksheets/${id}/share`, { method: "DELETE" })).status).toBe(204)
    expect((await call(bob, `/api/v1/worksheets/${id}/share`, { method: "DELETE" })).status).toBe(204)
  })

  it("a deleted worksheet's link reads nothing", async () => {
    const cat = await tokenUser("cat@example.org")
    const { id } = await create(cat, "Deleted")
    const link = await share(cat, id)
    expect((await call(cat, `/api/v1/worksheets/${id}`, { method: "DELETE" })).status).toBe(204)
    const r = await shared(link.token)
    expect(r.status).toBe(404)
    expect(await r.json()).toEqual({ error: "not_found", message: GONE })
    expect((await call(cat, `/api/v1/worksheets/${id}/share`, { method: "POST" })).status).toBe(404)
  })

  it("another account's worksheet is 404 on share and revoke, as an unknown id, and its link keeps working", async () => {
    const dan = await cookieUser("dan@example.org")
    const eve = await tokenUser("eve@example.org")
    const { id } = await create(dan, "Dan's")
    const link = await share(dan, id)
    for (const method of ["POST", "DELETE"]) {
      const r = await call(eve, `/api/v1/worksheets/${id}/share`, { method })
      expect(r.status, method).toBe(404)
      expect(await r.json()).toEqual({ error: "not_found", message: `no worksheet ${id} in your account` })
    }
    const unknown = await call(eve, "/api/v1/worksheets/00000000-0000-4000-8000-000000000000/share", { method: "POST" })
    expect(unknown.status).toBe(404)
    expect((await call(eve, "/api/v1/worksheets/nonsense/share", { method: "POST" })).status).toBe(404)
    expect((await shared(link.token)).status).toBe(200)
  })

  it("sharing needs an account: 401 without one, 403 for a cookie's POST or DELETE without the CSRF header, and nothing changes", async () => {
    const fay = await cookieUser("fay@example.org")
    const { id } = await create(fay, "CSRF")
    expect((await call(undefined, `/api/v1/worksheets/${id}/share`, { method: "POST" })).status).toBe(401)

    const forged = await call(fay, `/api/v1/worksheets/${id}/share`, { method: "POST", csrf: false })
    expect(forged.status).toBe(403)
    expect(await forged.json()).toMatchObject({ error: "csrf", header: "X-CSRF-Token" })
    const wrong = await call(fay, `/api/v1/worksheets/${id}/share`, { method: "POST", csrf: false, headers: { "x-csrf-token": "nope" } })
    expect(wrong.status).toBe(403)

    const link = await share(fay, id)
    const forgedRevoke = await call(fay, `/api/v1/worksheets/${id}/share`, { method: "DELETE", csrf: false })
    expect(forgedRevoke.status).toBe(403)
    expect((await shared(link.token)).status).toBe(200)
    expect((await call(fay, `/api/v1/worksheets/${id}/share`, { method: "GET" })).status).toBe(405)
  })

  it("the page's module shares, reads and revokes", async () => {
    const gus = await cookieUser("gus@example.org")
    const { id, version } = await create(gus, "Module", "plot(sin(x))")
    const real = globalThis.fetch
    // the module fetches the page's relative paths with the page's cookie: resolve them against the backend, with gus's
    globalThis.fetch = (input, init) => {
      const headers = new Headers(init?.headers)
      if (init?.credentials !== "omit") headers.set("cookie", gus.headers.cookie ?? "")
      return real(typeof input === "string" && input.startsWith("/") ? `${stack().backendUrl()}${input}` : input, { ...init, headers })
    }
    try {
      expect(await shareWorksheet(id)).toMatchObject({ ok: false, status: 403 })
      const link = await shareWorksheet(id, gus.csrf)
      expect(link.ok).toBe(true)
      if (!link.ok) return
      const read = await fetchShared(link.value.token)
      expect(read).toMatchObject({ ok: true, value: { version, notebook: { metadata: { title: "Module" }, cells: [{ source: "plot(sin(x))" }] } } })
      expect(await unshareWorksheet(id, gus.csrf)).toEqual({ ok: true, value: undefined })
      expect(await fetchShared(link.value.token)).toEqual({ ok: false, status: 404, message: GONE })
    } finally {
      globalThis.fetch = real
    }
  })
})

describe("a backend without PostgreSQL", () => {
  const bare = webStackFor({ workers: 0 })

  it("answers the share routes 503, saying they need PostgreSQL", async () => {
    for (const [method, path] of [["POST", "/api/v1/worksheets/00000000-0000-4000-8000-000000000000/share"], ["GET", `/api/v1/shared/${"A".repeat(43)}`]] as const) {
      const r = await fetch(`${bare().backendUrl()}${path}`, { method })
      expect(r.status, `${method} ${path}`).toBe(503)
      expect(((await r.json()) as { message: string }).message).toContain("share links need PostgreSQL")
    }
  })
})
