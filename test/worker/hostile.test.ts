// The hostile battery: each cell is contained with a named reason (a session end or an error that names the
// limit), while the worker and a canary session keep working; nothing is left behind afterwards.
import { createServer, type Server } from "node:net"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

const errorOf = (messages: ReadonlyArray<OutputMessage>): Extract<OutputMessage, { kind: "error" }> | undefined =>
  messages.find((m): m is Extract<OutputMessage, { kind: "error" }> => m.kind === "error")

describe("hostile cells", () => {
  let worker: TestWorker
  let client: WorkerClient
  let canary: ClientSession
  let service: Server
  let serviceConnections = 0
  let servicePort = 0

  beforeAll(async () => {
    worker = await startTestWorker({
      uidRange: { first: 230_000, last: 230_999 },
      kernels: ["python"],
      pool: 1,
      limits: { exec: 4, memory: 1024 },
      fsize: 64 * 1024 * 1024,
      nproc: 32,
      killGrace: 300,
    })
    client = await worker.connect()
    canary = await client.open("python")
    await canary.execute("canary = 'alive'")
    // A PostgreSQL/memcached-like service on the host's loopback.
    service = createServer((socket) => {
      serviceConnections++
      socket.end("hello\n")
    })
    await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve))
    const address = service.address()
    servicePort = typeof address === "object" && address !== null ? address.port : 0
  })

  afterAll(async () => {
    expect(await canary.execute("canary")).toContainEqual({ kind: "display", data: { "text/plain": "'alive'" } })
    expect(await client.ping()).toBeGreaterThanOrEqual(0) // it answers (ping rejects when the worker is gone)
    client.close()
    service.close()
    await stopAndCheck(worker)
  })

  it("cannot see another session's home: each has its own, on a filesystem of its own", async () => {
    const [a, b] = await Promise.all([client.open("python"), client.open("python")])
    const home = await a.execute("import os\nopen('diary.txt', 'w').write('secret')\nos.getcwd()")
    expect(home).toContainEqual({ kind: "display", data: { "text/plain": "'/home/sagews'" } })
    const look = await b.execute("import os\n(os.getcwd(), os.listdir('/home'), os.listdir('.'))")
    // only what every session's home starts with (IPython's directory, made as the forkserver's was), no diary
    expect(look).toContainEqual({ kind: "display", data: { "text/plain": "('/home/sagews', ['sagews'], ['.ipython'])" } })
    // nor through /proc: A's processes do not exist in B's pid namespace
    const proc = await b.execute("sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:2]")
    expect(proc).toContainEqual({ kind: "display", data: { "text/plain": "[1, 2]" } })
    await Promise.all([a.close(), b.close()])
  })

  it("kill -9 -1 kills only the session itself: Killed(SIGKILL)", async () => {
    const s = await client.open("python")
    // From a shell, as a user would type it: it kills every process of the session's uid but the shell.
    await s.execute("import os\nos.system('kill -9 -1')").catch(() => undefined)
    expect((await s.ended).reason).toEqual({ _tag: "Killed", signal: "SIGKILL" })
  })

  it("cannot signal the worker or its forkserver", async () => {
    const s = await client.open("python")
    const worker_ = await s.execute(`import os, signal\nos.kill(${worker.proc.pid}, signal.SIGKILL)`)
    // The kernel lives in its own pid namespace: the worker's pid is not even visible from there.
    expect(["PermissionError", "ProcessLookupError"]).toContain(errorOf(worker_)?.ename)
    // Its parent is its container's init (root, pid 1), the only other process it can see.
    const init = await s.execute("os.kill(os.getppid(), signal.SIGKILL)")
    expect(errorOf(init)?.ename).toBe("PermissionError")
    expect(await s.execute("1")).toContainEqual({ kind: "display", data: { "text/plain": "1" } })
    await s.close()
  })

  it("a fork bomb is capped by the process limit and ended by the exec limit", async () => {
    const s = await client.open("python")
    const out = s.execute("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass").catch(() => [])
    const ended = await s.ended
    await out
    expect(ended.reason).toEqual({ _tag: "Timeout", limit: "exec" })
    expect(ended.message).toContain("exec time limit (4 s)")
  })

  it("a 4 GiB allocation fails with MemoryError naming the limit; the session lives on", async () => {
    const s = await client.open("python")
    const out = await s.execute("b = bytearray(4 * 1024**3)")
    expect(errorOf(out)).toMatchObject({ ename: "MemoryError", evalue: expect.stringContaining("OutOfMemory") })
    expect(await s.execute("1 + 1")).toContainEqual({ kind: "display", data: { "text/plain": "2" } })
    await s.close()
  })

  it("an infinite loop ends with Timeout(exec)", async () => {
    const s = await client.open("python")
    const out = s.execute("while True:\n    pass").catch(() => [])
    expect((await s.ended).reason).toEqual({ _tag: "Timeout", limit: "exec" })
    await out
  })

  it("a CPU hog past its CPU seconds ends with CpuLimit", async () => {
    const s = await client.open("python", { limits: { cpu: 1 } })
    const out = s.execute("while True:\n    pass").catch(() => [])
    expect((await s.ended).reason).toEqual({ _tag: "CpuLimit" })
    await out
  })

  it("writing a 10 GiB file stops at the file size limit", async () => {
    const s = await client.open("python")
    const out = await s.execute("with open('big', 'wb') as f:\n    for i in range(10 * 1024):\n        f.write(b'\\0' * (1 << 20))")
    expect(errorOf(out)).toMatchObject({ ename: "OSError", evalue: expect.stringContaining("file size limit") })
    await s.close()
  })

  it("cannot reach services on the host's 127.0.0.1", async () => {
    const s = await client.open("python")
    const out = await s.execute(`import socket\nsocket.create_connection(("127.0.0.1", ${servicePort}), timeout=2)`)
    expect(errorOf(out)?.evalue).toMatch(/Network is unreachable/)
    const worker_ = await s.execute(`socket.create_connection(("127.0.0.1", ${worker.port}), timeout=2)`)
    expect(errorOf(worker_)?.evalue).toMatch(/Network is unreachable/)
    expect(serviceConnections).toBe(0)
    await s.close()
  })

  it("cannot read the worker's secret from the environment, the key file or /proc", async () => {
    const s = await client.open("python")
    const env = await s.execute("import os\nsorted(k for k in os.environ if 'SECRET' in k or 'SAGEWS' in k)")
    expect(env).toContainEqual({ kind: "display", data: { "text/plain": "[]" } })
    // The whole data directory is hidden behind an empty filesystem in the session's view.
    const key = await s.execute(`open(${JSON.stringify(join(worker.dataDir, "secret", "worker.key"))}).read()`)
    expect(errorOf(key)?.ename).toBe("FileNotFoundError")
    // (a data dir under /tmp is not there at all: the session's /tmp is its own)
    const listing = await s.execute(`os.listdir(${JSON.stringify(worker.dataDir)}) if os.path.exists(${JSON.stringify(worker.dataDir)}) else []`)
    expect(listing).toContainEqual({ kind: "display", data: { "text/plain": "[]" } })
    const environ = await s.execute(`open('/proc/${worker.proc.pid}/environ', 'rb').read()`)
    expect(errorOf(environ)?.ename).toBe("FileNotFoundError")
    const parent = await s.execute("open(f'/proc/{os.getppid()}/environ', 'rb').read()")
    expect(errorOf(parent)?.ename).toBe("PermissionError")
    expect(text(await s.execute("print(os.environ.get('HOME'))"))).toContain("/home/sagews")
    await s.close()
  })

  it("a flood of output arrives whole and in order; an oversized display is refused by name", async () => {
    const s = await client.open("python")
    const flood = await s.execute("for i in range(200000):\n    print(i)")
    const lines = text(flood).split("\n")
    expect(lines.length).toBe(200_001)
    expect(lines[199_999]).toBe("199999")
    const big = await s.execute("class Big:\n    def _repr_html_(self): return 'x' * (9 * 1024 * 1024)\nBig()")
    expect(errorOf(big)).toMatchObject({ ename: "OutputTooLarge" })
    await s.close()
  })

  it("junk written straight to the kernel's own socket only ends that session", async () => {
    const s = await client.open("python")
    const out = s
      .execute("import os, stat\nfor fd in range(3, 64):\n    try:\n        if stat.S_ISSOCK(os.fstat(fd).st_mode): os.write(fd, b'x' * (20 << 20))\n    except OSError: pass")
      .catch(() => [])
    // Normally the line limit (16 MiB) closes the kernel's socket first (Crash); on a slow machine the exec limit may win.
    expect(["Crash", "Timeout"]).toContain((await s.ended).reason._tag)
    expect(await client.ping()).toBeGreaterThanOrEqual(0) // it answers (ping rejects when the worker is gone)
    await out
  })
})
