// Publishing (issue 10 item 4) through real PostgreSQL, a backend, nginx and haproxy: POST /{id}/publish writes a
// static page that haproxy and nginx serve at /pub/<slug>/ (code, KaTeX, an image; no script can run), again at the
// same URL after an edit, and with every backend stopped; DELETE removes it (404); another account gets 404.
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { KATEX_ASSETS, PAGE_CSP } from "../../src/publish/render.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"
import { users, type Who } from "./users.ts"

let stack: WebStack

beforeAll(async () => {
  stack = await startWebStack({ postgres: true, workers: 0, haproxy: true, nginx: true })
}, 120_000)

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

const { cookieUser, tokenUser } = users(() => stack)

/** through the front door, as a browser would */
const call = (who: Who, path: string, o: { method?: string; body?: string; headers?: Record<string, string>; csrf?: boolean } = {}) => {
  const method = o.method ?? "GET"
  const csrf: Record<string, string> = who.csrf !== undefined && method !== "GET" && o.csrf !== false ? { "x-csrf-token": who.csrf } : {}
  return fetch(`${stack.frontUrl()}${path}`, {
    method,
    headers: { ...who.headers, ...csrf, ...(o.body !== undefined ? { "content-type": "application/json" } : {}), ...o.headers },
    ...(o.body !== undefined ? { body: o.body } : {}),
  })
}

/** a 1×1 PNG */
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
const HOSTILE = "<script>document.title='pwned'</script><p onclick=\"alert(1)\">hi</p>"

const notebook = (title: string, source: string): string =>
  JSON.stringify({
    cells: [
      { cell_type: "markdown", id: "intro", metadata: {}, source: [`# ${title}\n`, "<script>alert('md')</script>\n\n", "Euler: $e^{i\\pi} = -1$, costs $5 and $6, [a link](https://example.org/x) and [another](javascript:alert(2)).\n\n", "| n | n² |\n|---|---|\n| 3 | 9 |\n"] },
      {
        cell_type: "code", execution_count: 1, id: "c1", metadata: {}, source,
        outputs: [
          { name: "stdout", output_type: "stream", text: ["4\n"] },
          { output_type: "execute_result", execution_count: 1, metadata: {}, data: { "text/plain": "1/2", "text/latex": "$\\frac{1}{2}$" } },
          { output_type: "display_data", metadata: {}, data: { "text/plain": "<Figure>", "image/png": PNG } },
          { output_type: "display_data", metadata: {}, data: { "text/plain": "hi", "text/html": HOSTILE } },
          { output_type: "error", ename: "ZeroDivisionError", evalue: "division by zero", traceback: ["\u001b[31mZeroDivisionError\u001b[0m: division by zero"] },
        ],
      },
    ],
    metadata: { title },
    nbformat: 4,
    nbformat_minor: 5,
  })

const create = async (who: Who, title: string, source: string): Promise<{ id: string; version: string }> => {
  const r = await call(who, "/api/v1/worksheets", { method: "POST", body: notebook(title, source) })
  expect(r.status, await r.clone().text()).toBe(201)
  return (await r.json()) as { id: string; version: string }
}

const publish = async (who: Who, id: string): Promise<{ url: string; version: string }> => {
  const r = await call(who, `/api/v1/worksheets/${id}/publish`, { method: "POST" })
  expect(r.status, await r.clone().text()).toBe(200)
  return (await r.json()) as { url: string; version: string }
}

const page = (url: string) => fetch(`${stack.frontUrl()}${url}`)

let ann: Who
let bob: Who
/** the worksheet that stays published, served at the end with every backend stopped */
let kept: { id: string; url: string; html: string }

