// Pure parts of the backend: admission counting and refusals, cache keys and opt-out, option validation.
import { describe, expect, it } from "vitest"
import { Admission } from "../../src/backend/admission.ts"
import { cacheKey, optedOut } from "../../src/backend/cache.ts"
import { makeBackendOptions, parseBackendArgs } from "../../src/backend/options.ts"
import { ClientMessage } from "../../src/protocol/browser.ts"

const limits = { sessionsPerClient: 2, sessionsPerBackend: 3, execsPerClient: 1, execsPerBackend: 5, retryAfterMs: 1_500 }

describe("admission", () => {
  it("refuses past the per-client limit, names it and when to retry; a release frees the slot once", () => {
    const a = new Admission(limits)
    const first = a.session("alice")
    const second = a.session("alice")
    const third = a.session("alice")
    expect(first.ok && second.ok).toBe(true)
    expect(third).toMatchObject({ ok: false, refusal: { limit: "sessionsPerClient", max: 2, retryAfterMs: 1_500 } })
    if (!third.ok) expect(third.refusal.message).toMatch(/sessionsPerClient.*2.*1\.5 s/)
    if (first.ok) {
      first.release()
      first.release()
    }
    expect(a.counts().sessions).toBe(1)
    expect(a.session("alice").ok).toBe(true)
  })

  it("refuses past the per-backend limit whoever asks", () => {
    const a = new Admission(limits)
    expect([a.session("a"), a.session("b"), a.session("c")].every((g) => g.ok)).toBe(true)
    expect(a.session("d")).toMatchObject({ ok: false, refusal: { limit: "sessionsPerBackend", max: 3 } })
    expect(a.execution("d").ok).toBe(true)
    expect(a.execution("d")).toMatchObject({ ok: false, refusal: { limit: "execsPerClient", max: 1 } })
  })
})

describe("cache keys", () => {
  it("depend on kernel, version, limits and code, not on the order of the limits", () => {
    const base = cacheKey("sage", "9.5", { exec: 30, wall: 60 }, "1+1")
    expect(cacheKey("sage", "9.5", { wall: 60, exec: 30 }, "1+1")).toBe(base)
    expect(cacheKey("python", "9.5", { exec: 30, wall: 60 }, "1+1")).not.toBe(base)
    expect(cacheKey("sage", "9.6", { exec: 30, wall: 60 }, "1+1")).not.toBe(base)
    expect(cacheKey("sage", "9.5", { exec: 31, wall: 60 }, "1+1")).not.toBe(base)
    expect(cacheKey("sage", "9.5", { exec: 30, wall: 60 }, "1+2")).not.toBe(base)
    expect(base).toMatch(/^sagews:r:[0-9a-f]{64}$/)
  })

  it("code opts out with a `# sagews: nocache` line", () => {
    expect(optedOut("import random\n# sagews: nocache\nrandom.random()")).toBe(true)
    expect(optedOut("print('# sagews: nocache')")).toBe(false)
  })
})

describe("options and messages", () => {
  it("an option error names the field", () => {
    expect(() => makeBackendOptions({ id: "b", dataDir: "/d", port: 1, workers: ["nohost"] })).toThrow(/workers\.0: expected host:port/)
    expect(() => parseBackendArgs(["--data", "/d", "--port", "x"])).toThrow(/--port expects a whole number, got "x"/)
    expect(parseBackendArgs(["--data", "/d", "--port", "80", "--workers", "127.0.0.1:1,127.0.0.1:2", "--cache-ttl", "9"])).toMatchObject({ workers: ["127.0.0.1:1", "127.0.0.1:2"], cacheTtl: 9 })
  })

  it("client messages get their defaults and refuse unknown fields", () => {
    expect(ClientMessage.parse({ type: "run", id: "r", code: "1" })).toEqual({ type: "run", id: "r", code: "1", kernel: "sage", cache: true })
    expect(ClientMessage.safeParse({ type: "ping", id: "p", extra: 1 }).success).toBe(false)
    expect(ClientMessage.safeParse({ type: "resume", id: "r", session: "s", fromSeq: 0 }).success).toBe(false)
  })
})
