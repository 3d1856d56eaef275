// Workspaces against a real PostgreSQL and real git: save and read back, history newest first, old versions, a stale
// write refused as a Conflict, a restore on a fresh directory from PostgreSQL alone (also past a compaction), another
// host catching up, and bad input refused with an error naming it.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Result } from "effect"
import { Conflict, WorkspaceError } from "../../src/workspace/errors.ts"
import { COMPACT_EVERY, MAX_FILE_BYTES } from "../../src/workspace/limits.ts"
import { Workspaces } from "../../src/workspace/workspaces.ts"
import { AUTHOR, gitLog, notebook, startDatabase, type Database, type Host } from "./fixture.ts"

let db: Database
let host: Host
beforeAll(async () => {
  db = await startDatabase()
  host = await db.host()
})
afterAll(async () => {
  await db?.stop()
})

const text = (b: Uint8Array): string => Buffer.from(b).toString("utf8")
let serial = 0
const newWorkspace = async (): Promise<{ id: string; created: string }> => {
  const id = `ws-${++serial}`
  const created = await host.ok(Workspaces.use((w) => w.create({ id, owner: db.owner, author: AUTHOR })))
  return { id, created }
}
const save = (id: string, path: string, content: string, base?: string) =>
  Workspaces.use((w) => w.write({ id, path, content, message: `save ${path}`, author: AUTHOR, base }))

