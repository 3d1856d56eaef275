// Permalinks (issue 10 item 4) against a real backend and PostgreSQL: the ?z= form made and read by the page's
// module (src/client/permalink.ts) and by sagecell's Python (zlib + base64url), including unicode code; ?q= made,
// read back, the same id for the same code and kernel, the size limit, the per-address rate limit and bad bodies,
// each refused with a message naming what is wrong; and 503 on a backend without PostgreSQL.
import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { MAX_PERMALINK_CODE_BYTES, PERMALINK_Q, PERMALINK_RATE, permalinkId } from "../../src/backend/permalinks.ts"
import { createPermalink, decodeZ, encodeZ, fetchPermalink, PermalinkError, readPageLink, zLink } from "../../src/client/permalink.ts"
import { webStackFor } from "./harness.ts"

const stack = webStackFor({ postgres: true, workers: 0 })

/** POST /api/v1/permalinks as from `address` (the backend trusts X-Forwarded-For from this host, as from haproxy) */
const post = (body: unknown, o: { address?: string; contentType?: string } = {}) =>
  fetch(`${stack().backendUrl()}/api/v1/permalinks`, {
    method: "POST",
    headers: { "content-type": o.contentType ?? "application/json", "x-forwarded-for": o.address ?? "192.0.2.1" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  })

const get = (q: string) => fetch(`${stack().backendUrl()}/api/v1/permalinks/${q}`)

/** sagecell's own encoding, and its decoding: what a sagecell server writes and reads */
const python = (script: string, input: string): string => {
  const run = spawnSync("python3", ["-c", script], { input, encoding: "utf8" })
  expect(run.status, run.stderr).toBe(0)
  return run.stdout
}
const sagecellEncode = (code: string): string =>
  python("import sys, zlib, base64; sys.stdout.write(base64.urlsafe_b64encode(zlib.compress(sys.stdin.buffer.read())).decode())", code)
const sagecellDecode = (z: string): string =>
  python("import sys, zlib, base64; z = sys.stdin.read(); z += '=' * ((4 - len(z) % 4) % 4); sys.stdout.buffer.write(zlib.decompress(base64.urlsafe_b64decode(z)))", z)

const UNICODE = "# π ≈ 3.14159 — ✓ 你好 🎉\nprint(\"ünïcödé\", 'x' * 3)\n"

describe("?z= permalinks", () => {
  it("read a link sagecell made (zlib, base64url, padded), unicode included", async () => {
    // made by sagecell's PermalinkHandler: base64.urlsafe_b64encode(zlib.compress(code.encode('utf8')))
    expect(await decodeZ("eJwryMkv0SjOzNOo0NRR0KjQUTDQUTDSKsjU1AQAbfMHNg==")).toBe("plot(sin(x), (x, 0, 2*pi))")
    // sagecell lets the '=' padding go, so a link needs no escaping
    expect(await decodeZ("eJwryMkv0SjOzNOo0NRR0KjQUTDQUTDSKsjU1AQAbfMHNg")).toBe("plot(sin(x), (x, 0, 2*pi))")
    expect(await decodeZ("eJwBKwDU_3ByaW50KCLPgCDiiYggMy4xNDE1OSDigJQg4pyTIOS9oOWlvSDwn46JIimLNBNf")).toBe("print(\"π ≈ 3.14159 — ✓ 你好 🎉\")")
    expect(await decodeZ(sagecellEncode(UNICODE))).toBe(UNICODE)
  })

  it("make links sagecell reads, and read them back, for code of every kind", async () => {
    const codes = ["1+1", UNICODE, "x".repeat(50_000), Array.from({ length: 2_000 }, (_, i) => `a${i} = ${i * 7919 % 1000}`).join("\n"), "\t\r\n \\ \"'`$"]
    for (const code of codes) {
      const z = await encodeZ(code)
      expect(z).toMatch(/^[A-Za-z0-9_-]+$/)
      expect(await decodeZ(z)).toBe(code)
      expect(sagecellDecode(z)).toBe(code)
    }
    expect(await zLink("factor(x^2-1)")).toBe(`/?z=${await encodeZ("factor(x^2-1)")}&kernel=sage`)
  })

  it("read standard base64 and raw deflate too, and a '+' a query string turned into a space", async () => {
    const zlib = Buffer.from(await encodeZ(UNICODE), "base64url")
    expect(await decodeZ(zlib.toString("base64"))).toBe(UNICODE)
    const raw = zlib.subarray(2, -4).toString("base64url")
    expect(await decodeZ(raw)).toBe(UNICODE)
    // a code whose standard base64 has '+': URLSearchParams reads it as ' '
    let code = "a"
    while (!Buffer.from(await encodeZ(code), "base64url").toString("base64").includes("+")) code += "b"
    const standard = Buffer.from(await encodeZ(code), "base64url").toString("base64")
    const link = readPageLink(`?z=${standard}`)
    expect(link?.type).toBe("z")
    expect(await decodeZ(link?.type === "z" ? link.z : "")).toBe(code)
  })

  it("refuse a cut, altered or empty z with a PermalinkError saying so", async () => {
    const z = await encodeZ(UNICODE)
    await expect(decodeZ(z.slice(0, z.length - 6))).rejects.toThrow(PermalinkError)
    await expect(decodeZ("not*base64")).rejects.toThrow(/not base64url/)
    await expect(decodeZ("")).rejects.toThrow(/empty/)
    await expect(decodeZ(Buffer.from("plain text, not compressed").toString("base64url"))).rejects.toThrow(/not compressed code/)
    // valid zlib, but not UTF-8
    const latin1 = Buffer.from(await new Response(new Blob([new Uint8Array([0xe9, 0xe8])]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer()).toString("base64url")
    await expect(decodeZ(latin1)).rejects.toThrow(/not UTF-8/)
    // a small link that inflates past the limit
    await expect(decodeZ(await encodeZ("0".repeat(2 * 1024 * 1024)))).rejects.toThrow(/larger than/)
  })

  it("read what a page address asks for: s over q over z, the kernel from kernel= or sagecell's lang=", () => {
    expect(readPageLink("?z=abc&kernel=python")).toEqual({ type: "z", z: "abc", kernel: "python" })
    expect(readPageLink("?z=abc&lang=python")).toEqual({ type: "z", z: "abc", kernel: "python" })
    expect(readPageLink("?z=abc&lang=gp")).toEqual({ type: "z", z: "abc", kernel: "sage" })
    expect(readPageLink("?z=abc")).toEqual({ type: "z", z: "abc", kernel: "sage" })
    expect(readPageLink("?q=abcdefghijklmnop&z=abc")).toEqual({ type: "q", q: "abcdefghijklmnop" })
    expect(readPageLink("?s=tok&q=x")).toEqual({ type: "s", token: "tok" })
    expect(readPageLink("")).toBeUndefined()
    expect(readPageLink("?z=")).toBeUndefined()
  })
})

describe("?q= permalinks", () => {
  it("create one (no account), read it back; the same code and kernel are the same q, another kernel another", async () => {
    const r = await post({ code: UNICODE, kernel: "sage" })
    expect(r.status, await r.clone().text()).toBe(201)
    const made = (await r.json()) as { q: string; z: string; kernel: string; url: string }
    expect(made.q).toMatch(PERMALINK_Q)
    expect(made).toEqual({ q: made.q, z: made.z, kernel: "sage", url: `/?q=${made.q}` })
    expect(r.headers.get("location")).toBe(`/api/v1/permalinks/${made.q}`)
    expect(made.q).toBe(permalinkId("sage", UNICODE))
    // the z of the reply is sagecell's format: Python's zlib reads it, and so does the page
    expect(sagecellDecode(made.z)).toBe(UNICODE)
    expect(await decodeZ(made.z)).toBe(UNICODE)

    const read = await get(made.q)
    expect(read.status).toBe(200)
    expect(await read.json()).toEqual({ code: UNICODE, kernel: "sage" })
    expect(read.headers.get("access-control-allow-origin")).toBe("*")

    const again = await post({ code: UNICODE, kernel: "sage" }, { address: "192.0.2.2" })
    expect(again.status).toBe(200)
    expect(((await again.json()) as { q: string }).q).toBe(made.q)
    // kernel defaults to sage
    expect(((await (await post({ code: UNICODE })).json()) as { q: string }).q).toBe(made.q)

    const python = await post({ code: UNICODE, kernel: "python" })
    expect(python.status).toBe(201)
    const other = ((await python.json()) as { q: string }).q
    expect(other).not.toBe(made.q)
    expect(await (await get(other)).json()).toEqual({ code: UNICODE, kernel: "python" })
  })

  it("the page's module creates and fetches one", async () => {
    const real = globalThis.fetch
    // the module fetches the page's relative paths: resolve them against the backend
    globalThis.fetch = (input, init) => real(typeof input === "string" && input.startsWith("/") ? `${stack().backendUrl()}${input}` : input, init)
    try {
      const made = await createPermalink("var('y'); solve(y^2 == 4, y)", "sage")
      expect(made.ok).toBe(true)
      if (!made.ok) return
      expect(made.value.url).toBe(`/?q=${made.value.q}`)
      expect(await fetchPermalink(made.value.q)).toEqual({ ok: true, value: { code: "var('y'); solve(y^2 == 4, y)", kernel: "sage" } })
      expect(await fetchPermalink("AAAAAAAAAAAAAAAA")).toMatchObject({ ok: false, status: 404, message: "no permalink AAAAAAAAAAAAAAAA on this server" })
      const big = await createPermalink("x".repeat(MAX_PERMALINK_CODE_BYTES + 1))
      expect(big).toMatchObject({ ok: false, status: 413 })
    } finally {
      globalThis.fetch = real
    }
  })

  it("an unknown or malformed q is 404", async () => {
    for (const q of ["AAAAAAAAAAAAAAAA", "short", "%00", "x".repeat(200)]) {
      const r = await get(q)
      expect(r.status, q).toBe(404)
      expect(((await r.json()) as { message: string }).message).toMatch(/^no permalink .* on this server$/)
    }
    expect((await fetch(`${stack().backendUrl()}/api/v1/permalinks/`)).status).toBe(404)
    expect((await get("AAAAAAAAAAAAAAAA/more")).status).toBe(404)
  })

  it("code up to 64 KiB is kept byte for byte; past it 413 naming the limit, with nothing stored", async () => {
    // 3-byte characters up to the last byte that fits
    const fits = "€".repeat(Math.floor(MAX_PERMALINK_CODE_BYTES / 3)) + "x".repeat(MAX_PERMALINK_CODE_BYTES % 3)
    expect(Buffer.byteLength(fits)).toBe(MAX_PERMALINK_CODE_BYTES)
    const ok = await post({ code: fits })
    expect(ok.status).toBe(201)
    expect(((await (await get(((await ok.json()) as { q: string }).q)).json()) as { code: string }).code).toBe(fits)

    const over = fits + "x"
    const r = await post({ code: over })
    expect(r.status).toBe(413)
    const body = (await r.json()) as { message: string; max: number }
    expect(body.max).toBe(65_536)
    expect(body.message).toContain(`the code is ${MAX_PERMALINK_CODE_BYTES + 1} bytes; a permalink holds at most 65536 bytes (64 KiB)`)
    expect((await get(permalinkId("sage", over))).status).toBe(404)
    // a body far past any code's JSON is refused before it is parsed
    const huge = await post(`{"code": "${"\\u0000".repeat(70_000)}"}`)
    expect(huge.status).toBe(413)
    expect(((await huge.json()) as { message: string }).message).toMatch(/at most 65536 bytes \(64 KiB\)/)
  })

  it("a bad body is refused with 400 or 415, saying what is wrong", async () => {
    const cases: Array<[unknown, number, RegExp, string?]> = [
      ["not json", 400, /the body is not JSON/],
      [{ kernel: "sage" }, 400, /^invalid permalink: code: /],
      [{ code: "" }, 400, /code: the code is empty/],
      [{ code: 42 }, 400, /^invalid permalink: code: /],
      [{ code: "1", kernel: "gp" }, 400, /^invalid permalink: kernel: /],
      [{ code: "1", language: "sage" }, 400, /language/],
      [{ code: "a\u0000b" }, 400, /NUL character/],
      ['{"code": "\\ud800 alone"}', 400, /unpaired UTF-16 surrogate/],
      [{ code: "1" }, 415, /content-type: application\/json/, "text/plain"],
    ]
    for (const [body, status, message, contentType] of cases) {
      const r = await post(body, contentType !== undefined ? { contentType } : {})
      expect(r.status, JSON.stringify(body)).toBe(status)
      expect(((await r.json()) as { message: string }).message, JSON.stringify(body)).toMatch(message)
    }
    const wrongMethod = await fetch(`${stack().backendUrl()}/api/v1/permalinks`)
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get("allow")).toBe("POST")
    expect((await fetch(`${stack().backendUrl()}/api/v1/permalinks/AAAAAAAAAAAAAAAA`, { method: "DELETE" })).status).toBe(405)
  })

  it(`an address making more than ${PERMALINK_RATE.max} new ones an hour gets 429; existing code and other addresses still get theirs`, async () => {
    const address = "198.51.100.7"
    const first = await post({ code: "limited 0" }, { address })
    expect(first.status).toBe(201)
    for (let i = 1; i < PERMALINK_RATE.max; i++) {
      const r = await post({ code: `limited ${i}` }, { address })
      expect(r.status, `permalink ${i}`).toBe(201)
    }
    const refused = await post({ code: "one too many" }, { address })
    expect(refused.status).toBe(429)
    const body = (await refused.json()) as { error: string; limit: string; max: number; retryAfterMs: number; message: string }
    expect(body).toMatchObject({ error: "limit", limit: "permalinksPerAddress", max: PERMALINK_RATE.max })
    expect(body.message).toContain(`your address (${address}) made ${PERMALINK_RATE.max} within 60 minutes`)
    expect(body.retryAfterMs).toBeGreaterThan(3_500_000)
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(3_500)
    expect((await get(permalinkId("sage", "one too many"))).status).toBe(404)
    // code that has one already is free
    expect((await post({ code: "limited 0" }, { address })).status).toBe(200)
    expect((await post({ code: "one too many" }, { address: "198.51.100.8" })).status).toBe(201)
  })
})

describe("a backend without PostgreSQL", () => {
  const bare = webStackFor({ workers: 0 })

  it("answers ?q= 503 with the z link that needs no server", async () => {
    const r = await fetch(`${bare().backendUrl()}/api/v1/permalinks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code: "1+1" }) })
    expect(r.status).toBe(503)
    const { message } = (await r.json()) as { message: string }
    expect(message).toContain("need PostgreSQL")
    const z = /\/\?z=([A-Za-z0-9_-]+)&kernel=sage$/.exec(message)?.[1]
    expect(await decodeZ(z ?? "")).toBe("1+1")
    expect((await fetch(`${bare().backendUrl()}/api/v1/permalinks/AAAAAAAAAAAAAAAA`)).status).toBe(503)
  })
})
