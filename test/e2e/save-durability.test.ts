// Acknowledged saves survive (issue 10): editors PUT a stream of worksheet versions through haproxy as the page does
// (following each 200's ETag; on 409 re-reading the latest; on 503 or a reset sending the same body with the same
// If-Match again), while the backend serving them is SIGKILLed, then PostgreSQL's postmaster, then PostgreSQL is
// restarted with `sagews restart postgres`. Afterwards every version that was answered 200 is in its worksheet's history
// and reads back byte for byte, through either backend and after the killed backend's local workspace copies are
// deleted; the outages were answered 503 with a message, no request hung, and only what was killed restarted.
import { readdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeStack, type Stack, type StatusRow } from "./stack.ts"

/** a request unanswered for this long is a hang, which the test reports (no request may wait for ever) */
const REQUEST_TIMEOUT_MS = 15_000
/** the autosave's pace: a pause between one settled save and the next edit */
const EDIT_PAUSE_MS = 30
/** what a page waits before sending a save again after a 503 or a broken connection */
const RETRY_PAUSE_MS = 150
/** saves flow this long before the first fault, between the faults' healing and the next, and at the end */
const STEADY_MS = 2_500
/** editors: one worksheet each, and two editing one shared worksheet (they conflict with each other) */
const SOLO = 3
const SHARED = 2

/** haproxy's stickiness cookie for backend:N (its server bN, supervisors/tree.ts) */
const pin = (backend: string): string => `SRV=b${backend.slice("backend:".length)}`

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let stack: Stack

beforeAll(async () => {
  stack = await makeStack({ backends: 2 })
  await stack.startForeground()
}, 120_000)

afterAll(async () => {
  const left = stack?.processes() ?? []
  await stack?.cleanup()
  expect(left.length).toBeGreaterThan(0) // it was running until cleanup
  expect(stack?.processes()).toEqual([])
}, 60_000)

const row = (rows: ReadonlyArray<StatusRow>, id: string): StatusRow => {
  const r = rows.find((x) => x.id === id)
  if (r === undefined) throw new Error(`status has no ${id}: ${rows.map((x) => x.id).join(", ")}`)
  return r
}

/** ms from now until `id` runs as a new process and every component runs */
const healed = async (id: string, before: StatusRow): Promise<number> => {
  const started = Date.now()
  for (;;) {
    const rows = await stack.status().catch(() => [])
    const now = rows.find((r) => r.id === id)
    if (now !== undefined && now.state === "running" && now.pid !== before.pid && rows.every((r) => r.state === "running")) return Date.now() - started
    if (Date.now() - started > 60_000) throw new Error(`${id} did not come back within 60 s: ${JSON.stringify(rows)}`)
    await sleep(100)
  }
}

/** A distinct nbformat-4 notebook per editor and edit, a few KB as a short worksheet with outputs is. */
const notebook = (title: string, editor: string, edit: number): string =>
  JSON.stringify({
    cells: [
      { cell_type: "markdown", id: "title", metadata: {}, source: [`# ${title}\n`, `edit ${edit} by ${editor}`] },
      ...Array.from({ length: 8 }, (_, i) => ({
        cell_type: "code",
        execution_count: i + 1,
        id: `c${i}`,
        metadata: {},
        outputs: [{ name: "stdout", output_type: "stream", text: [`${editor} ${edit} ${i} ${"x".repeat(200)}\n`] }],
        source: `print(${edit} * ${i})  # ${editor}`,
      })),
    ],
    metadata: { kernelspec: { display_name: "SageMath", language: "sage", name: "sagemath" }, title },
    nbformat: 4,
    nbformat_minor: 5,
  })

type Answer =
  | { readonly status: number; readonly body: string; readonly etag: string | null }
  | { readonly status: "error"; readonly error: string }

/** what the tree was going through when a request was sent: a fault until its component is running again, then calm */
const PHASES = ["steady", "backend:1 SIGKILLed", "backend:1 back", "postgres SIGKILLed", "postgres back", "postgres restarting", "postgres restarted"] as const
type Phase = (typeof PHASES)[number]

interface Ack {
  readonly worksheet: string
  readonly editor: string
  readonly version: string
  readonly content: string
  /** when the save was sent */
  readonly phase: Phase
  /** a 409 whose latest version was this editor's own content: the first attempt had saved it */
  readonly recognised: boolean
}