describe("workspaces", () => {
  it("saves a file and reads it back, at the latest version and at its own", async () => {
    const { id, created } = await newWorkspace()
    const v1 = await host.ok(save(id, "notes/a.ipynb", notebook(1)))
    expect(v1).toMatch(/^[0-9a-f]{40}$/)
    expect(v1).not.toBe(created)
    expect(text(await host.ok(Workspaces.use((w) => w.read(id, "notes/a.ipynb"))))).toBe(notebook(1))
    expect(text(await host.ok(Workspaces.use((w) => w.read(id, "notes/a.ipynb", v1))))).toBe(notebook(1))
    expect((await host.ok(Workspaces.use((w) => w.head(id)))).head).toBe(v1)
    // the head PostgreSQL holds is the saved version, and the bundles are there with it
    expect(await db.sql("SELECT head, owner FROM workspaces WHERE id = $1", [id])).toEqual([{ head: v1, owner: db.owner }])
    expect(await db.sql("SELECT seq, head, complete FROM workspace_bundles WHERE workspace_id = $1 ORDER BY seq", [id]))
      .toEqual([{ seq: 1, head: created, complete: true }, { seq: 2, head: v1, complete: false }])
  })

  it("lists history newest first, of the workspace and of one file, and reads an old version", async () => {
    const { id, created } = await newWorkspace()
    const a1 = await host.ok(save(id, "a.ipynb", "a one"))
    const b1 = await host.ok(save(id, "b.sage", "b one"))
    const a2 = await host.ok(save(id, "a.ipynb", "a two"))
    const all = await host.ok(Workspaces.use((w) => w.history(id)))
    expect(all.map((e) => e.version)).toEqual([a2, b1, a1, created])
    expect(all.map((e) => e.message)).toEqual(["save a.ipynb", "save b.sage", "save a.ipynb", "workspace created"])
    for (const e of all) expect(Math.abs(e.time - Date.now())).toBeLessThan(60_000)
    const ofA = await host.ok(Workspaces.use((w) => w.history(id, "a.ipynb")))
    expect(ofA.map((e) => e.version)).toEqual([a2, a1])
    expect(text(await host.ok(Workspaces.use((w) => w.read(id, "a.ipynb", a1))))).toBe("a one")
    expect(text(await host.ok(Workspaces.use((w) => w.read(id, "a.ipynb"))))).toBe("a two")
    // b.sage did not exist at a1; a version never saved is not found either
    const missing = await host.run(Workspaces.use((w) => w.read(id, "b.sage", a1)))
    expect(Result.isFailure(missing) && missing.failure.reason).toBe("NotFound")
    const never = await host.run(Workspaces.use((w) => w.read(id, "a.ipynb", "0".repeat(40))))
    expect(Result.isFailure(never) && never.failure.reason).toBe("NotFound")
  })

  it("refuses a stale write with a Conflict carrying the latest version, and writes nothing", async () => {
    const { id } = await newWorkspace()
    const v1 = await host.ok(save(id, "w.ipynb", "first"))
    const tab1 = await host.ok(save(id, "w.ipynb", "tab 1's edit", v1))
    const tab2 = await host.run(save(id, "w.ipynb", "tab 2's edit", v1))
    expect(Result.isFailure(tab2)).toBe(true)
    if (Result.isSuccess(tab2)) return
    expect(tab2.failure).toBeInstanceOf(Conflict)
    expect(tab2.failure).toMatchObject({ _tag: "Conflict", base: v1, latest: tab1 })
    expect(text(await host.ok(Workspaces.use((w) => w.read(id, "w.ipynb"))))).toBe("tab 1's edit")
    expect((await host.ok(Workspaces.use((w) => w.history(id, "w.ipynb")))).map((e) => e.version)).toEqual([tab1, v1])
  })

  it("refuses a write on a version another host saved over, without moving its own copy", async () => {
    const { id } = await newWorkspace()
    const other = await db.host()
    const v1 = await host.ok(save(id, "w.ipynb", "first"))
    const there = await other.ok(save(id, "w.ipynb", "saved on the other host", v1))
    const here = await host.run(save(id, "w.ipynb", "saved here on v1", v1))
    expect(Result.isFailure(here) && here.failure).toMatchObject({ _tag: "Conflict", latest: there })
    // each host reads what PostgreSQL holds: the other host's save, with every version
    expect(text(await host.ok(Workspaces.use((w) => w.read(id, "w.ipynb"))))).toBe("saved on the other host")
    expect(await gitLog(host.gitDirOf(id))).toBe(await gitLog(other.gitDirOf(id)))
  })

  it("lets exactly one of two hosts saving on the same version at once win; the other gets a Conflict", async () => {
    const { id } = await newWorkspace()
    const other = await db.host()
    let base = await host.ok(save(id, "w.ipynb", "start"))
    for (let round = 0; round < 5; round++) {
      const [a, b] = await Promise.all([host.run(save(id, "w.ipynb", `a${round}`, base)), other.run(save(id, "w.ipynb", `b${round}`, base))])
      const won = [a, b].filter(Result.isSuccess)
      const lost = [a, b].filter(Result.isFailure)
      expect([won.length, lost.length]).toEqual([1, 1])
      const winner = won[0]?.success ?? ""
      expect(lost[0]?.failure).toMatchObject({ _tag: "Conflict", base, latest: winner })
      expect(await db.sql("SELECT head FROM workspaces WHERE id = $1", [id])).toEqual([{ head: winner }])
      base = winner
    }
    // saves that name no base both land, one after the other
    const [a, b] = await Promise.all([host.ok(save(id, "a.txt", "a")), other.ok(save(id, "b.txt", "b"))])
    const history = (await other.ok(Workspaces.use((w) => w.history(id)))).map((e) => e.version)
    expect(history).toHaveLength(1 + 1 + 5 + 2)
    expect(new Set(history.slice(0, 2))).toEqual(new Set([a, b]))
    await host.ok(Workspaces.use((w) => w.history(id)))
    expect(await gitLog(host.gitDirOf(id))).toBe(await gitLog(other.gitDirOf(id)))
  })

  it("catches up with a save another host commits while this one is fetching the saves it lacks", async () => {
    const { id } = await newWorkspace()
    const other = await db.host()
    let between: (() => Promise<void>) | undefined
    const late = await db.host({ beforeBundles: async () => {
      const f = between
      between = undefined
      await f?.()
    } })
    const v1 = await other.ok(save(id, "w.ipynb", "one"))
    let v2 = ""
    // `late` reads the head (v1), and before it fetches the bundles up to it, `other` saves v2 on top
    between = async () => void (v2 = await other.ok(save(id, "w.ipynb", "two", v1)))
    expect(text(await late.ok(Workspaces.use((w) => w.read(id, "w.ipynb"))))).toBe("two")
    expect(v2).toMatch(/^[0-9a-f]{40}$/)
    expect((await late.ok(Workspaces.use((w) => w.history(id, "w.ipynb")))).map((e) => e.version)).toEqual([v2, v1])
    // and a save based on what it read lands on top of v2
    const v3 = await late.ok(save(id, "w.ipynb", "three", v2))
    expect(await db.sql("SELECT head FROM workspaces WHERE id = $1", [id])).toEqual([{ head: v3 }])
  })

  it("restores on a fresh directory from PostgreSQL alone with every version", async () => {
    const { id } = await newWorkspace()
    const versions: Array<string> = []
    for (let n = 0; n < 5; n++) versions.push(await host.ok(save(id, n % 2 === 0 ? "nb.ipynb" : "data/x.csv", notebook(n))))
    const fresh = await db.host()
    const restored = await fresh.ok(Workspaces.use((w) => w.restore(id)))
    expect(restored.startsWith(fresh.root)).toBe(true)
    const log = await gitLog(restored)
    expect(log.split("\n").filter((l) => l !== "")).toHaveLength(6)
    expect(log).toBe(await gitLog(host.gitDirOf(id)))
    for (const [n, v] of versions.entries()) {
      const path = n % 2 === 0 ? "nb.ipynb" : "data/x.csv"
      expect(text(await fresh.ok(Workspaces.use((w) => w.read(id, path, v))))).toBe(notebook(n))
    }
  })

  it(`restores past a compaction: after ${COMPACT_EVERY + 3} saves one full bundle and its increments remain`, async () => {
    const { id } = await newWorkspace()
    let last = ""
    for (let n = 0; n < COMPACT_EVERY + 3; n++) last = await host.ok(save(id, "nb.ipynb", notebook(n)))
    const rows = await db.sql<{ complete: boolean }>("SELECT complete FROM workspace_bundles WHERE workspace_id = $1 ORDER BY seq", [id])
    // the COMPACT_EVERY-th save wrote a full bundle and dropped the create's and the increments before it
    expect(rows.map((r) => r.complete)).toEqual([true, false, false, false])
    const fresh = await db.host()
    const restored = await fresh.ok(Workspaces.use((w) => w.restore(id)))
    const log = await gitLog(restored)
    expect(log.split("\n").filter((l) => l !== "")).toHaveLength(COMPACT_EVERY + 4)
    expect(log).toBe(await gitLog(host.gitDirOf(id)))
    expect(text(await fresh.ok(Workspaces.use((w) => w.read(id, "nb.ipynb", last))))).toBe(notebook(COMPACT_EVERY + 2))
  }, 300_000)

  it("refuses unsafe paths, with an error naming the path", async () => {
    const { id } = await newWorkspace()
    for (const path of ["../x", "/etc/passwd", "a/../../x", "./a", ".git/config", "a/.GIT/hooks/pre-commit", "a//b", "a\\b", "", "x/"]) {
      const r = await host.run(save(id, path, "x"))
      expect([path, Result.isFailure(r) && r.failure._tag === "WorkspaceError" && r.failure.reason]).toEqual([path, "UnsafePath"])
      if (Result.isFailure(r)) expect(r.failure.message).toContain(JSON.stringify(path))
      const read = await host.run(Workspaces.use((w) => w.read(id, path)))
      expect([path, Result.isFailure(read) && read.failure.reason]).toEqual([path, "UnsafePath"])
    }
    expect(await host.ok(Workspaces.use((w) => w.history(id)))).toHaveLength(1)
  })

  it(`refuses a file larger than ${MAX_FILE_BYTES} bytes, naming the file and the limit, and takes one of exactly that size`, async () => {
    const { id } = await newWorkspace()
    const big = await host.run(Workspaces.use((w) =>
      w.write({ id, path: "big.bin", content: new Uint8Array(MAX_FILE_BYTES + 1), message: "big", author: AUTHOR })))
    expect(Result.isFailure(big)).toBe(true)
    if (Result.isSuccess(big)) return
    expect(big.failure).toBeInstanceOf(WorkspaceError)
    expect(big.failure).toMatchObject({ reason: "TooLarge" })
    expect(big.failure.message).toContain("big.bin")
    expect(big.failure.message).toContain(String(MAX_FILE_BYTES))
    expect(await host.ok(Workspaces.use((w) => w.history(id)))).toHaveLength(1)
    const fits = await host.ok(Workspaces.use((w) =>
      w.write({ id, path: "fits.bin", content: new Uint8Array(MAX_FILE_BYTES).fill(7), message: "fits", author: AUTHOR })))
    expect((await host.ok(Workspaces.use((w) => w.read(id, "fits.bin", fits)))).byteLength).toBe(MAX_FILE_BYTES)
  })

  it("refuses bad ids, bad versions, an unknown workspace and an owner that is no account", async () => {
    const bad = await host.run(Workspaces.use((w) => w.create({ id: "../etc", owner: db.owner, author: AUTHOR })))
    expect(Result.isFailure(bad) && bad.failure).toMatchObject({ reason: "InvalidId" })
    const noOwner = await host.run(Workspaces.use((w) => w.create({ id: "orphan", owner: "00000000-0000-0000-0000-000000000000", author: AUTHOR })))
    expect(Result.isFailure(noOwner) && noOwner.failure).toMatchObject({ reason: "NotFound" })
    const { id } = await newWorkspace()
    const again = await host.run(Workspaces.use((w) => w.create({ id, owner: db.owner, author: AUTHOR })))
    expect(Result.isFailure(again) && again.failure).toMatchObject({ reason: "Exists" })
    const version = await host.run(save(id, "a", "x", "--output=/tmp/x"))
    expect(Result.isFailure(version) && version.failure).toMatchObject({ reason: "InvalidVersion" })
    const unknown = await host.run(save("no-such-workspace", "a", "x"))
    expect(Result.isFailure(unknown) && unknown.failure).toMatchObject({ reason: "NotFound" })
  })
})
