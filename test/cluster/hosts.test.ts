// The test-host harness against real network namespaces: hosts reach each other by address and nothing else, a cut
// cable parts one host and a restored one joins it again, and destroy, a thrown test, a crashed test process (the
// exit safety net) and a killed one (sweepLeftovers) all leave no namespace, interface or process behind.
import { execFileSync, spawn } from "node:child_process"
import { readlinkSync, realpathSync } from "node:fs"
import { connect } from "node:net"
import { networkInterfaces } from "node:os"
import { fileURLToPath, pathToFileURL } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { processGone } from "../../actors/procstat.ts"
import { type Hosts, makeHosts, NS_PREFIX, sweepLeftovers } from "./hosts.ts"

const NAMES = ["store", "web1", "web2", "worker1", "worker2"]
const PORT = 7000
/** how long a probe waits for a connection and the server's greeting: well above a bridge round trip (~1 ms) */
const PROBE_MS = 500
/** how long a failure that the kernel reports at once (no route) may take, measured around the connect alone */
const AT_ONCE_MS = 100

/** A server that greets every connection with its host's name and reports each connection it accepted. */
const SERVER = `
const [address, port, name] = process.argv.slice(1)
const server = require("node:net").createServer((socket) => {
  socket.on("error", () => {})
  console.log("accepted " + socket.remoteAddress)
  socket.end(name + "\\n")
})
server.on("error", (error) => { console.error(error.message); process.exit(1) })
server.listen(Number(port), address, () => console.log("listening"))
`

/** Connects, waits for one greeting line; prints {greeting} | {error, ms} | {timeout}. */
const PROBE = `
const [host, port, ms] = process.argv.slice(1)
const started = Date.now()
const socket = require("node:net").connect({ host, port: Number(port) })
const done = (result) => { console.log(JSON.stringify(result)); socket.destroy(); process.exit(0) }
socket.setEncoding("utf8")
socket.on("data", (data) => done({ greeting: data.trim() }))
socket.on("error", (error) => done({ error: error.code, ms: Date.now() - started }))
setTimeout(() => done({ timeout: true }), Number(ms))
`

type Probe = { readonly greeting?: string; readonly error?: string; readonly ms?: number; readonly timeout?: boolean }

const probe = async (hosts: Hosts, from: string, address: string, port = PORT): Promise<Probe> => {
  const result = await hosts.exec(from, process.execPath, ["-e", PROBE, address, String(port), String(PROBE_MS)])
  if (result.code !== 0) throw new Error(`probe from ${from} exited ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout) as Probe
}

/** The same probe from the test process itself, in the root namespace. */
const probeFromRoot = (address: string): Promise<Probe> =>
  new Promise((resolve) => {
    const socket = connect({ host: address, port: PORT })
    const done = (result: Probe) => (socket.destroy(), clearTimeout(timer), resolve(result))
    const timer = setTimeout(() => done({ timeout: true }), PROBE_MS)
    socket.setEncoding("utf8")
    socket.on("data", (data: string) => done({ greeting: data.trim() }))
    socket.on("error", (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message }))
  })

const ip = (...args: ReadonlyArray<string>): string => execFileSync("ip", [...args], { encoding: "utf8" })
const namespacesWith = (prefix: string): ReadonlyArray<string> =>
  ip("netns", "list").split("\n").map((line) => line.split(" ")[0] ?? "").filter((ns) => ns.startsWith(prefix))
const rootLinkNames = (): ReadonlyArray<string> =>
  ip("-o", "link").split("\n").filter((line) => line !== "").map((line) => line.split(": ")[1] ?? "").sort()

const until = async (what: string, check: () => Promise<boolean>, ms: number): Promise<void> => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The machine's own first non-loopback IPv4 address: a test host must not reach it. */
const machineAddress = (): string => {
  const found = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && a.family === "IPv4" && !a.internal)
  if (found === undefined) throw new Error("the machine has no non-loopback IPv4 address to test against")
  return found.address
}

describe("five test hosts on one bridge", () => {
  let hosts: Hosts
  let linksBefore: ReadonlyArray<string>
  const servers: Array<{ pid: number; output: () => string }> = []

  const startServer = async (name: string) => {
    const child = hosts.spawn(name, process.execPath, ["-e", SERVER, hosts.host(name).address, String(PORT), name])
    let output = ""
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    await until(`${name}'s server listening`, async () => output.includes("listening"), 5_000)
    const server = { pid: child.pid ?? 0, output: () => output }
    servers.push(server)
    return server
  }

  beforeAll(async () => {
    linksBefore = rootLinkNames()
    hosts = await makeHosts(NAMES)
  })
  afterAll(() => hosts?.destroy())

  it("reach each other by address, and nothing outside their bridge", async () => {
    const worker1 = await startServer("worker1")
    const address = hosts.host("worker1").address
    for (const from of ["web1", "web2"]) expect(await probe(hosts, from, address)).toEqual({ greeting: "worker1" })
    expect(worker1.output().match(/accepted/g)).toHaveLength(2)

    // The root namespace has none of our addresses or interfaces, and its route to the hosts' subnet is its default
    // route out to the real network: there, this machine's network accepts any TCP connect, but worker1 never answers.
    expect(ip("-o", "addr")).not.toContain(address)
    expect(ip("route", "get", address)).not.toMatch(/dev (br0|v-|eth0@)/)
    expect((await probeFromRoot(address)).greeting).toBeUndefined()
    expect(worker1.output().match(/accepted/g)).toHaveLength(2)

    for (const h of hosts.hosts) {
      expect(ip("-n", h.ns, "route", "show", "default")).toBe("")
      expect(ip("-n", h.ns, "-6", "route", "show", "default")).toBe("")
    }
    // Only the network differs inside a host: the repository's TypeScript and its node_modules load as they do here.
    const harness = pathToFileURL(fileURLToPath(new URL("./hosts.ts", import.meta.url))).href
    const loaded = await hosts.exec("web1", process.execPath, ["--input-type=module", "-e", `import { NS_PREFIX } from ${JSON.stringify(harness)}; console.log(NS_PREFIX)`])
    expect(loaded.stdout.trim()).toBe(NS_PREFIX)

    for (const outside of [machineAddress(), "1.1.1.1"]) {
      const result = await probe(hosts, "web1", outside, 80)
      expect(result.error).toBe("ENETUNREACH")
      expect(result.ms).toBeLessThan(AT_ONCE_MS)
    }
  })

  it("a cut cable parts worker1 alone, with its server still running; restored, it answers again", async () => {
    await startServer("worker2")
    const [worker1] = servers
    await hosts.cut("worker1")
    expect(await probe(hosts, "web1", hosts.host("worker1").address)).toEqual({ timeout: true })
    expect(await probe(hosts, "web1", hosts.host("worker2").address)).toEqual({ greeting: "worker2" })
    expect(processGone(worker1?.pid ?? 0)).toBe(false)
    // `ip netns exec` execs the program: the pid spawn gave is node's own, not a wrapper's
    expect(readlinkSync(`/proc/${worker1?.pid}/exe`)).toBe(realpathSync(process.execPath))
    expect(ip("netns", "pids", hosts.host("worker1").ns).split("\n")).toContain(String(worker1?.pid))

    await hosts.restore("worker1")
    await until("worker1 reachable after restore", async () =>
      (await probe(hosts, "web1", hosts.host("worker1").address)).greeting === "worker1", 3_000)
  })

  it("destroy leaves no namespace, process or root interface, and may be called again", async () => {
    expect(namespacesWith(hosts.prefix)).toHaveLength(NAMES.length + 1)
    await hosts.destroy()
    expect(namespacesWith(hosts.prefix)).toEqual([])
    for (const server of servers) expect(processGone(server.pid)).toBe(true)
    expect(rootLinkNames()).toEqual(linksBefore)
    await hosts.destroy()
    expect(() => hosts.spawn("web1", "true", [])).toThrow(/destroyed/)
  })
})

