// The attacks of issue 7, each tried by a hostile session A with a second session B running beside it: a session
// is one contained unit (pid namespace, cgroup, private view, seccomp) that ends as one and leaves nothing.
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { mkdtemp } from "node:fs/promises"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { listProcesses } from "../../src/worker/uids.ts"
import { startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

const RANGE = { first: 270_000, last: 270_999 }

const shown = (messages: ReadonlyArray<OutputMessage>): string => {
  const d = messages.find((m) => m.kind === "display")
  return d?.kind === "display" ? String(d.data["text/plain"]) : `(no value: ${JSON.stringify(messages).slice(0, 400)})`
}

const errorOf = (messages: ReadonlyArray<OutputMessage>): Extract<OutputMessage, { kind: "error" }> | undefined =>
  messages.find((m): m is Extract<OutputMessage, { kind: "error" }> => m.kind === "error")

const uidOf = async (s: ClientSession): Promise<number> => Number(shown(await s.execute("import os\nos.getuid()")))

const processesOfUid = async (uid: number): Promise<Array<number>> => (await listProcesses()).filter((p) => p.uid === uid && p.state !== "Z").map((p) => p.pid)

/** Median of three wall-clock timings (seconds) of a fixed CPU-bound computation in a session. */
/** how much slower another user's work may be beside the spinners: a starved one is ~15x, a fair share ~1x */
const FAIR_SHARE_BOUND = 4

const workSeconds = async (s: ClientSession): Promise<number> => {
  const out = await s.execute("import time\nts = []\nfor _ in range(3):\n    t = time.perf_counter(); sum(i * i for i in range(1_500_000)); ts.append(time.perf_counter() - t)\nsorted(ts)[1]")
  return Number(shown(out))
}

describe("a session is one contained unit", () => {
  let worker: TestWorker
  let client: WorkerClient

  beforeAll(async () => {
    worker = await startTestWorker({
      uidRange: RANGE,
      kernels: ["python"],
      pool: 2,
      limits: { exec: 60, memory: 1024 },
      disk: { home: 64, tmp: 32, inodes: 4096 },
      nproc: 64,
      killGrace: 300,
    })
    client = await worker.connect()
  })

  afterAll(async () => {
    client.close()
    await stopAndCheck(worker)
  })

  it("processes that keep forking end with their session, and nothing of its uid is left when the end is told", async () => {
    const [a, b] = await Promise.all([client.open("python", { user: "a" }), client.open("python", { user: "b" })])
    const uid = await uidOf(a)
    // A sees it running: its /proc lists its init, itself and at least one hopper (a host scan can miss one)
    const running = await a.execute(
      "import os, subprocess, sys, time\nfor _ in range(6):\n    subprocess.Popen([sys.executable, '-c', 'import os\\nwhile True:\\n    if os.fork(): os._exit(0)'], start_new_session=True)\n" +
        "deadline = time.time() + 10\nwhile len([p for p in os.listdir('/proc') if p.isdigit()]) < 3 and time.time() < deadline: time.sleep(0.05)\n" +
        "len([p for p in os.listdir('/proc') if p.isdigit()]) >= 3",
    )
    expect(shown(running)).toBe("True")
    expect((await a.close()).reason).toEqual({ _tag: "ClosedByUser" })
    // the uid goes back to the pool only after this: no process of it may still run (scanned a few times over,
    // since one scan of /proc can miss a process that forks and exits as it goes)
    for (let scan = 0; scan < 5; scan++) {
      expect(await processesOfUid(uid)).toEqual([])
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(shown(await b.execute("6 * 7"))).toBe("42")
    await b.close()
  })

  it("six children of 900 MiB in a 1 GiB session end it with OutOfMemory; the neighbour lives on", async () => {
    const [a, b] = await Promise.all([client.open("python", { user: "a" }), client.open("python", { user: "b" })])
    const out = a
      .execute("import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n        b = b'x' * (900 << 20)\n        time.sleep(60)\n        os._exit(0)\ntime.sleep(60)")
      .catch(() => [])
    const ended = await a.ended
    await out
    expect(ended.reason).toEqual({ _tag: "OutOfMemory" })
    expect(ended.message).toContain("memory limit (1024 MiB)")
    expect(shown(await b.execute("6 * 7"))).toBe("42")
    await b.close()
  })

  it("shared memory, /tmp, /var/tmp, /dev/shm and every other world-writable directory are private and go with the session", async () => {
    const [a, b] = await Promise.all([client.open("python", { user: "a" }), client.open("python", { user: "b" })])
    // names of this run alone, so that nothing an earlier run (or another program) left can stand in for A's
    const probe = `sagews-probe-${process.pid}-${Date.now()}`
    const key = 0x5a000000 + (process.pid % 0xffffff)
    // A finds every directory it may write in, outside its home, and leaves a world-readable file in each.
    const found = await a.execute(
      "import os, subprocess, ctypes\n" +
        "dirs = subprocess.run(['find', '/', '(', '-path', '/proc', '-o', '-path', '/sys', '-o', '-path', '/home', ')', '-prune', '-o', '-type', 'd', '-writable', '-print'], capture_output=True, text=True).stdout.split()\n" +
        `for d in dirs:\n    fd = os.open(os.path.join(d, '${probe}'), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644); os.write(fd, b'from a'); os.close(fd)\n` +
        `libc = ctypes.CDLL(None, use_errno=True)\nshm = libc.shmget(${key}, 16 << 20, 0o1666)\n` +
        "libc.shmat.restype = ctypes.c_void_p\nctypes.memset(libc.shmat(shm, None, 0), 1, 16 << 20)\n" +
        "(shm >= 0, sorted(dirs))",
    )
    const listing = shown(found)
    // (IPython's pretty printer may wrap the value over lines, as Jupyter shows it)
    expect(listing).toMatch(/^\(True,\s+\[/)
    for (const dir of ["/tmp", "/var/tmp", "/dev/shm", "/run/lock"]) expect(listing).toContain(`'${dir}'`)
    // and /run holds none of the host daemons' sockets or pid files
    expect(shown(await b.execute("import os\nos.listdir('/run')"))).toBe("['lock']")
    const dirs = [...listing.matchAll(/'([^']+)'/g)].map((m) => m[1] ?? "")
    const look = (s: ClientSession): Promise<string> =>
      s.execute(
        "import os, ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" +
          `seen = [d for d in ${JSON.stringify(dirs)} if os.path.exists(os.path.join(d, '${probe}'))]\n` +
          `(seen, libc.shmget(${key}, 0, 0))`,
      ).then(shown)
    expect(await look(b)).toBe("([], -1)")
    for (const dir of dirs) expect(existsSync(join(dir, probe)), `${dir} on the host`).toBe(false)
    expect(execFileSync("ipcs", ["-m"], { encoding: "utf8" })).not.toContain(`0x${key.toString(16)}`)
    await a.close()
    const c = await client.open("python", { user: "a" })
    expect(await look(c)).toBe("([], -1)")
    await Promise.all([b.close(), c.close()])
  })

  it("thirty setsid spinners of one user leave another user's work within 4x of an idle machine, not starved", async () => {
    const [a, b] = await Promise.all([client.open("python", { user: "spinner" }), client.open("python", { user: "worker" })])
    const idle = await workSeconds(b)
    await a.execute("import subprocess\nfor _ in range(30):\n    subprocess.Popen(['sh', '-c', 'while :; do :; done'], start_new_session=True)")
    await new Promise((resolve) => setTimeout(resolve, 500))
    const busy = await workSeconds(b)
    await a.close()
    // Starved (the kernel sharing CPU per process, not per session), B would get 2/31 of the cores: ~15x slower. Fair,
    // it keeps a core: ~1x, but the rest of a CI run shares the machine between the two measures (2.07 seen once).
    expect(busy / idle, `idle ${idle.toFixed(3)} s, beside the spinners ${busy.toFixed(3)} s`).toBeLessThan(FAIR_SHARE_BOUND)
    await b.close()
  })

  it("4 GiB written into a home stops at its cap with an error that names it", async () => {
    const [a, b] = await Promise.all([client.open("python", { user: "a" }), client.open("python", { user: "b" })])
    const out = await a.execute("with open('big', 'wb') as f:\n    for i in range(4 * 1024):\n        f.write(b'\\0' * (1 << 20))\n        f.flush()")
    expect(errorOf(out)).toMatchObject({ ename: "OSError", evalue: expect.stringContaining("private disk is full: its home holds 64 MiB") })
    const many = await a.execute("import os\nos.makedirs('d', exist_ok=True)\nfor i in range(100_000):\n    open(f'd/{i}', 'w').close()")
    expect(errorOf(many)?.evalue).toContain("private disk is full")
    expect(shown(await b.execute("open('small', 'w').write('fine')"))).toBe("4")
    await Promise.all([a.close(), b.close()])
  })

  it("B cannot reach A's abstract unix socket", async () => {
    const [a, b] = await Promise.all([client.open("python", { user: "a" }), client.open("python", { user: "b" })])
    const listen = await a.execute("import socket\nserver = socket.socket(socket.AF_UNIX)\nserver.bind('\\0sagews-attack')\nserver.listen()\nc = socket.socket(socket.AF_UNIX); c.connect('\\0sagews-attack'); 'listening'")
    expect(shown(listen)).toBe("'listening'")
    const reach = await b.execute("import socket\nsocket.socket(socket.AF_UNIX).connect('\\0sagews-attack')")
    expect(errorOf(reach)?.ename).toBe("ConnectionRefusedError")
    await Promise.all([a.close(), b.close()])
  })

  it("/proc shows only the session's own processes", async () => {
    const [a, b] = await Promise.all([client.open("python", { user: "a" }), client.open("python", { user: "b" })])
    const seen = await a.execute("import os\nsorted(int(p) for p in os.listdir('/proc') if p.isdigit())")
    expect(shown(seen)).toBe("[1, 2]")
    expect(shown(await b.execute(`import os\nos.path.exists('/proc/${a.pid}'), os.path.exists('/proc/${worker.proc.pid}')`))).toBe("(False, False)")
    await Promise.all([a.close(), b.close()])
  })

  it("root removing a home follows no symlink the session planted while it was ending", async () => {
    const decoy = await mkdtemp("/var/lib/sagews-decoy-")
    for (let i = 0; i < 50; i++) writeFileSync(join(decoy, `keep-${i}`), "root's")
    mkdirSync(join(decoy, "sub"))
    try {
      const a = await client.open("python", { user: "a" })
      // Processes that swap each of 100 directories of the home for a symlink to the decoy and back, over and over,
      // as the session ends: a remover that lstat()s a directory and then lists it may be listing the decoy.
      // They also fork and exit as they go, so that no scan of /proc catches them before the home is removed.
      const swapper = [
        "import os",
        "for i in range(100): os.makedirs(f'd{i}/x', exist_ok=True)",
        "while True:",
        "    if os.fork(): os._exit(0)",
        "    for i in range(100):",
        "        try:",
        `            os.rename(f'd{i}', f'o{i}'); os.symlink(${JSON.stringify(decoy)}, f'd{i}'); os.unlink(f'd{i}'); os.rename(f'o{i}', f'd{i}')`,
        "        except OSError: pass",
      ].join("\n")
      await a.execute(`import subprocess, sys, time\nfor _ in range(3):\n    subprocess.Popen([sys.executable, '-c', ${JSON.stringify(swapper)}], start_new_session=True)\ntime.sleep(0.5)`)
      await a.close()
      expect(readdirSync(decoy).sort()).toEqual([...Array.from({ length: 50 }, (_, i) => `keep-${i}`), "sub"].sort())
    } finally {
      rmSync(decoy, { recursive: true, force: true })
    }
  })

  it("no new namespaces, mounts, keyrings, BPF, perf or ptrace: no_new_privs and a seccomp filter", async () => {
    const a = await client.open("python", { user: "a" })
    const status = await a.execute("import re\ns = open('/proc/self/status').read()\n(re.search(r'NoNewPrivs:\\s+(\\d)', s).group(1), re.search(r'Seccomp:\\s+(\\d)', s).group(1))")
    expect(shown(status)).toBe("('1', '2')")
    const refused = await a.execute(
      "import ctypes, os, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n" +
        "def err(r): return errno.errorcode.get(ctypes.get_errno(), '?') if r == -1 else 'allowed'\n" +
        "[err(libc.unshare(0x10000000)), err(libc.unshare(0x20000000)), err(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),\n" +
        " err(libc.syscall(250, 0, 0, 0, 0)), err(libc.syscall(321, 0, 0, 0)), err(libc.syscall(298, 0, 0, 0, 0, 0)), err(libc.ptrace(16, 1, 0, 0))]",
    )
    expect(shown(refused)).toBe("['EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM']")
    const shell = await a.execute("import subprocess\nr = subprocess.run(['unshare', '-Ur', 'id'], capture_output=True, text=True)\n(r.returncode != 0, 'Operation not permitted' in r.stderr)")
    expect(shown(shell)).toBe("(True, True)")
    await a.close()
  })

  it("a terminal is contained the same way", async () => {
    const [t, b] = await Promise.all([client.open("terminal", { user: "a" }), client.open("python", { user: "b" })])
    let screen = ""
    t.onOutput((f) => {
      if (f.msg.kind === "terminal") screen += f.msg.data
    })
    t.terminalInput("echo from-a > /tmp/t; echo pids $(ls /proc | grep -E '^[0-9]+$' | wc -l); grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -s ' \\t' ' '; unshare -Ur id || echo refused-$?\n")
    const deadline = Date.now() + 10_000
    while (!/refused-\d/.test(screen) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(screen).toMatch(/NoNewPrivs: 1/)
    expect(screen).toMatch(/Seccomp: 2/)
    expect(screen).toMatch(/Operation not permitted[\s\S]*refused-1/)
    // bash, init, and the pipeline's few processes: a handful, never the host's hundreds
    expect(Number(/pids (\d+)/.exec(screen)?.[1])).toBeLessThan(10)
    expect(text(await b.execute("import os\nprint(os.path.exists('/tmp/t'))"))).toBe("False\n")
    expect(existsSync("/tmp/t") && readdirSync("/tmp").includes("t")).toBe(false)
    await Promise.all([t.close(), b.close()])
  })
})
