// The whole tree through the real CLI: start, the front door, healing after SIGKILL and SIGSTOP of every
// component, and a stop that leaves nothing behind.
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadConfig } from "../../src/config/load.ts"
import { alive, makeStack, type Stack, type StatusRow } from "./stack.ts"
import { sockjsPing } from "./sockjs.ts"

const COMPONENTS = ["postgres", "memcached", "logwatch", "worker:1", "backend:1", "nginx", "haproxy"]

const row = (rows: ReadonlyArray<StatusRow>, id: string): StatusRow => {
  const r = rows.find((x) => x.id === id)
  if (!r) throw new Error(`status has no ${id}: ${rows.map((x) => x.id).join(", ")}`)
  return r
}

/** Wait until `id` runs again as a new process, restarted once more than before. */
const healed = async (stack: Stack, id: string, before: StatusRow, timeoutMs = 60_000): Promise<StatusRow> => {
  const deadline = Date.now() + timeoutMs
  let last: StatusRow | undefined
  while (Date.now() < deadline) {
    const rows = await stack.status()
    last = row(rows, id)
    if (last.state === "running" && last.pid !== before.pid && last.restarts > before.restarts) {
      await stack.waitRunning()
      return last
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${id} did not come back within ${timeoutMs} ms: ${JSON.stringify(last)}`)
}

describe("a running tree", () => {
  let stack: Stack

  beforeAll(async () => {
    stack = await makeStack({ extraEnv: { SAGEWS_SUPERVISOR_INTENSITY: "30", SAGEWS_SUPERVISOR_PERIOD: "10" } })
    await stack.startForeground()
  })

  afterAll(async () => {
    await stack?.cleanup()
  })

  it("runs every component and shows them in status", async () => {
    const rows = await stack.waitRunning()
    for (const id of COMPONENTS) {
      const r = row(rows, id)
      expect(r.state).toBe("running")
      expect(r.pid).toBeGreaterThan(0)
    }
    const r = await stack.cli(["status"])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^ID\s+STATE\s+PID\s+UPTIME\s+RESTARTS\s+LAST EXIT\s+PORT/m)
    expect(r.stdout).toContain(stack.url)
  })

  it("serves the page through haproxy and nginx", async () => {
    const res = await fetch(`${stack.url}/`)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain("<title>sagews</title>")
  })

  it("answers a SockJS round trip through haproxy over websocket, xhr-streaming and xhr-polling", async () => {
    for (const transport of ["websocket", "xhr-streaming", "xhr-polling"] as const) {
      const pong = await sockjsPing(`${stack.url}/sockjs`, transport, `over-${transport}`)
      expect(pong.id).toBe(`over-${transport}`)
      expect(pong.backend).toMatch(/^backend:[12]$/)
    }
  })

  it("evaluates code with `sagews eval` through the HTTP API, and says when it fails", async () => {
    const sage = await stack.cli(["eval", "factor(x^2-1)"])
    expect(sage.stderr).toBe("")
    expect(sage.stdout.trim()).toBe("(x + 1)*(x - 1)")
    expect(sage.code).toBe(0)
    const python = await stack.cli(["eval", "--kernel", "python", "import numpy; print(numpy.arange(4).sum()); 2**10"])
    expect(python.stdout.trim().split("\n")).toEqual(["6", "1024"])
    const broken = await stack.cli(["eval", "1/0"])
    expect(broken.code).toBe(1)
    expect(broken.stderr).toContain("ZeroDivisionError")
    const usage = await stack.cli(["eval", "1", "--kernel", "julia"])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain("--kernel expects sage or python")
  })

  it("gives every backend the config's admission limits and one identity key: a token from one is valid on the other", async () => {
    const rows = await stack.status()
    const { admission } = loadConfig({ env: {} })
    for (const id of ["backend:1", "backend:2"]) {
      const pid = row(rows, id).pid
      // in its environment, never on its command line (which every user can read)
      expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain("admission")
      const variable = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").find((v) => v.startsWith("SAGEWS_BACKEND_CONFIG="))
      const config = JSON.parse(variable?.slice("SAGEWS_BACKEND_CONFIG=".length) ?? "{}") as { admission?: Record<string, number> }
      expect(config.admission).toMatchObject({ sessionsPerAddress: admission.sessionsPerAddress, execsPerAddress: admission.execsPerAddress })
    }
    // haproxy's stickiness cookie picks the backend
    const served = async (srv: string) => ((await (await fetch(`${stack.url}/api/v1/status`, { headers: { cookie: `SRV=${srv}` } })).json()) as { backend: string }).backend
    expect([await served("b1"), await served("b2")]).toEqual(["backend:1", "backend:2"])
    const first = await fetch(`${stack.url}/api/v1/identity`, { headers: { cookie: "SRV=b1" } })
    const cookie = (first.headers.get("set-cookie") ?? "").split(";")[0] ?? ""
    expect(cookie).toMatch(/^sagews_id=v1\./)
    const issued = await first.json()
    const second = await fetch(`${stack.url}/api/v1/identity`, { headers: { cookie: `SRV=b2; ${cookie}` } })
    expect(second.headers.get("set-cookie")).toBe(null)
    expect(await second.json()).toEqual(issued)
  })

  it("shows every component's log from PostgreSQL with `sagews logs`", async () => {
    await fetch(`${stack.url}/?from-the-logs-test`)
    let shown = ""
    for (let i = 0; i < 100 && !shown.includes("from-the-logs-test"); i++) {
      const r = await stack.cli(["logs", "haproxy", "--since", "5m"])
      expect(r.code).toBe(0)
      shown = r.stdout
      await new Promise((ok) => setTimeout(ok, 100))
    }
    expect(shown).toMatch(/ haproxy INFO .*GET \/\?from-the-logs-test HTTP/)
    const all = await stack.cli(["logs", "--since", "10m"])
    for (const component of ["sagews", "postgres", "worker:1", "backend:1", "nginx"]) expect(all.stdout).toContain(` ${component} `)
    const bad = await stack.cli(["logs", "--since", "soon"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--since expects a duration such as 30s, 10m, 2h or 1d, got "soon"')
  })

  it("restarts one component on `sagews restart ID`, at any depth, and refuses an unknown id", async () => {
    const before = row(await stack.status(), "backend:2")
    const r = await stack.cli(["restart", "backend:2"])
    expect(r.code).toBe(0)
    const after = row(await stack.status(), "backend:2")
    expect(after.state).toBe("running")
    expect(after.pid).not.toBe(before.pid)
    expect(after.restarts).toBe(before.restarts + 1)
    expect(after.lastExit).toBe("Shutdown")
    expect(row(await stack.status(), "web").restarts).toBe(0) // only the child, not its supervisor
    const unknown = await stack.cli(["restart", "backend:9"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain("backend:9")
  })

  it("says it is already running when started twice on the same data dir", async () => {
    const r = await stack.cli(["start"])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("already running")
  })

  for (const id of COMPONENTS) {
    it(`restarts ${id} after SIGKILL and shows Killed(SIGKILL)`, async () => {
      const before = row(await stack.status(), id)
      process.kill(before.pid!, "SIGKILL")
      const after = await healed(stack, id, before)
      expect(after.lastExit).toBe("Killed(SIGKILL)")
      expect(after.restarts).toBe(before.restarts + 1)
    })

    it(`kills and restarts ${id} when it hangs (SIGSTOP)`, async () => {
      const before = row(await stack.status(), id)
      process.kill(before.pid!, "SIGSTOP")
      const after = await healed(stack, id, before)
      expect(after.lastExit).toBe("Timeout(liveness)")
      expect(alive(before.pid!)).toBe(false)
    })
  }

  it("still serves the page and SockJS after all that", async () => {
    const res = await fetch(`${stack.url}/`)
    expect(res.status).toBe(200)
    expect((await sockjsPing(`${stack.url}/sockjs`, "websocket", "still-here")).id).toBe("still-here")
  })

  it("stops with `sagews stop`, leaving no process of the tree", async () => {
    const r = await stack.cli(["stop"])
    expect(r.code).toBe(0)
    expect(stack.processes()).toEqual([])
    const s = await stack.cli(["status"])
    expect(s.code).toBe(1)
    expect(s.stderr).toContain("not running")
  })
})