describe("publish", () => {
  it("serves the latest version at /pub/<slug>/: code escaped, LaTeX through KaTeX with its CSS, an image", async () => {
    ann = await cookieUser("ann@example.org")
    bob = await tokenUser("bob@example.org")
    const { id, version } = await create(ann, "Halves & <Quarters>", "print(1 < 2)\nfactor(2^64+1)")
    const published = await publish(ann, id)
    expect(published).toEqual({ url: expect.stringMatching(/^\/pub\/[A-Za-z0-9_-]{22}\/$/), version })

    const r = await page(published.url)
    expect(r.status).toBe(200)
    expect(r.headers.get("content-type")).toMatch(/^text\/html/)
    const html = await r.text()
    expect(html).toContain("<title>Halves &amp; &lt;Quarters&gt;</title>")
    expect(html).toContain("print(1 &lt; 2)\nfactor(2^64+1)")
    expect(html).toContain('class="katex"')
    expect(html).toContain("mfrac") // KaTeX's rendering of \frac, not the TeX source
    expect(html).toContain('class="katex-html"')
    expect(html).toContain(`<img alt="" src="data:image/png;base64,${PNG}">`)
    expect(html).toContain("ZeroDivisionError: division by zero") // colour codes stripped
    // markdown as HTML: a heading, its TeX through KaTeX, links only to http(s), a table; its raw HTML as text
    expect(html).toContain("&lt;script&gt;alert('md')&lt;/script&gt;")
    expect(html).toMatch(/<h1>Halves &amp; &lt;Quarters&gt;<\/h1>/)
    expect(html).toMatch(/Euler: <span class="katex">.*<mi>π<\/mi>/s)
    expect(html).toContain("costs $5 and $6")
    expect(html).toContain('<a href="https://example.org/x">a link</a>')
    expect(html).toContain("[another](javascript:alert(2))")
    expect(html).not.toContain('href="javascript:')
    expect(html).toMatch(/<table>\s*<thead>\s*<tr>\s*<th>n<\/th>\s*<th>n²<\/th>/)

    // KaTeX's CSS and its fonts come from /pub/ too
    const css = /<link rel="stylesheet" href="\.\.\/(katex-[^/]+\/katex\.min\.css)">/.exec(html)?.[1]
    expect(css).toBeDefined()
    const cssReply = await page(`/pub/${css}`)
    expect(cssReply.status).toBe(200)
    expect(cssReply.headers.get("content-type")).toMatch(/^text\/css/)
    const font = /url\((fonts\/KaTeX_Main-Regular\.woff2)\)/.exec(await cssReply.text())?.[1]
    expect(font).toBeDefined()
    const fontReply = await page(`/pub/${css?.split("/")[0]}/${font}`)
    expect(fontReply.status).toBe(200)
    expect(fontReply.headers.get("content-type")).toBe("font/woff2")
    kept = { id, url: published.url, html }
  })

  it("has no script that can run: none in the page, text/html in a frame without allow-scripts, a CSP forbidding scripts", async () => {
    const r = await page(kept.url)
    expect(r.headers.get("content-security-policy")).toBe(PAGE_CSP)
    expect(PAGE_CSP).toContain("script-src 'none'")
    expect(r.headers.get("x-content-type-options")).toBe("nosniff")
    expect(kept.html).toContain(`<meta http-equiv="Content-Security-Policy" content="${PAGE_CSP}">`)
    expect(kept.html).not.toMatch(/<script/i)
    // no event handler attribute in the page itself (the frame's srcdoc holds the output's, escaped, and runs none)
    expect(kept.html.replace(/ srcdoc="[^"]*"/g, "")).not.toMatch(/\son[a-z]+=/i)
    const frames = [...kept.html.matchAll(/<iframe[^>]*>/g)].map((m) => m[0])
    expect(frames).toHaveLength(1)
    expect(frames[0]).toContain('sandbox=""')
    expect(frames[0]).not.toContain("allow-scripts")
    expect(frames[0]).toContain("srcdoc=\"&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;&lt;p onclick=&quot;alert(1)&quot;&gt;hi&lt;/p&gt;\"")
    // no listing of the pages, and pages being written are never served
    expect([403, 404]).toContain((await page("/pub/")).status)
    expect((await page("/pub/.anything/index.html")).status).toBe(404)
  })

  it("publishes an edit again at the same URL", async () => {
    const got = await call(ann, `/api/v1/worksheets/${kept.id}`)
    const base = (got.headers.get("etag") ?? "").replaceAll('"', "")
    const saved = await call(ann, `/api/v1/worksheets/${kept.id}`, { method: "PUT", body: notebook("Thirds", "print('edited')"), headers: { "if-match": `"${base}"` } })
    expect(saved.status).toBe(200)
    const { version } = (await saved.json()) as { version: string }
    // the page shows what was published, not what was saved since
    expect(await (await page(kept.url)).text()).toContain("factor(2^64+1)")
    const again = await publish(ann, kept.id)
    expect(again).toEqual({ url: kept.url, version })
    const html = await (await page(kept.url)).text()
    expect(html).toContain("print(&#39;edited&#39;)")
    expect(html).toContain("<title>Thirds</title>")
    expect(html).not.toContain("factor(2^64+1)")
    kept = { ...kept, html }
  })

  it("answers another account 404 for publish and unpublish, and a cookie without its CSRF token 403", async () => {
    for (const method of ["POST", "DELETE"]) {
      const r = await call(bob, `/api/v1/worksheets/${kept.id}/publish`, { method })
      expect(r.status, method).toBe(404)
      expect(await r.json()).toMatchObject({ error: "not_found" })
    }
    expect((await call(ann, `/api/v1/worksheets/${kept.id}/publish`, { method: "POST", csrf: false })).status).toBe(403)
    expect((await call(ann, `/api/v1/worksheets/${kept.id}/publish`, { method: "DELETE", csrf: false })).status).toBe(403)
    expect((await call(ann, `/api/v1/worksheets/${"0".repeat(8)}-0000-0000-0000-${"0".repeat(12)}/publish`, { method: "POST" })).status).toBe(404)
    expect((await call(ann, `/api/v1/worksheets/${kept.id}/publish`, { method: "GET" })).status).toBe(405)
    expect((await page(kept.url)).status).toBe(200)
  })

  it("unpublishes: the files are removed and the URL answers 404; publishing again reuses the URL; deleting removes it", async () => {
    const { id } = await create(ann, "Short-lived", "print(1)")
    const { url } = await publish(ann, id)
    expect((await page(url)).status).toBe(200)
    const slug = url.split("/")[2] ?? ""
    expect(existsSync(join(stack.dataDir, "pub", slug, "index.html"))).toBe(true)
    const removed = await call(ann, `/api/v1/worksheets/${id}/publish`, { method: "DELETE" })
    expect(removed.status).toBe(204)
    expect((await page(url)).status).toBe(404)
    expect(existsSync(join(stack.dataDir, "pub", slug))).toBe(false)
    // nothing left behind: the kept page, KaTeX's assets, no temporary directories
    expect(new Set(readdirSync(join(stack.dataDir, "pub")))).toEqual(new Set([kept.url.split("/")[2], KATEX_ASSETS]))
    // unpublishing what is not published is no error
    expect((await call(ann, `/api/v1/worksheets/${id}/publish`, { method: "DELETE" })).status).toBe(204)

    expect((await publish(ann, id)).url).toBe(url)
    expect((await page(url)).status).toBe(200)
    expect((await call(ann, `/api/v1/worksheets/${id}`, { method: "DELETE" })).status).toBe(204)
    expect((await page(url)).status).toBe(404)
  })

  it("is served with every backend stopped", async () => {
    for (const backend of stack.backends) await backend.stop()
    // the API is down, the page is not
    expect((await call(ann, "/api/v1/worksheets")).status).toBe(503)
    const r = await page(kept.url)
    expect(r.status).toBe(200)
    expect(await r.text()).toBe(kept.html)
  })
})