/** one request through haproxy with a client timeout: the status, the body and the ETag */
const send = async (headers: Record<string, string>, method: string, path: string, extra: Record<string, string> = {}, body?: string) => {
  const r = await fetch(`${stack.url}${path}`, {
    method,
    headers: { ...headers, ...extra, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  return { status: r.status, body: await r.text(), etag: r.headers.get("etag") }
}

/** Waits until haproxy sends `headers`'s requests to `backend` (its SRV cookie's). */
const servedBy = async (headers: Record<string, string>, backend: string): Promise<void> => {
  for (let i = 0; ; i++) {
    const status = await send(headers, "GET", "/api/v1/status").catch(() => undefined)
    if (status?.status === 200 && (JSON.parse(status.body) as { backend: string }).backend === backend) return
    if (i > 300) throw new Error(`haproxy did not send requests to ${backend} again within 30 s`)
    await sleep(100)
  }
}

/** an account's Bearer header, made with `sagews user add` and `sagews user token` */
const tokenFor = async (email: string): Promise<Record<string, string>> => {
  const added = await stack.cli(["user", "add", email], {}, "correct horse battery\n")
  expect(added.code, added.stderr).toBe(0)
  const made = await stack.cli(["user", "token", email])
  expect(made.code, made.stderr).toBe(0)
  return { authorization: `Bearer ${made.stdout.trim()}` }
}

describe("a save sent again", () => {
  it("whose first attempt was stored is answered 200 with that version, and a save that changes nothing adds no version", async () => {
    const who = await tokenFor("again@example.org")
    const created = await send(who, "POST", "/api/v1/worksheets", {}, notebook("Again", "creator", 0))
    expect(created.status).toBe(201)
    const { id, version: first } = JSON.parse(created.body) as { id: string; version: string }
    const edited = notebook("Again", "editor", 1)
    const saved = await send(who, "PUT", `/api/v1/worksheets/${id}`, { "if-match": `"${first}"` }, edited)
    expect(saved.status).toBe(200)
    const { version } = JSON.parse(saved.body) as { version: string }
    // the same save again (its answer was lost: a reset, a backend killed after its commit, haproxy sending it again)
    const again = await send(who, "PUT", `/api/v1/worksheets/${id}`, { "if-match": `"${first}"` }, edited)
    expect(again).toMatchObject({ status: 200, etag: `"${version}"` })
    expect(JSON.parse(again.body)).toEqual({ id, version })
    // the same content on the latest version: nothing to write, and no version the history would not show
    const unchanged = await send(who, "PUT", `/api/v1/worksheets/${id}`, { "if-match": `"${version}"` }, edited)
    expect(unchanged).toMatchObject({ status: 200, etag: `"${version}"` })
    // another content on the old version is still a conflict
    const stale = await send(who, "PUT", `/api/v1/worksheets/${id}`, { "if-match": `"${first}"` }, notebook("Again", "elsewhere", 1))
    expect(stale).toMatchObject({ status: 409, etag: `"${version}"` })
    const history = await send(who, "GET", `/api/v1/worksheets/${id}/history`)
    expect((JSON.parse(history.body) as Array<{ version: string }>).map((h) => h.version)).toEqual([version, first])
    expect(await send(who, "GET", `/api/v1/worksheets/${id}`)).toMatchObject({ status: 200, body: edited, etag: `"${version}"` })
  })
})

describe("acknowledged saves", () => {
  it("survive SIGKILL of the serving backend and of PostgreSQL during a stream of saves", async () => {
    // every request sticks to backend:1 while it is up (haproxy's SRV cookie), so its SIGKILL hits saves in flight
    const headers = { ...(await tokenFor("durable@example.org")), cookie: pin("backend:1") }

    let phase: Phase = "steady"
    const answers: Array<{ sent: Phase; answered: Phase; method: string; answer: Answer }> = []
    /** one request, counted under the phase it was sent in */
    const call = async (method: string, path: string, extra: Record<string, string> = {}, body?: string): Promise<Answer> => {
      const sent = phase
      let answer: Answer
      try {
        answer = await send(headers, method, path, extra, body)
      } catch (e) {
        answer = { status: "error", error: e instanceof Error ? `${e.name}: ${e.message} ${String(e.cause ?? "")}` : String(e) }
      }
      answers.push({ sent, answered: phase, method, answer })
      return answer
    }
    const served = await call("GET", "/api/v1/status")
    expect(served.status === "error" ? served.error : JSON.parse(served.body)).toMatchObject({ backend: "backend:1" })

    const worksheets: Array<{ id: string; version: string; title: string }> = []
    for (let w = 0; w < SOLO + 1; w++) {
      const title = `Durable ${w}`
      const created = await call("POST", "/api/v1/worksheets", {}, notebook(title, "creator", 0))
      expect(created.status).toBe(201)
      const { id, version: v } = JSON.parse(created.status === "error" ? "{}" : created.body) as { id: string; version: string }
      worksheets.push({ id, version: v, title })
    }
    const editors = [
      ...Array.from({ length: SOLO }, (_, i) => ({ name: `solo-${i}`, worksheet: worksheets[i]! })),
      ...Array.from({ length: SHARED }, (_, i) => ({ name: `shared-${i}`, worksheet: worksheets[SOLO]! })),
    ]

    const acks: Array<Ack> = []
    const unexpected: Array<string> = []
    let stopping = false

    /** the latest version as the page re-reads it after a 409: asked again until it is answered */
    const latest = async (id: string): Promise<{ version: string; content: string }> => {
      for (;;) {
        const got = await call("GET", `/api/v1/worksheets/${id}`)
        if (got.status === 200) return { version: (got.etag ?? "").replaceAll('"', ""), content: got.body }
        if (got.status !== "error" && got.status !== 503) unexpected.push(`GET ${id}: ${got.status} ${got.body}`)
        await sleep(RETRY_PAUSE_MS)
      }
    }

    const edit = async (editor: { name: string; worksheet: { id: string; version: string; title: string } }): Promise<void> => {
      const { id, title } = editor.worksheet
      let base = editor.worksheet.version
      for (let n = 1; !stopping; n++) {
        const content = notebook(title, editor.name, n)
        for (;;) {
          const sent = phase
          const put = await call("PUT", `/api/v1/worksheets/${id}`, { "if-match": `"${base}"` }, content)
          if (put.status === 200) {
            base = (JSON.parse(put.body) as { version: string }).version
            if (put.etag !== `"${base}"`) unexpected.push(`PUT ${id}: 200 with ETag ${put.etag} for version ${base}`)
            acks.push({ worksheet: id, editor: editor.name, version: base, content, phase: sent, recognised: false })
            break
          }
          if (put.status === 409) {
            const now = await latest(id)
            // a save sent again whose first attempt had been stored: the latest is this very content
            if (now.content === content) acks.push({ worksheet: id, editor: editor.name, version: now.version, content, phase: sent, recognised: true })
            base = now.version
            break
          }
          if (put.status !== "error" && put.status !== 503) unexpected.push(`PUT ${id}: ${put.status} ${put.body}`)
          await sleep(RETRY_PAUSE_MS)
        }
        await sleep(EDIT_PAUSE_MS)
      }
    }

    // a worksheet of another account, saved through backend:1 before its SIGKILL and by nobody while it is down, so
    // that backend:1's local copy of its workspace is current when it starts again
    const quiet = { ...(await tokenFor("quiet@example.org")), cookie: pin("backend:1") }
    const made = await send(quiet, "POST", "/api/v1/worksheets", {}, notebook("Quiet", "creator", 0))
    expect(made.status).toBe(201)
    const still = JSON.parse(made.body) as { id: string; version: string }

    const streaming = Promise.all(editors.map(edit))

    await sleep(STEADY_MS)
    const backend = row(await stack.status(), "backend:1")
    phase = "backend:1 SIGKILLed"
    process.kill(backend.pid!, "SIGKILL")
    // what a SIGKILL inside git leaves in the local copies (git's lock files), before the backend starts again
    const caches = join(stack.dataDir, "workspaces", "backend-1")
    for (const repo of readdirSync(caches).filter((name) => name.endsWith(".git"))) {
      for (const lock of ["sagews-index.lock", "refs/heads/main.lock"]) writeFileSync(join(caches, repo, lock), "")
    }
    const backendHealMs = await healed("backend:1", backend)
    phase = "backend:1 back"
    // the local copy with git's lock files in it is a cache: a save through backend:1 is stored all the same (once
    // haproxy sends to it again: its health checks see it up a moment after the supervisor does)
    await servedBy(quiet, "backend:1")
    const after = await send(quiet, "PUT", `/api/v1/worksheets/${still.id}`, { "if-match": `"${still.version}"` }, notebook("Quiet", "after the SIGKILL", 1))
    expect(after.status, after.body).toBe(200)
    expect(await send(quiet, "GET", `/api/v1/worksheets/${still.id}`)).toMatchObject({ status: 200, body: notebook("Quiet", "after the SIGKILL", 1) })
    await sleep(STEADY_MS)

    const postgres = row(await stack.status(), "postgres")
    phase = "postgres SIGKILLed"
    process.kill(postgres.pid!, "SIGKILL")
    const postgresHealMs = await healed("postgres", postgres)
    phase = "postgres back"
    await sleep(STEADY_MS)

    // and an operator's restart: PostgreSQL's shutdown ends the connections of saves in flight with 57P01
    phase = "postgres restarting"
    const restart = await stack.cli(["restart", "postgres"])
    expect(restart.code, restart.stderr).toBe(0)
    await stack.waitRunning()
    phase = "postgres restarted"
    const afterRestart = acks.length
    await sleep(STEADY_MS)
    stopping = true
    await streaming

    const tally = (p: Phase) => {
      const counts = new Map<string, number>()
      for (const a of answers.filter((x) => x.sent === p)) {
        const key = `${a.method} ${a.answer.status}`
        counts.set(key, (counts.get(key) ?? 0) + 1)
      }
      return Object.fromEntries(counts)
    }
    // what happened, for the reader of the run (not asserted: it varies from run to run)
    console.log(JSON.stringify({
      acknowledged: acks.length,
      answersBySentPhase: Object.fromEntries(PHASES.map((p) => [p, tally(p)])),
      backendHealMs,
      postgresHealMs,
    }))

    // only what was killed restarted: no backend fell over when PostgreSQL went away
    const restarted = (await stack.status()).filter((r) => r.restarts > 0).map((r) => `${r.id} ${r.restarts} ${r.lastExit}`)
    expect(restarted).toEqual(["postgres 2 Shutdown", "backend:1 1 Killed(SIGKILL)"])
    // what the editors saw: 200, 409 between the two sharing a worksheet, and during the outages 503 with a message;
    // a save sent again after its first attempt was stored is answered 200, never a 409 naming its own content
    expect(unexpected).toEqual([])
    expect(acks.filter((a) => a.recognised).map((a) => `${a.editor} ${a.phase}`)).toEqual([])
    expect(answers.filter((a) => a.answer.status === "error").map((a) => a.answer)).toEqual([])
    for (const { answer } of answers.filter((a) => a.answer.status === 503)) {
      expect(answer.status === "error" ? {} : JSON.parse(answer.body)).toMatchObject({ error: expect.any(String), message: expect.stringMatching(/try again/) })
    }
    expect(answers.filter((a) => a.sent === "postgres SIGKILLed" && a.answer.status === 503).length).toBeGreaterThan(0)
    // the SIGKILL hit saves in flight on backend:1, and they were answered all the same (haproxy sent them elsewhere)
    expect(answers.filter((a) => a.method === "PUT" && a.sent === "steady" && a.answered !== "steady").map((a) => a.answer.status)).toContain(200)
    // saves went on after PostgreSQL came back
    expect(acks.length).toBeGreaterThan(afterRestart)
    // (of the two sharing a worksheet, one may lose every race: it moves on to its next edit, as a page merges)
    for (const w of worksheets) expect(acks.filter((a) => a.worksheet === w.id).length).toBeGreaterThan(3)

    // the killed backend's local copies of the workspace are not needed: PostgreSQL has every version
    rmSync(join(stack.dataDir, "workspaces", "backend-1"), { recursive: true, force: true })
    let unacknowledged = 0
    for (const backend of ["backend:1", "backend:2"]) {
      const read = (path: string) => fetch(`${stack.url}${path}`, { headers: { ...headers, cookie: pin(backend) }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
      expect(await (await read("/api/v1/status")).json()).toMatchObject({ backend })
      for (const w of worksheets) {
        const mine = acks.filter((a) => a.worksheet === w.id)
        const history = await read(`/api/v1/worksheets/${w.id}/history`)
        expect(history.status).toBe(200)
        const versions = ((await history.json()) as Array<{ version: string }>).map((h) => h.version)
        // every acknowledged version is in the history, each editor's in the order it saved them
        const acknowledged = mine.map((a) => a.version)
        if (backend === "backend:1") unacknowledged += versions.filter((v) => !acknowledged.includes(v) && v !== w.version).length
        for (const e of new Set(mine.map((a) => a.editor))) {
          const its = mine.filter((a) => a.editor === e).map((a) => a.version)
          expect(versions.filter((v) => its.includes(v)).reverse()).toEqual(its)
        }
        const head = await read(`/api/v1/worksheets/${w.id}`)
        expect(head.status).toBe(200)
        // the latest is the last save answered 200 (of the two sharing a worksheet, the one saved last)
        expect(head.headers.get("etag")).toBe(`"${versions[0]}"`)
        const last = mine.find((a) => a.version === versions[0])
        expect(last?.version).toBe(w.id === worksheets[SOLO]!.id ? versions[0] : acknowledged.at(-1))
        expect(await head.text()).toBe(last?.content)
        for (const a of mine) {
          const old = await read(`/api/v1/worksheets/${w.id}?version=${a.version}`)
          expect(old.status).toBe(200)
          expect(await old.text()).toBe(a.content)
        }
      }
    }
    // stored, but answered 503 (or not at all) when they were: in the history, never lost, and no editor was told
    console.log(JSON.stringify({ inHistoryUnacknowledged: unacknowledged }))
  }, 150_000)
})
