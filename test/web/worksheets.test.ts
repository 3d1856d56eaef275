// The worksheet routes (issue 10 item 6) against a real backend and PostgreSQL: create, list, read, save with
// If-Match, history, a version, delete; 409, 428, 404 for another account's worksheets, CSRF, nbformat validation,
// and 503 on a backend without PostgreSQL. Accounts are made with `sagews user` as test/web/accounts.test.ts does.
import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { webStackFor } from "./harness.ts"
import { users, type Who } from "./users.ts"

const stack = webStackFor({ postgres: true, workers: 0 })

const { cookieUser, tokenUser, call } = users(stack)


/** An nbformat-4.5 notebook, pretty-printed with one space: not how the backend would write it, so a copy shows */
const notebook = (title: string, source: string): string =>
  JSON.stringify({
    cells: [
      { cell_type: "markdown", id: "intro", metadata: {}, source: [`# ${title}\n`, "text"] },
      { cell_type: "code", execution_count: 1, id: "c1", metadata: {}, outputs: [{ name: "stdout", output_type: "stream", text: ["4\n"] }], source },
    ],
    metadata: { kernelspec: { display_name: "SageMath", language: "sage", name: "sagemath" }, title },
    nbformat: 4,
    nbformat_minor: 5,
  }, null, 1)

const create = async (who: Who, title: string, source = "print(2+2)"): Promise<{ id: string; version: string }> => {
  const r = await call(who, "/api/v1/worksheets", { method: "POST", body: notebook(title, source) })
  expect(r.status, await r.clone().text()).toBe(201)
  return (await r.json()) as { id: string; version: string }
}

const put = (who: Who, id: string, body: string, version: string | undefined, o: { csrf?: boolean } = {}) =>
  call(who, `/api/v1/worksheets/${id}`, { method: "PUT", body, headers: version === undefined ? {} : { "if-match": `"${version}"` }, ...o })

const VERSION = /^[0-9a-f]{40}$/