describe("a failing test leaves nothing behind", () => {
  /** a process that ignores SIGTERM, so stopping it takes the SIGKILL after the bound */
  const STUBBORN = `process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)`

  it("a throw between makeHosts and a finally that destroys", async () => {
    let prefix = ""
    let pid = 0
    const started = Date.now()
    const attempt = async () => {
      const hosts = await makeHosts(["a", "b"], { stopTimeout: 200 })
      try {
        prefix = hosts.prefix
        pid = hosts.spawn("a", process.execPath, ["-e", STUBBORN], { stdio: "ignore" }).pid ?? 0
        await until("the stubborn process started", async () => ip("netns", "pids", hosts.host("a").ns).includes(String(pid)), 2_000)
        throw new Error("the test failed here")
      } finally {
        await hosts.destroy()
      }
    }
    await expect(attempt()).rejects.toThrow("the test failed here")
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(namespacesWith(prefix)).toEqual([])
    expect(processGone(pid)).toBe(true)
  })

  /** Runs a test process of its own that makes hosts, starts a process on one, prints both and then ends by `ending`. */
  const orphaning = (ending: string): Promise<{ prefix: string; pid: number; code: number | null; signal: string | null }> => {
    const harness = pathToFileURL(fileURLToPath(new URL("./hosts.ts", import.meta.url))).href
    const script = `
      import { makeHosts } from ${JSON.stringify(harness)}
      const hosts = await makeHosts(["a"])
      const child = hosts.spawn("a", process.execPath, ["-e", ${JSON.stringify(STUBBORN)}], { stdio: "ignore" })
      console.log(JSON.stringify({ prefix: hosts.prefix, pid: child.pid }))
      ${ending}
    `
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] })
      let stdout = ""
      let stderr = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      child.on("error", reject)
      child.on("close", (code, signal) => {
        const line = stdout.split("\n").find((l) => l.startsWith("{"))
        if (line === undefined) return reject(new Error(`the orphaning process printed nothing: ${stderr}`))
        resolve({ ...(JSON.parse(line) as { prefix: string; pid: number }), code, signal })
      })
    })
  }

  it("a test process that crashes: the exit safety net removes its hosts and kills its processes", async () => {
    const run = await orphaning(`setTimeout(() => { throw new Error("crash") }, 10)`)
    expect(run.code).toBe(1)
    expect(run.prefix.startsWith(NS_PREFIX)).toBe(true)
    expect(namespacesWith(run.prefix)).toEqual([])
    await until("the crashed run's process gone", async () => processGone(run.pid), 1_000)
  })

  it("a test process killed outright: sweepLeftovers removes its hosts and what runs inside them", async () => {
    const run = await orphaning(`process.kill(process.pid, "SIGKILL")`)
    expect(run.signal).toBe("SIGKILL")
    expect(namespacesWith(run.prefix)).toHaveLength(2) // really left behind: the switch and host a
    expect(processGone(run.pid)).toBe(false)
    const swept = await sweepLeftovers()
    expect(swept).toEqual(expect.arrayContaining([run.prefix, `${run.prefix}-a`]))
    expect(namespacesWith(run.prefix)).toEqual([])
    expect(processGone(run.pid)).toBe(true)
  })
})
