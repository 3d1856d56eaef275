// logwatch against a real PostgreSQL: lines shipped with their fields, malformed lines kept, PostgreSQL down at start.
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { leftoverProcesses, sleep, startLogwatch, stopChild, tempDataDir, TestCluster, waitFor } from "./fixture.ts"
import type { ChildProcess } from "node:child_process"

const jsonLine = (component: string, msg: string, level = "info") =>
  `${JSON.stringify({ ts: new Date().toISOString(), component, pid: 1234, level, msg })}\n`

let cleanup: Array<() => Promise<unknown>> = []
let dataDirs: Array<string> = []

afterEach(async () => {
  for (const f of cleanup.reverse()) await f()
  cleanup = []
  for (const dir of dataDirs) {
    expect(await leftoverProcesses(dir)).toEqual([])
    await fs.rm(dir, { recursive: true, force: true })
  }
  dataDirs = []
})

const setup = async () => {
  const dataDir = await tempDataDir()
  dataDirs.push(dataDir)
  const cluster = await TestCluster.create(dataDir)
  cleanup.push(() => cluster.stop())
  return { dataDir, cluster }
}

const run = (dataDir: string, url: string): ChildProcess => {
  const child = startLogwatch(dataDir, url)
  cleanup.push(() => stopChild(child, "SIGKILL"))
  return child
}

const countRows = async (cluster: TestCluster, component: string) =>
  Number((await cluster.query<{ n: string }>("SELECT count(*) AS n FROM log WHERE component = $1", [component]))[0]?.n)

describe("logwatch", () => {
  it("ships JSON lines with their fields, keeps malformed lines, answers ok on its socket, exits 0 on SIGTERM", async () => {
    const { dataDir, cluster } = await setup()
    await cluster.start()
    const file = path.join(dataDir, "log", "worker:1.log")
    await fs.writeFile(file, jsonLine("worker:1", "hello", "warn") + "this is { not json\n" + jsonLine("worker:1", "partial"))
    const child = run(dataDir, cluster.url)
    await waitFor("3 rows", async () => (await countRows(cluster, "worker:1")) === 3)
    // A line without its newline is not shipped until it is complete.
    await fs.appendFile(file, `{"ts":"2026-11-22T10:00:00Z","component":"worker:1","msg":"half`)
    await sleep(500)
    expect(await countRows(cluster, "worker:1")).toBe(3)
    await fs.appendFile(file, ` done"}\n`)
    await waitFor("the completed line", async () => (await countRows(cluster, "worker:1")) === 4)
    const rows = await cluster.query<{ host: string; pid: number | null; level: string; msg: string }>(
      "SELECT host, pid, level, msg FROM log WHERE component = 'worker:1' ORDER BY id",
    )
    expect(rows).toEqual([
      { host: "test", pid: 1234, level: "warn", msg: "hello" },
      { host: "test", pid: null, level: "error", msg: "this is { not json" },
      { host: "test", pid: 1234, level: "info", msg: "partial" },
      { host: "test", pid: null, level: "info", msg: "half done" },
    ])
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(path.join(dataDir, "run", "logwatch.sock"))
      let data = ""
      socket.on("data", (chunk) => (data += chunk.toString()))
      socket.on("end", () => resolve(data))
      socket.on("error", reject)
    })
    expect(answer).toBe("ok\n")
    expect(await stopChild(child, "SIGTERM")).toBe(0)
    // Its own lines were shipped too, but only a few: no line per batch.
    const own = await countRows(cluster, "logwatch")
    expect(own).toBeLessThan(5)
  })

  it("stores every character of a message as written (COPY escaping), NUL made visible", async () => {
    const { dataDir, cluster } = await setup()
    await cluster.start()
    const msgs = ["tab\there", "back\\slash \\N \\.", "two\nlines\r", "\\.", "ünïcødé ∑ 🙂", "nul\u0000byte", "\\N"]
    const raw = ["\\.", "\t\\N"] // plain lines, wrapped as malformed
    const lines = [...msgs.map((msg) => JSON.stringify({ component: "odd", msg })), ...raw]
    await fs.writeFile(path.join(dataDir, "log", "odd.log"), lines.map((l) => `${l}\n`).join(""))
    run(dataDir, cluster.url)
    await waitFor("every line", async () => (await countRows(cluster, "odd")) === lines.length)
    const rows = await cluster.query<{ msg: string }>("SELECT msg FROM log WHERE component = 'odd' ORDER BY id")
    expect(rows.map((r) => r.msg)).toEqual([...msgs.map((m) => m.replace("\u0000", "\\u0000")), ...raw])
  })

  it("lets only one logwatch ship for a host name; the second takes over when the first stops", async () => {
    const { dataDir, cluster } = await setup()
    await cluster.start()
    const file = path.join(dataDir, "log", "app.log")
    const first = run(dataDir, cluster.url)
    await fs.appendFile(file, "a\n")
    await waitFor("the first line", async () => (await countRows(cluster, "app")) === 1)
    const otherDir = await tempDataDir() // the same host name, another machine (another data dir)
    dataDirs.push(otherDir)
    await fs.appendFile(path.join(otherDir, "log", "app.log"), "from the other machine\n")
    run(otherDir, cluster.url)
    await sleep(1_500)
    expect(await countRows(cluster, "app")).toBe(1)
    expect(await stopChild(first, "SIGTERM")).toBe(0)
    await waitFor("the second logwatch to take over", async () => (await countRows(cluster, "app")) === 2, 15_000)
  })

  it("started while PostgreSQL is down, keeps retrying and ships everything once it is up", async () => {
    const { dataDir, cluster } = await setup()
    const child = run(dataDir, cluster.url)
    for (let i = 0; i < 3; i++) {
      await fs.appendFile(path.join(dataDir, "log", "backend:1.log"), Array.from({ length: 1000 }, (_, j) => jsonLine("backend:1", `m ${i} ${j}`)).join(""))
      await sleep(700)
    }
    expect(child.exitCode).toBe(null)
    await cluster.start()
    await waitFor("3000 rows", async () => (await countRows(cluster, "backend:1")) === 3000)
    const distinct = await cluster.query<{ n: string }>("SELECT count(DISTINCT msg) AS n FROM log WHERE component = 'backend:1'")
    expect(Number(distinct[0]?.n)).toBe(3000)
    // Its own account of the outage is shipped too (a cycle later).
    await waitFor("logwatch's lines about the outage", async () => {
      const own = await cluster.query<{ msg: string }>("SELECT msg FROM log WHERE component = 'logwatch' ORDER BY id")
      return own.some((row) => row.msg.includes("retrying")) && own.some((row) => row.msg.includes("reachable again"))
    })
  })
})
