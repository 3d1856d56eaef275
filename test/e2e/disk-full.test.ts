// A full data disk (issue 9): the tree stays up and `status` names the full disk; a component that stops meanwhile
// waits to start until there is room (no crash loop, no supervisor gives up), stateless runs go on through the other
// backend, and once there is room again the component is back. The data directory is on a small tmpfs of the test's.
import { execFileSync } from "node:child_process"
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeStack, type Stack, type StatusRow } from "./stack.ts"

let mountpoint: string
let stack: Stack | undefined

beforeAll(async () => {
  mountpoint = mkdtempSync(join(tmpdir(), "sagews-disk-"))
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=256m,mode=0711", "tmpfs", mountpoint])
  stack = await makeStack({ parent: mountpoint })
  await stack.startForeground()
})

afterAll(async () => {
  const left = stack?.processes() ?? []
  await stack?.cleanup()
  execFileSync("umount", [mountpoint])
  rmdirSync(mountpoint)
  expect(left.length).toBeGreaterThan(0) // it was running until cleanup
  expect(stack?.processes()).toEqual([])
})

const row = (rows: ReadonlyArray<StatusRow>, id: string): StatusRow => rows.find((r) => r.id === id)!

/** Writes zeros into `path` until the filesystem is full. */
const fill = (path: string): void => {
  const fd = openSync(path, "w")
  const chunk = Buffer.alloc(1 << 20)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e
  } finally {
    closeSync(fd)
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("a full data disk", () => {
  it("keeps the tree up and says so; a killed component waits for room instead of crash-looping, and is back once there is room", async () => {
    const s = stack!
    const filler = join(mountpoint, "filler")
    fill(filler)
    try {
      const json = JSON.parse((await s.cli(["status", "--json"])).stdout) as { disk: { full: boolean; freeBytes: number } }
      expect(json.disk.full).toBe(true)
      expect((await s.cli(["status"])).stdout).toMatch(/^disk FULL: .* free some space$/m)
      const before = row(await s.status(), "backend:1")
      process.kill(before.pid!, "SIGKILL")
      // long enough for several restarts at the configured backoff, had it been restarted into the full disk
      await sleep(4_000)
      const rows = await s.status()
      expect(row(rows, "backend:1")).toMatchObject({ state: "starting", restarts: before.restarts + 1, lastExit: "Killed(SIGKILL)" })
      for (const id of ["web", "store", "compute"]) expect(row(rows, id).restarts).toBe(0)
      for (const id of ["backend:2", "worker:1", "haproxy", "nginx"]) expect(row(rows, id).state).toBe("running")
      const reply = await fetch(`${s.url}/api/v1/execute`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ kernel: "python", code: "print(6 * 7)", cache: false }) })
      expect(reply.status).toBe(200)
      expect(await reply.json()).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "42\n" }, { kind: "done" }] })
    } finally {
      rmSync(filler, { force: true })
    }
    const back = await s.waitRunning(30_000)
    expect(row(back, "backend:1").restarts).toBe(1)
    expect((await s.cli(["status"])).stdout).toMatch(/^disk: .* free of /m)
  })
})
