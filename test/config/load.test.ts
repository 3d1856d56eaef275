// Configuration loading: defaults < operator file < SAGEWS_* variables < command line, and errors that name
// the field, the value, where it came from and what was expected.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ConfigError, frontUrl, loadConfig } from "../../src/config/load.ts"
import { backendConfig } from "../../supervisors/tree.ts"

const dir = mkdtempSync(join(tmpdir(), "sagews-config-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const file = (name: string, content: string) => {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

const problems = (f: () => unknown): string[] => {
  try {
    f()
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems]
    throw e
  }
  throw new Error("expected a ConfigError")
}

describe("loadConfig", () => {
  it("gives the defaults from conf/sagews.json", () => {
    const c = loadConfig({ env: {} })
    expect(c.port).toBe(8080)
    expect(c.cache.enabled).toBe(true)
    expect(c.host.length).toBeGreaterThan(0)
  })

  it("layers the operator's file, then the environment, then the command line", () => {
    const f = file("layers.json", JSON.stringify({ port: 9000, nginx: { port: 9001 }, cache: { memoryMb: 32 } }))
    const c = loadConfig({ file: f, env: { SAGEWS_NGINX_PORT: "9002", SAGEWS_CACHE_ENABLED: "false" }, overrides: { port: 9100 } })
    expect(c.port).toBe(9100)
    expect(c.nginx.port).toBe(9002)
    expect(c.cache.memoryMb).toBe(32)
    expect(c.cache.enabled).toBe(false)
    expect(c.cache.ttlSeconds).toBe(3600) // untouched defaults stay
  })

  it("names the field, the value, its source and the expectation", () => {
    const f = file("bad.json", JSON.stringify({ workers: { count: 0 } }))
    const p = problems(() => loadConfig({ file: f, env: { SAGEWS_POSTGRES_PORT: "abc" } }))
    expect(p).toContain(`workers.count = 0 (from ${f}): expected an integer >= 1`)
    expect(p).toContain("postgres.port = \"abc\" (from SAGEWS_POSTGRES_PORT): expected a port number")
  })

  it("refuses unknown fields and unknown SAGEWS_ variables by name", () => {
    const f = file("unknown.json", JSON.stringify({ cache: { ttl: 5 } }))
    expect(problems(() => loadConfig({ file: f, env: {} })).join("\n")).toContain("unknown field cache.ttl")
    expect(problems(() => loadConfig({ env: { SAGEWS_PROT: "1" } })).join("\n")).toContain("SAGEWS_PROT is not a sagews setting")
  })

  it("admission limits come from the config and reach the backends in their own terms", () => {
    const c = loadConfig({ env: { SAGEWS_ADMISSION_SESSIONS_PER_ADDRESS: "12", SAGEWS_ADMISSION_IDENTITY_DAYS: "2" } })
    expect(c.admission).toEqual({ sessionsPerClient: 8, sessionsPerAddress: 12, execsPerClient: 4, execsPerAddress: 20, identityDays: 2 })
    expect(backendConfig(c)).toEqual({ admission: { sessionsPerClient: 8, sessionsPerAddress: 12, execsPerClient: 4, execsPerAddress: 20 }, identityMaxAge: 2 * 86_400, signIn: { providers: [] } })
    expect(problems(() => loadConfig({ env: { SAGEWS_ADMISSION_EXECS_PER_ADDRESS: "0" } }))).toContain("admission.execsPerAddress = 0 (from SAGEWS_ADMISSION_EXECS_PER_ADDRESS): expected an integer >= 1")
  })

  it("takes OpenID Connect providers, passes them to the backends, and names the field of a bad one", () => {
    const good = { name: "keycloak", issuer: "https://id.example.org/realms/math", clientId: "sagews", clientSecretFile: "/etc/sagews/keycloak.secret" }
    const c = loadConfig({ file: file("providers.json", JSON.stringify({ signIn: { providers: [good] } })), env: {} })
    expect(c.signIn.providers).toEqual([good])
    expect(backendConfig(c).signIn).toEqual({ providers: [good] })
    const bad = [
      { ...good, name: "Key Cloak" },
      { ...good, name: "other", issuer: "http://id.example.org" },
      { name: "both", issuer: good.issuer, clientId: "x", clientSecret: "s", clientSecretFile: "/s" },
    ]
    const p = problems(() => loadConfig({ file: file("bad-providers.json", JSON.stringify({ signIn: { providers: bad } })), env: {} })).join("\n")
    expect(p).toContain(`signIn.providers.0.name = "Key Cloak" (from ${join(dir, "bad-providers.json")})`)
    expect(p).toContain("signIn.providers.1.issuer")
    expect(p).toContain("expected an https issuer URL (http only for localhost)")
    expect(p).toContain("signIn.providers.2.clientSecret")
    expect(p).toContain("expected exactly one of clientSecret and clientSecretFile")
    const twice = problems(() => loadConfig({ file: file("twice.json", JSON.stringify({ signIn: { providers: [good, good] } })), env: {} })).join("\n")
    expect(twice).toContain(`signIn.providers.1.name = "keycloak"`)
    expect(twice).toContain(`"keycloak" names another provider too`)
  })

  it("says which file is unreadable or not JSON", () => {
    expect(problems(() => loadConfig({ file: join(dir, "missing.json"), env: {} }))[0]).toContain("cannot read config file")
    const f = file("broken.json", "{ port: 1 ")
    expect(problems(() => loadConfig({ file: f, env: {} }))[0]).toContain(`config file ${f} is not valid JSON`)
  })

  it("refuses two components on one port and a backoff cap below the backoff, naming both fields", () => {
    const f = file("clash.json", JSON.stringify({ port: 9100, backends: { count: 2, basePort: 9099 }, supervisor: { backoffMs: 500, backoffCapMs: 100 } }))
    const p = problems(() => loadConfig({ file: f, env: {} })).join("\n")
    expect(p).toContain("port 9100 is also port's: every component needs its own port")
    expect(p).toContain("backends.basePort = 9099")
    expect(p).toContain("supervisor.backoffCapMs = 100")
    expect(p).toContain("expected at least supervisor.backoffMs (500)")
  })
})

describe("frontUrl", () => {
  it("gives a URL a browser on this machine can open, IPv6 included", () => {
    expect(frontUrl({ bind: "127.0.0.1", port: 8080 })).toBe("http://127.0.0.1:8080/")
    expect(frontUrl({ bind: "0.0.0.0", port: 8080 })).toBe("http://127.0.0.1:8080/")
    expect(frontUrl({ bind: "::", port: 8080 })).toBe("http://[::1]:8080/")
    expect(frontUrl({ bind: "fd00::5", port: 81 })).toBe("http://[fd00::5]:81/")
  })
})
