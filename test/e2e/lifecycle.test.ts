// The tree's life through the CLI: signals to a foreground start, kill -9 of the root and the clean start
// after it, escalation shown in status, daemon mode, and bad configuration.
import { spawn } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { alive, makeStack, ROOT, type Stack, type StatusRow } from "./stack.ts"

const exitOf = (child: import("node:child_process").ChildProcess): Promise<number | null> =>
  new Promise((ok) => (child.exitCode !== null ? ok(child.exitCode) : child.once("exit", (code) => ok(code))))

const waitFor = async <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const v = await check().catch(() => undefined)
    if (v !== undefined) return v
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

describe("the tree's life cycle", () => {
  let stack: Stack

  beforeAll(async () => {
    stack = await makeStack({ backends: 1 })
  })

  afterAll(async () => {
    await stack?.cleanup()
  })

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`stops everything on ${signal} to a foreground start`, async () => {
      const child = await stack.startForeground()
      expect(stack.processes().length).toBeGreaterThan(5)
      child.kill(signal)
      expect(await exitOf(child)).toBe(0)
      expect(stack.processes()).toEqual([])
    })
  }

  it("comes up with `npm start` and prints the URL; Ctrl-C stops everything", async () => {
    // detached: its own process group, so a SIGINT to the group is what a terminal's Ctrl-C sends
    const npm = spawn("npm", ["start"], { cwd: ROOT, env: stack.env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    npm.stdout.on("data", (d: Buffer) => (output += d.toString()))
    npm.stderr.on("data", (d: Buffer) => (output += d.toString()))
    await stack.waitRunning()
    await waitFor("the URL on the terminal", async () => (output.includes(`sagews is running: ${stack.url}/`) ? true : undefined))
    process.kill(-npm.pid!, "SIGINT")
    await exitOf(npm)
    await waitFor("every process to end", async () => (stack.processes().length === 0 ? true : undefined))
    expect(output).toContain("stopped; nothing of the tree is left running")
  })

  it("after kill -9 of the root, the next start ends the leftovers and starts clean", async () => {
    const daemon = await stack.cli(["start", "--daemon"])
    expect(daemon.code).toBe(0)
    expect(daemon.stdout).toContain(stack.url)
    const before = await stack.waitRunning()
    const rootPid = Number(readFileSync(join(stack.dataDir, "run/sagews.pid"), "utf8"))
    process.kill(rootPid, "SIGKILL")
    await waitFor("the root to die", async () => (alive(rootPid) ? undefined : true))
    const leftovers = before.flatMap((r) => (r.pid !== null && alive(r.pid) ? [r.pid] : []))
    expect(leftovers.length).toBeGreaterThan(0) // the children outlive a SIGKILLed root...

    const again = await stack.cli(["start", "--daemon"])
    expect(again.code).toBe(0)
    const rows = await stack.waitRunning()
    for (const pid of leftovers) expect(alive(pid)).toBe(false) // ...until the next start ends them
    expect(rows.every((r) => r.state === "running")).toBe(true)
    const stop = await stack.cli(["stop"])
    expect(stop.code).toBe(0)
    expect(stack.processes()).toEqual([])
  })

  it("escalates a crash loop by intensity, and status shows it", async () => {
    const start = await stack.cli(["start", "--daemon"], { SAGEWS_SUPERVISOR_INTENSITY: "1", SAGEWS_SUPERVISOR_PERIOD: "60" })
    expect(start.code).toBe(0)
    let rows = await stack.waitRunning()
    for (let kill = 0; kill < 2; kill++) {
      const backend = rows.find((r) => r.id === "backend:1")!
      process.kill(backend.pid!, "SIGKILL")
      rows = await waitFor("backend:1 to come back", async () => {
        const now = await stack.status()
        const b = now.find((r) => r.id === "backend:1")
        return b && b.state === "running" && b.pid !== backend.pid && now.every((r) => r.state === "running") ? now : undefined
      })
    }
    const web = rows.find((r) => r.id === "web") as StatusRow
    expect(web.restarts).toBe(1)
    expect(web.lastExit).toMatch(/^Crash\(.*web.*gave up/)
    const json = JSON.parse((await stack.cli(["status", "--json"])).stdout) as { events: Array<{ kind: string; supervisor: string }> }
    expect(json.events.some((e) => e.kind === "escalation" && e.supervisor === "web")).toBe(true)
    expect((await stack.cli(["stop"])).code).toBe(0)
    expect(stack.processes()).toEqual([])
  })

  it("never gives up on PostgreSQL: the store restarts it however often it dies, and nothing else is restarted", async () => {
    const start = await stack.cli(["start", "--daemon"], { SAGEWS_SUPERVISOR_INTENSITY: "1", SAGEWS_SUPERVISOR_PERIOD: "60" })
    expect(start.code).toBe(0)
    let rows = await stack.waitRunning()
    for (let kill = 0; kill < 3; kill++) {
      const pg = rows.find((r) => r.id === "postgres")!
      process.kill(pg.pid!, "SIGKILL")
      rows = await waitFor("postgres to come back", async () => {
        const now = await stack.status()
        const p = now.find((r) => r.id === "postgres")
        return p && p.state === "running" && p.pid !== pg.pid && now.every((r) => r.state === "running") ? now : undefined
      })
    }
    expect(rows.find((r) => r.id === "postgres")?.restarts).toBe(3)
    for (const id of ["store", "memcached", "web", "compute"]) expect(rows.find((r) => r.id === id)?.restarts).toBe(0)
    expect((await stack.cli(["stop"])).code).toBe(0)
    expect(stack.processes()).toEqual([])
  })

  it("refuses a bad configuration with exit code 2, naming the field", async () => {
    const env = await stack.cli(["start"], { SAGEWS_POSTGRES_PORT: "seventy" })
    expect(env.code).toBe(2)
    expect(env.stderr).toContain("postgres.port")
    expect(env.stderr).toContain("seventy")
    const file = join(stack.dataDir, "bad.json")
    writeFileSync(file, JSON.stringify({ cache: { memoryMb: 0 } })) // a field the stack's environment does not set
    const fromFile = await stack.cli(["config", "check", "--config", file])
    expect(fromFile.code).toBe(2)
    expect(fromFile.stderr).toContain("cache.memoryMb = 0")
    expect(fromFile.stderr).toContain(file)
    expect(stack.processes()).toEqual([])
  })

  it("says so when nothing is running", async () => {
    for (const cmd of [["status"], ["restart", "worker:1"]]) {
      const r = await stack.cli(cmd)
      expect(r.code).toBe(1)
      expect(r.stderr).toContain("not running")
    }
  })
})