describe("worksheets", () => {
  it("create, list, read, save, history, an old version, delete", async () => {
    const ann = await cookieUser("ann@example.org")
    expect(await (await call(ann, "/api/v1/worksheets")).json()).toEqual([])
    const first = notebook("Primes", "print(2+2)")
    const created = await call(ann, "/api/v1/worksheets", { method: "POST", body: first })
    expect(created.status).toBe(201)
    const { id, version } = (await created.json()) as { id: string; version: string }
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    expect(version).toMatch(VERSION)

    const listed = (await (await call(ann, "/api/v1/worksheets")).json()) as Array<Record<string, unknown>>
    expect(listed).toEqual([{ id, title: "Primes", version, updated: expect.any(Number) }])
    expect(Math.abs(Number(listed[0]?.["updated"]) - Date.now())).toBeLessThan(60_000)

    const got = await call(ann, `/api/v1/worksheets/${id}`)
    expect(got.status).toBe(200)
    expect(got.headers.get("etag")).toBe(`"${version}"`)
    expect(await got.text()).toBe(first) // byte for byte what was sent

    const second = notebook("Primes, twice", "print(3+3)")
    const saved = await put(ann, id, second, version)
    expect(saved.status).toBe(200)
    const { version: v2 } = (await saved.json()) as { version: string }
    expect(v2).toMatch(VERSION)
    expect(v2).not.toBe(version)
    expect(saved.headers.get("etag")).toBe(`"${v2}"`)
    const latest = await call(ann, `/api/v1/worksheets/${id}`)
    expect(latest.headers.get("etag")).toBe(`"${v2}"`)
    expect(await latest.text()).toBe(second)
    expect(await (await call(ann, "/api/v1/worksheets")).json()).toEqual([{ id, title: "Primes, twice", version: v2, updated: expect.any(Number) }])

    // another worksheet's saves are not this one's versions
    await create(ann, "Other")
    const history = (await (await call(ann, `/api/v1/worksheets/${id}/history`)).json()) as Array<{ version: string; time: number }>
    expect(history.map((h) => h.version)).toEqual([v2, version])
    expect(history[0]).toEqual({ version: v2, time: expect.any(Number), message: expect.any(String) })
    expect(history[0]!.time).toBeGreaterThanOrEqual(history[1]!.time)

    const old = await call(ann, `/api/v1/worksheets/${id}?version=${version}`)
    expect(old.status).toBe(200)
    expect(old.headers.get("etag")).toBe(`"${version}"`)
    expect(await old.text()).toBe(first)
    expect((await call(ann, `/api/v1/worksheets/${id}?version=${"0".repeat(40)}`)).status).toBe(404)
    const malformed = await call(ann, `/api/v1/worksheets/${id}?version=HEAD`)
    expect(malformed.status).toBe(400)
    expect(await malformed.json()).toMatchObject({ message: expect.stringContaining("the version parameter") })

    const deleted = await call(ann, `/api/v1/worksheets/${id}`, { method: "DELETE" })
    expect(deleted.status).toBe(204)
    expect(await deleted.text()).toBe("")
    expect((await call(ann, `/api/v1/worksheets/${id}`)).status).toBe(404)
    expect((await call(ann, `/api/v1/worksheets/${id}/history`)).status).toBe(404)
    expect((await call(ann, `/api/v1/worksheets/${id}`, { method: "DELETE" })).status).toBe(404)
    expect(((await (await call(ann, "/api/v1/worksheets")).json()) as Array<{ id: string }>).map((w) => w.id)).not.toContain(id)
  })

  it("eighty saves of one account's worksheets at once on one backend all land, and another account is served meanwhile", async () => {
    const ivy = await tokenUser("ivy@example.org")
    const jon = await tokenUser("jon@example.org")
    const sheets = await Promise.all(Array.from({ length: 80 }, (_, i) => create(ivy, `Sheet ${i}`)))
    const saving = sheets.map(({ id, version }, i) => put(ivy, id, notebook(`Sheet ${i}`, `print(${i})`), version))
    // while ivy's saves queue on her workspace, jon's requests are not kept waiting for a connection
    const other = await create(jon, "Elsewhere")
    expect((await put(jon, other.id, notebook("Elsewhere", "print('jon')"), other.version)).status).toBe(200)
    const answers = await Promise.all(saving)
    expect(answers.map((r) => r.status)).toEqual(sheets.map(() => 200))
    for (const [i, { id }] of sheets.entries()) expect(await (await call(ivy, `/api/v1/worksheets/${id}`)).text()).toBe(notebook(`Sheet ${i}`, `print(${i})`))
  })

  it("a PUT on a version that is not the latest gets 409 with the latest, and writes nothing; without If-Match 428", async () => {
    const bea = await tokenUser("bea@example.org")
    const { id, version } = await create(bea, "Conflicts")
    const ahead = await put(bea, id, notebook("Conflicts", "1"), version)
    const { version: latest } = (await ahead.json()) as { version: string }
    const stale = await put(bea, id, notebook("Conflicts", "2"), version)
    expect(stale.status).toBe(409)
    expect(await stale.json()).toMatchObject({ error: "conflict", version: latest, message: expect.stringContaining(`the latest is ${latest}`) })
    expect(stale.headers.get("etag")).toBe(`"${latest}"`)
    expect(await (await call(bea, `/api/v1/worksheets/${id}`)).text()).toBe(notebook("Conflicts", "1"))

    const unconditional = await put(bea, id, notebook("Conflicts", "3"), undefined)
    expect(unconditional.status).toBe(428)
    expect(await unconditional.json()).toMatchObject({ error: "precondition", message: expect.stringContaining("If-Match") })
    const star = await call(bea, `/api/v1/worksheets/${id}`, { method: "PUT", body: notebook("Conflicts", "4"), headers: { "if-match": "*" } })
    expect(star.status).toBe(400)
    const history = (await (await call(bea, `/api/v1/worksheets/${id}/history`)).json()) as Array<{ version: string }>
    expect(history.map((h) => h.version)).toEqual([latest, version])

    // two saves on one version at once: exactly one wins
    const racing = await Promise.all([put(bea, id, notebook("Race", "a"), latest), put(bea, id, notebook("Race", "b"), latest)])
    expect(racing.map((r) => r.status).sort()).toEqual([200, 409])
  })

  it("another account gets 404 for the first's worksheet, its history and its versions, as for an unknown id", async () => {
    const cy = await cookieUser("cy@example.org")
    const dee = await tokenUser("dee@example.org")
    const { id, version } = await create(cy, "Private")
    const unknown = "00000000-0000-4000-8000-000000000000"
    const attempts = (target: string) => [
      call(dee, `/api/v1/worksheets/${target}`),
      call(dee, `/api/v1/worksheets/${target}?version=${version}`),
      call(dee, `/api/v1/worksheets/${target}/history`),
      put(dee, target, notebook("Mine now", "x"), version),
      call(dee, `/api/v1/worksheets/${target}`, { method: "DELETE" }),
    ]
    const theirs = await Promise.all(attempts(id))
    const none = await Promise.all(attempts(unknown))
    expect(theirs.map((r) => r.status)).toEqual([404, 404, 404, 404, 404])
    expect(none.map((r) => r.status)).toEqual([404, 404, 404, 404, 404])
    const bodies = await Promise.all(theirs.map((r) => r.json()))
    const unknownBodies = await Promise.all(none.map((r) => r.json()))
    expect(bodies.map((b) => JSON.stringify(b).replaceAll(id, "ID"))).toEqual(unknownBodies.map((b) => JSON.stringify(b).replaceAll(unknown, "ID")))
    expect(await (await call(dee, "/api/v1/worksheets")).json()).toEqual([])
    // and a version of the first's worksheet read through the second's own worksheet is not found either
    const own = await create(dee, "Own")
    expect((await call(dee, `/api/v1/worksheets/${own.id}?version=${version}`)).status).toBe(404)
    // the first's worksheet is untouched
    const still = await call(cy, `/api/v1/worksheets/${id}`)
    expect(still.status).toBe(200)
    expect(still.headers.get("etag")).toBe(`"${version}"`)
    expect((await call(undefined, `/api/v1/worksheets/${id}`)).status).toBe(401)
    expect((await call(undefined, "/api/v1/worksheets")).status).toBe(401)
  })

  it("a cookie's POST, PUT or DELETE without the CSRF header is refused with 403 and changes nothing", async () => {
    const eve = await cookieUser("eve@example.org")
    const { id, version } = await create(eve, "Guarded")
    const post = await call(eve, "/api/v1/worksheets", { method: "POST", body: notebook("Forged", "x"), csrf: false })
    const save = await put(eve, id, notebook("Forged", "x"), version, { csrf: false })
    const remove = await call(eve, `/api/v1/worksheets/${id}`, { method: "DELETE", csrf: false })
    for (const r of [post, save, remove]) {
      expect(r.status).toBe(403)
      expect(await r.json()).toMatchObject({ error: "csrf", header: "X-CSRF-Token" })
    }
    expect(await (await call(eve, "/api/v1/worksheets")).json()).toEqual([{ id, title: "Guarded", version, updated: expect.any(Number) }])
  })

  it("a body that is not JSON, not nbformat 4, or too large is refused, naming the field", async () => {
    const fay = await tokenUser("fay@example.org")
    const post = (body: string) => call(fay, "/api/v1/worksheets", { method: "POST", body })
    const good = JSON.parse(notebook("Bad", "x")) as Record<string, unknown>
    const cases: Array<[unknown, string]> = [
      [{ ...good, nbformat: 3 }, "nbformat: must be 4"],
      [{ ...good, cells: [{ cell_type: "python", metadata: {}, source: "" }] }, "cells.0.cell_type"],
      [{ ...good, cells: [{ cell_type: "code", metadata: {}, source: "x", execution_count: null }] }, "cells.0.outputs"],
      [{ ...good, cells: [{ cell_type: "markdown", metadata: {}, source: 7 }] }, "cells.0.source"],
      [{ ...good, metadata: { title: 5 } }, "metadata.title"],
      [{ ...good, nbformat_minor: undefined }, "nbformat_minor"],
    ]
    for (const [body, field] of cases) {
      const r = await post(JSON.stringify(body))
      expect(r.status).toBe(400)
      expect(await r.json()).toMatchObject({ error: "invalid", message: expect.stringContaining(field) })
    }
    const notJson = await post("{ cells: ")
    expect(notJson.status).toBe(400)
    expect(await notJson.json()).toMatchObject({ message: expect.stringContaining("not UTF-8 JSON") })
    const huge = await post(JSON.stringify({ ...good, metadata: { pad: "x".repeat(10 * 2 ** 20) } }))
    expect(huge.status).toBe(413)
    expect(await huge.json()).toMatchObject({ message: expect.stringContaining("10485760 bytes") })
    expect(await (await call(fay, "/api/v1/worksheets")).json()).toEqual([])
  })

  // Jupyter's own nbformat (Debian's python3-nbformat, which setup installs) on both sides of the API
  const python = (script: string, input = ""): string => {
    const run = spawnSync("/usr/bin/python3", ["-c", script], { input, encoding: "utf8" })
    expect(run.stderr).toBe("")
    expect(run.status).toBe(0)
    return run.stdout
  }

  it("what GET returns validates with nbformat.validate", async () => {
    const gus = await tokenUser("gus@example.org")
    const { id } = await create(gus, "Valid")
    const text = await (await call(gus, `/api/v1/worksheets/${id}`)).text()
    expect(python("import sys, nbformat; nbformat.validate(nbformat.reads(sys.stdin.read(), as_version=4)); print('valid')", text).trim()).toBe("valid")
  })

  it("a notebook Jupyter's nbformat wrote opens, with its cells, outputs, image and kernel, and reads back unchanged", async () => {
    const hal = await tokenUser("hal@example.org")
    const written = python(`
import nbformat
from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell, new_output
nb = new_notebook(metadata={"title": "Written by Jupyter", "kernelspec": {"name": "sagemath", "display_name": "SageMath", "language": "sage"}})
nb.cells = [
    new_markdown_cell("# Heading\\n$e^{i\\\\pi} = -1$"),
    new_code_cell("factor(x^2 - 1)", execution_count=1, outputs=[new_output("execute_result", data={"text/plain": "(x - 1)*(x + 1)", "text/latex": "$(x - 1)(x + 1)$"}, execution_count=1)]),
    new_code_cell("plot(sin)", execution_count=2, outputs=[new_output("display_data", data={"image/png": "iVBORw0KGgo="})]),
    new_code_cell("print(1)", execution_count=3, outputs=[new_output("stream", name="stdout", text="1\\n")]),
]
nbformat.validate(nb)
print(nbformat.writes(nb))
`)
    const created = await call(hal, "/api/v1/worksheets", { method: "POST", body: written })
    expect(created.status).toBe(201)
    const { id } = await created.json() as { id: string }
    const listed = await (await call(hal, "/api/v1/worksheets")).json() as Array<{ id: string; title: string }>
    expect(listed.find((w) => w.id === id)?.title).toBe("Written by Jupyter")
    const back = await (await call(hal, `/api/v1/worksheets/${id}`)).text()
    expect(back).toBe(written)
    expect(python(`
import sys, nbformat
nb = nbformat.reads(sys.stdin.read(), as_version=4)
nbformat.validate(nb)
print(len(nb.cells), nb.cells[2].outputs[0].data["image/png"], nb.metadata.kernelspec.name)
`, back).trim()).toBe("4 iVBORw0KGgo= sagemath")
  })
})

describe("a backend without PostgreSQL", () => {
  const bare = webStackFor({ workers: 0 })

  it("answers every worksheet route 503, saying it needs PostgreSQL", async () => {
    const id = "00000000-0000-4000-8000-000000000000"
    for (const [method, path] of [["GET", "/api/v1/worksheets"], ["POST", "/api/v1/worksheets"], ["GET", `/api/v1/worksheets/${id}`], ["PUT", `/api/v1/worksheets/${id}`], ["DELETE", `/api/v1/worksheets/${id}`], ["GET", `/api/v1/worksheets/${id}/history`]] as const) {
      const r = await fetch(`${bare().backendUrl()}${path}`, { method, ...(method === "POST" || method === "PUT" ? { body: "{}" } : {}) })
      expect(r.status, `${method} ${path}`).toBe(503)
      expect(await r.json()).toMatchObject({ error: "unavailable", message: expect.stringContaining("need PostgreSQL") })
    }
  })
})
