// Pure parts of the backend: admission counting and refusals (per client, per address, per backend), cache keys and
// opt-out, option validation.
import { describe, expect, it } from "vitest"
import { makeAdmission } from "../../src/backend/admission.ts"
import { cacheKey, optedOut } from "../../src/backend/cache.ts"
import { makeBackendOptions, parseBackendArgs } from "../../src/backend/options.ts"
import { ClientMessage } from "../../src/protocol/browser.ts"

const limits = { sessionsPerClient: 2, sessionsPerAddress: 3, sessionsPerBackend: 4, execsPerClient: 1, execsPerAddress: 2, execsPerBackend: 5, retryAfterMs: 1_500 }
/** a client at its own address, so only the per-client and per-backend limits can bite */
const alone = (client: string) => ({ client, address: `addr-of-${client}` })

describe("admission", () => {
  it("refuses past the per-client limit, names it and when to retry; a release frees the slot once", () => {
    const a = makeAdmission(limits)
    const first = a.session(alone("alice"))
    const second = a.session(alone("alice"))
    const third = a.session(alone("alice"))
    expect(first.ok && second.ok).toBe(true)
    expect(third).toMatchObject({ ok: false, refusal: { limit: "sessionsPerClient", max: 2, retryAfterMs: 1_500 } })
    if (!third.ok) expect(third.refusal.message).toMatch(/sessionsPerClient.*2.*1\.5 s/)
    if (first.ok) {
      first.release()
      first.release()
    }
    expect(a.counts().sessions).toBe(1)
    expect(a.session(alone("alice")).ok).toBe(true)
  })

  it("counts every client of one address together: new identities do not get past the per-address limit", () => {
    const a = makeAdmission(limits)
    const at = (client: string) => ({ client, address: "203.0.113.7" })
    expect([a.session(at("c1")), a.session(at("c2")), a.session(at("c3"))].every((g) => g.ok)).toBe(true)
    const fourth = a.session(at("c4"))
    expect(fourth).toMatchObject({ ok: false, refusal: { limit: "sessionsPerAddress", max: 3, retryAfterMs: 1_500 } })
    if (!fourth.ok) expect(fourth.refusal.message).toBe("limit sessionsPerAddress reached: your address (203.0.113.7) has 3 live sessions, the most allowed is 3; close one of your sessions, or try again in 1.5 s")
    expect(a.session(alone("c4")).ok).toBe(true)
    const e1 = a.execution(at("c1"))
    expect(e1.ok && a.execution(at("c2")).ok).toBe(true)
    expect(a.execution(at("c3"))).toMatchObject({ ok: false, refusal: { limit: "execsPerAddress", max: 2 } })
    if (e1.ok) e1.release()
    expect(a.execution(at("c3")).ok).toBe(true)
  })

  it("refuses past the per-backend limit whoever asks", () => {
    const a = makeAdmission(limits)
    expect(["a", "b", "c", "d"].map((c) => a.session(alone(c))).every((g) => g.ok)).toBe(true)
    expect(a.session(alone("e"))).toMatchObject({ ok: false, refusal: { limit: "sessionsPerBackend", max: 4 } })
    expect(a.execution(alone("e")).ok).toBe(true)
    expect(a.execution(alone("e"))).toMatchObject({ ok: false, refusal: { limit: "execsPerClient", max: 1 } })
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
    const inline = parseBackendArgs(["--data", "/d", "--port", "80", "--config-json", JSON.stringify({ admission: { sessionsPerAddress: 5 }, identityMaxAge: 60 })])
    expect(inline).toMatchObject({ admission: { sessionsPerAddress: 5, sessionsPerClient: 8 }, identityMaxAge: 60 })
    expect(() => parseBackendArgs(["--data", "/d", "--port", "80", "--config-json", JSON.stringify({ admission: { sessionsPerAddress: 0 } })])).toThrow(/admission\.sessionsPerAddress/)
    expect(() => parseBackendArgs(["--data", "/d", "--port", "80", "--config-json", "[1]"])).toThrow(/--config-json expects a JSON object, got \[1\]/)
    // the tree passes it in the environment; the command line's --config-json wins over it
    const passed = parseBackendArgs(["--data", "/d", "--port", "80"], { SAGEWS_BACKEND_CONFIG: JSON.stringify({ admission: { sessionsPerAddress: 7 } }) })
    expect(passed).toMatchObject({ admission: { sessionsPerAddress: 7, sessionsPerClient: 8 } })
    expect(() => parseBackendArgs(["--data", "/d", "--port", "80"], { SAGEWS_BACKEND_CONFIG: "nope" })).toThrow(/SAGEWS_BACKEND_CONFIG/)
  })

  it("client messages get their defaults and refuse unknown fields", () => {
    expect(ClientMessage.parse({ type: "run", id: "r", code: "1" })).toEqual({ type: "run", id: "r", code: "1", kernel: "sage", cache: true })
    expect(ClientMessage.safeParse({ type: "ping", id: "p", extra: 1 }).success).toBe(false)
    expect(ClientMessage.safeParse({ type: "resume", id: "r", session: "s", fromSeq: 0 }).success).toBe(false)
    // a hello names no client: the id admission counts by is issued by the server
    expect(ClientMessage.safeParse({ type: "hello", id: "h", client: "c-chosen-by-me" }).success).toBe(false)
    expect(ClientMessage.safeParse({ type: "hello", id: "h", token: "v1.x" }).success).toBe(true)
  })
})
