// Sessions belong to worksheets (issue 10 item 3) and files (item 2): the files API over an account's workspace, a
// session opened with the workspace that finds its files (`load("x.sage")` in Sage, `open("data.csv")` in Python),
// files its code writes offered and saved back into the workspace; and everyone else kept out: another account, an
// anonymous connection, symlinks out of the home, files over 10 MiB, paths that are not a workspace's.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { connectRaw, type Msg, type RawClient } from "../protocol/raw.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"
import { users, type Who } from "./users.ts"

let stack: WebStack
const open: Array<RawClient> = []
const { tokenUser, cookieUser } = users(() => stack)

beforeAll(async () => {
  stack = await startWebStack({ kernels: ["sage", "python"], postgres: true })
}, 240_000)

afterAll(async () => {
  for (const c of open) c.close()
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

let counter = 0
const id = (prefix: string): string => `${prefix}${++counter}`
const url = (path: string): string => `${stack.backendUrl()}${path}`

const files = (who: Who, path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(url(`/api/v1/files${path}`), { ...init, headers: { ...who.headers, ...(who.csrf !== undefined ? { "x-csrf-token": who.csrf } : {}), ...(init.headers as Record<string, string> | undefined) } })

const put = async (who: Who, path: string, body: string | Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}): Promise<Response> =>
  files(who, `/${path}`, { method: "PUT", body, headers })

/** a raw connection whose sessions are `who`'s account's (none: anonymous) */
const connect = async (who?: Who): Promise<RawClient> => {
  const c = await connectRaw(stack.backendUrl())
  open.push(c)
  if (who !== undefined) {
    const me = (await (await fetch(url("/api/v1/me"), { headers: who.headers })).json()) as { socket: string }
    expect(await c.request({ type: "hello", id: id("h"), account: me.socket })).toMatchObject({ type: "identity" })
  }
  return c
}

const run = async (c: RawClient, session: string, code: string): Promise<{ out: string; errors: Array<Msg> }> => {
  const x = id("x")
  expect(await c.request({ type: "execute", id: x, session, code })).toMatchObject({ type: "ack" })
  let out = ""
  const errors: Array<Msg> = []
  for (;;) {
    const m = await c.next((o) => o.type === "output" && o.id === x, 60_000)
    const msg = m.msg as { kind: string; text?: string }
    if (msg.kind === "done") return { out, errors }
    if (msg.kind === "stdout") out += msg.text ?? ""
    if (msg.kind === "error") errors.push(m)
  }
}

describe("sessions with their workspace's files", () => {
  let ann: Who
  let bob: Who
  beforeAll(async () => {
    ann = await cookieUser("ann@example.org")
    bob = await tokenUser("bob@example.org")
  })

  it("the files API lists, gives, saves with If-Match, and removes an account's files", async () => {
    expect((await files(ann, "")).status).toBe(200)
    expect(await (await files(ann, "")).json()).toEqual([])
    const sage = await put(ann, "x.sage", "def twice(n):\n    return 2*n\nloaded = factor(2^10 - 1)\n")
    expect(sage.status).toBe(200)
    const { version } = (await sage.json()) as { version: string }
    expect(version).toMatch(/^[0-9a-f]{40}$/)
    expect(sage.headers.get("etag")).toBe(`"${version}"`)
    expect((await put(ann, "data/points.csv", "x,y\n1,2\n3,5\n")).status).toBe(200)
    const listed = await files(ann, "")
    expect(await listed.json()).toEqual([{ path: "data/points.csv", size: 12 }, { path: "x.sage", size: 55 }])
    const got = await files(ann, "/data/points.csv")
    expect(got.status).toBe(200)
    expect(got.headers.get("content-type")).toBe("text/csv; charset=utf-8")
    expect(got.headers.get("content-security-policy")).toContain("sandbox")
    expect(await got.text()).toBe("x,y\n1,2\n3,5\n")
    const etag = got.headers.get("etag") ?? ""

    // If-Match: a change to another file since does not matter; a change to this one does
    expect((await put(ann, "other.txt", "other")).status).toBe(200)
    const ok = await put(ann, "data/points.csv", "x,y\n1,2\n", { "if-match": etag })
    expect(ok.status).toBe(200)
    const stale = await put(ann, "data/points.csv", "x,y\n", { "if-match": etag })
    expect(stale.status).toBe(409)
    expect(await stale.json()).toMatchObject({ error: "conflict", version: expect.stringMatching(/^[0-9a-f]{40}$/) })
    expect((await put(ann, "data/points.csv", "x,y\n", { "if-match": "*" })).status).toBe(400)

    const html = await put(ann, "page.html", "<script>alert(1)</script>")
    expect(html.status).toBe(200)
    expect((await files(ann, "/page.html")).headers.get("content-disposition")).toMatch(/^attachment/)
    expect((await files(ann, "/other.txt", { method: "DELETE" })).status).toBe(204)
    expect((await files(ann, "/other.txt")).status).toBe(404)
    expect((await files(ann, "/other.txt", { method: "DELETE" })).status).toBe(404)
    // a cookie's change without its CSRF token is refused
    expect((await fetch(url("/api/v1/files/nope.txt"), { method: "PUT", body: "x", headers: ann.headers })).status).toBe(403)
    expect((await fetch(url("/api/v1/files"))).status).toBe(401)
  })

  it("refuses bad paths and files over 10 MiB with clear errors", async () => {
    for (const [path, why] of [
      ["a%2F..%2Fb", "'..' segment"],
      ["%2Fetc%2Fpasswd", "it is absolute"],
      [".git/config", "it names .git"],
      ["a//b", "empty segment"],
      ["worksheets/x.ipynb", "worksheet routes keep"],
      ["bad%ZZ", "not valid percent-encoding"],
      ["tab%09name", "control character"],
    ] as const) {
      const r = await put(ann, path, "x")
      expect(r.status, path).toBe(400)
      expect(((await r.json()) as { message: string }).message, path).toContain(why)
    }
    const big = await put(ann, "big.bin", new Uint8Array(10 * 2 ** 20 + 1))
    expect(big.status).toBe(413)
    expect(((await big.json()) as { message: string }).message).toContain("10 MiB")
    expect((await files(ann, "", { method: "POST" })).status).toBe(405)
  })

  it("another account reads none of them, and opens no session with them", async () => {
    expect(await (await files(bob, "")).json()).toEqual([])
    expect((await files(bob, "/x.sage")).status).toBe(404)
    expect((await files(bob, "/x.sage", { method: "DELETE" })).status).toBe(404)
    // bob's own workspace: his session finds nothing of ann's
    const c = await connect(bob)
    const opened = await c.request({ type: "open", id: id("o"), kernel: "python", workspace: true })
    expect(opened).toMatchObject({ type: "opened" })
    const { out } = await run(c, String(opened.session), "import os; print(sorted(n for n in os.listdir('.') if not n.startswith('.')))")
    expect(out).toBe("[]\n") // a home's own dot-directories (.ipython) aside
    // ann's file under bob's name is no file of his
    expect(await c.request({ type: "saveFile", id: id("f"), session: String(opened.session), path: "x.sage" })).toMatchObject({ type: "error", code: "file", message: expect.stringContaining("no file x.sage") })
  })

  it("an anonymous connection asking for a workspace is told it needs an account", async () => {
    const c = await connect()
    const refused = await c.request({ type: "open", id: id("o"), kernel: "sage", workspace: true })
    expect(refused).toMatchObject({ type: "error", code: "account", message: expect.stringContaining("needs a signed-in account") })
    expect(await c.request({ type: "open", id: id("o"), kernel: "terminal", workspace: true })).toMatchObject({ type: "error", code: "invalid" })
    const opened = await c.request({ type: "open", id: id("o"), kernel: "python" })
    expect(await c.request({ type: "saveFile", id: id("f"), session: String(opened.session), path: "a.txt" })).toMatchObject({ type: "error", code: "account" })
  })

  it("a Sage session loads x.sage, Python reads data.csv, and what code writes is offered, saved and served", async () => {
    const c = await connect(ann)
    const sage = await c.request({ type: "open", id: id("o"), kernel: "sage", workspace: true }, 60_000)
    expect(sage).toMatchObject({ type: "opened", kernel: "sage" })
    const s = String(sage.session)
    const loaded = await run(c, s, 'load("x.sage")\nprint(twice(21), loaded)')
    expect(loaded.errors).toEqual([])
    expect(loaded.out).toBe("42 3 * 11 * 31\n")

    const py = await c.request({ type: "open", id: id("o"), kernel: "python", workspace: true })
    const p = String(py.session)
    const read = await run(c, p, [
      "import csv, os",
      "rows = list(csv.DictReader(open('data/points.csv')))",
      "print(sum(int(r['y']) for r in rows), os.stat('data/points.csv').st_uid == os.getuid())",
      "open('out.txt', 'w').write('total %d\\n' % sum(int(r['y']) for r in rows))",
    ].join("\n"))
    expect(read).toEqual({ out: "2 True\n", errors: [] })
    const listed = await c.request({ type: "files", id: id("l"), session: p })
    expect(listed).toMatchObject({ type: "fileList", session: p, files: [{ path: "out.txt", size: 8, mtime: expect.any(Number) }] })
    const saved = await c.request({ type: "saveFile", id: id("f"), session: p, path: "out.txt" })
    expect(saved).toMatchObject({ type: "saved", path: "out.txt", version: expect.stringMatching(/^[0-9a-f]{40}$/) })
    const served = await files(ann, "/out.txt")
    expect(await served.text()).toBe("total 2\n")
    expect(served.headers.get("etag")).toBe(`"${String(saved.version)}"`)
    // saved elsewhere in the workspace, with `to`
    expect(await c.request({ type: "saveFile", id: id("f"), session: p, path: "out.txt", to: "results/copy.txt" })).toMatchObject({ type: "saved", path: "results/copy.txt" })
    expect(await (await files(ann, "/results/copy.txt")).text()).toBe("total 2\n")
    // never into worksheets/
    expect(await c.request({ type: "saveFile", id: id("f"), session: p, path: "out.txt", to: "worksheets/a.ipynb" })).toMatchObject({ type: "error", code: "invalid" })

    // a session's messages are its owner's: bob is told there is no such session
    const asBob = await connect(bob)
    expect(await asBob.request({ type: "files", id: id("l"), session: p })).toMatchObject({ type: "error", code: "unknown_session" })
    expect(await asBob.request({ type: "saveFile", id: id("f"), session: p, path: "out.txt" })).toMatchObject({ type: "error", code: "unknown_session" })
  })

  it("refuses symlinks out of the home, and files over 10 MiB, naming why", async () => {
    const c = await connect(ann)
    const other = await c.request({ type: "open", id: id("o"), kernel: "python" })
    await run(c, String(other.session), "open('secret.txt', 'w').write('other session')")
    const opened = await c.request({ type: "open", id: id("o"), kernel: "python", workspace: true })
    const s = String(opened.session)
    const made = await run(c, s, [
      "import os",
      "os.symlink('/etc/passwd', 'passwd')",
      // another session's home is not even visible here; a link to where it would be is refused all the same
      "os.symlink('/proc/1/root/home/sagews/secret.txt', 'theirs')",
      "os.makedirs('d', exist_ok=True); os.symlink('/etc', 'd/etc')",
      "open('huge.bin', 'wb').write(b'0' * (10 * 2**20 + 1))",
    ].join("\n"))
    expect(made.errors).toEqual([])
    for (const path of ["passwd", "theirs", "d/etc/passwd"]) {
      const refused = await c.request({ type: "saveFile", id: id("f"), session: s, path })
      expect(refused, path).toMatchObject({ type: "error", code: "file", message: expect.stringContaining("symbolic link") })
    }
    expect(await c.request({ type: "saveFile", id: id("f"), session: s, path: "huge.bin" })).toMatchObject({ type: "error", code: "file", message: expect.stringContaining("10 MiB") })
    expect(await c.request({ type: "saveFile", id: id("f"), session: s, path: "../etc/passwd" })).toMatchObject({ type: "error", code: "invalid" })
    const listed = await c.request({ type: "files", id: id("l"), session: s })
    expect((listed.files as Array<{ path: string }>).map((f) => f.path)).toEqual(["huge.bin"])
    expect((await files(ann, "/passwd")).status).toBe(404)
  })
})
