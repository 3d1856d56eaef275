// Every interface Sage has on this machine (GAP, PARI/gp, Maxima, Singular, R, ECL as lisp, Giac) inside a session:
// it computes, writes its state in the session's own home, runs under the session's uid, is interrupted with the cell,
// ends with the session, and two sessions' interfaces never share state.
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { listProcesses } from "../../src/worker/uids.ts"
import { settle, startTestWorker, status, stopAndCheck, type TestWorker, text, value } from "./harness.ts"


interface Interface {
  readonly name: string
  /** the program Debian's sagemath runs for it (R is embedded, through rpy2) */
  readonly program: string
  readonly compute: string
  readonly expected: string
  /** runs until interrupted */
  readonly spin: string
  /** sets a variable the other session must not see */
  readonly set: string
  /** prints whether that variable is set, as [set, unset] */
  readonly probe: string
  readonly answers: readonly [string, string]
}

const INTERFACES: ReadonlyArray<Interface> = [
  { name: "gap", program: "gap", compute: "gap('Size(SymmetricGroup(5))')", expected: "120", spin: "gap.eval('while true do od;')", set: "gap.eval('shared_probe := 17;')", probe: "print(gap.eval('IsBoundGlobal(\"shared_probe\");'))", answers: ["true", "false"] },
  { name: "gp", program: "gp", compute: "gp('factor(91)')", expected: "[7, 1; 13, 1]", spin: "gp.eval('while(1, )')", set: "gp.eval('shared_probe = 17')", probe: "print(gp.eval('type(shared_probe)'))", answers: ['"t_INT"', '"t_POL"'] },
  { name: "maxima", program: "maxima-sage", compute: "maxima('integrate(x^2, x)')", expected: "x^3/3", spin: "maxima.eval('while true do 1')", set: "maxima.eval('shared_probe: 17')", probe: "print(maxima.eval('integerp(shared_probe)'))", answers: ["true", "false"] },
  { name: "singular", program: "Singular", compute: "singular('2^10')", expected: "1024", spin: "singular.eval('while (1) {}')", set: "singular.eval('int shared_probe = 17;')", probe: "print(singular.eval('defined(shared_probe);'))", answers: ["1", "0"] },
  { name: "r", program: "R", compute: "r('sum(1:10)')", expected: "[1] 55", spin: "r.eval('while (TRUE) {}')", set: "r.eval('shared_probe <- 17')", probe: "print(r.eval('exists(\"shared_probe\")'))", answers: ["[1] TRUE", "[1] FALSE"] },
  { name: "lisp", program: "ecl", compute: "lisp('(+ 1 2)')", expected: "3", spin: "lisp.eval('(loop)')", set: "lisp.eval('(defvar *shared-probe* 17)')", probe: "print(lisp.eval('(boundp (quote *shared-probe*))'))", answers: ["T", "NIL"] },
  { name: "giac", program: "giac", compute: "giac('factor(x^2-1)')", expected: "(x-1)*(x+1)", spin: "giac.eval('while(true){}')", set: "giac.eval('shared_probe:=17')", probe: "print(giac.eval('type(shared_probe)'))", answers: ["integer", "identifier"] },
]

/** Where a session sees the GAP workspace its forkserver built (container.py SHARED, kernel.py). */
const SHARED_GAP = "/run/shared/gap"
/** The command line of the session's GAP: what it was started with. */
const GAP_COMMAND = "print(open('/proc/%d/cmdline' % gap._expect.pid).read().replace(chr(0), ' '))"

const installed = (program: string): boolean => spawnSync("sh", ["-c", `command -v ${program}`]).status === 0
const RANGE = { first: 255_000, last: 255_999 }

describe("Sage's interfaces in sessions", () => {
  let worker: TestWorker
  let client: WorkerClient
  let a: ClientSession
  let b: ClientSession
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: RANGE, kernels: ["sage"], pool: 2 })
    // built once in the background after the forkserver is ready; a GAP started before it builds its own, as Sage does
    await worker.waitForLog(/GAP workspace ready/, 60_000)
    client = await worker.connect()
    a = await client.open("sage")
    b = await client.open("sage")
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    client?.close()
    await stopAndCheck(worker)
  })

  it("has every interface this machine's Sage provides", () => {
    // octave is not among Debian's sagemath dependencies; each of these is
    expect(INTERFACES.filter((i) => !installed(i.program)).map((i) => i.name)).toEqual([])
  })

  for (const i of INTERFACES) {
    it(`${i.name}: computes, is interrupted with the cell and computes again`, async () => {
      expect(value(await a.execute(i.compute))).toBe(i.expected)
      const running = a.execute(i.spin)
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      a.interrupt()
      const out = await running
      expect(status(out)).toBe("interrupted")
      expect(value(await a.execute(i.compute))).toBe(i.expected)
    })

    it(`${i.name}: state is the session's own`, async () => {
      await a.execute(i.set)
      expect(text(await a.execute(i.probe)).trim()).toBe(i.answers[0])
      expect(text(await b.execute(i.probe)).trim()).toBe(i.answers[1])
    })
  }

  describe("GAP's workspace, built once by the forkserver", () => {
    /** the workspace on the host (the test runs as root), with its hash: the same before and after what sessions try */
    const shared = (): { path: string; sha: string; mtimeMs: number } => {
      const dir = join(worker.dataDir, "shared", "gap")
      const name = readdirSync(dir).find((n) => n.startsWith("gap-workspace-"))
      if (name === undefined) throw new Error(`no workspace in ${dir}`)
      const path = join(dir, name)
      return { path, sha: createHash("sha256").update(readFileSync(path)).digest("hex"), mtimeMs: statSync(path).mtimeMs }
    }

    it("is where every session's GAP starts from, and is root's and read-only", async () => {
      const host = shared()
      expect(statSync(host.path).uid).toBe(0)
      expect(statSync(host.path).mode & 0o7777).toBe(0o644)
      expect(statSync(join(worker.dataDir, "shared", "gap")).mode & 0o7777).toBe(0o755)
      const seen = `${SHARED_GAP}/${host.path.split("/").at(-1)}`
      for (const s of [a, b]) {
        expect(value(await s.execute("gap('Size(SymmetricGroup(5))')"))).toBe("120")
        expect(text(await s.execute(GAP_COMMAND))).toContain(` -L ${seen} `)
        // the session built no workspace of its own in its home
        expect(value(await s.execute("import glob, os\nglob.glob(os.path.expanduser('~/.sage/gap/*workspace*'))"))).toBe("[]")
      }
      expect(value(await a.execute(`s = os.stat('${seen}')\n(s.st_uid, oct(s.st_mode & 0o7777), os.access('${seen}', os.W_OK))`))).toBe("(0, '0o644', False)")
    })

    it("cannot be changed, replaced or removed by a session; the next session's GAP still starts from it", async () => {
      const before = shared()
      const seen = `${SHARED_GAP}/${before.path.split("/").at(-1)}`
      const attempts = [
        `open('${seen}', 'r+b').write(b'x')`,
        `open('${seen}', 'ab').write(b'x')`,
        `os.utime('${seen}')`,
        `os.chmod('${seen}', 0o666)`,
        `os.unlink('${seen}')`,
        `os.rename('${seen}', '${seen}.old')`,
        `open(os.path.expanduser('~/w'), 'wb').write(b'not a workspace'); os.replace(os.path.expanduser('~/w'), '${seen}')`,
        `open('${SHARED_GAP}/mine', 'wb')`,
        `os.symlink('/etc/passwd', '${SHARED_GAP}/mine')`,
        `os.rmdir('${SHARED_GAP}')`,
        `os.rename('${SHARED_GAP}', os.path.expanduser('~/gap'))`,
        // the mount point, in the session's /run (root's), beside /run/lock (the session's to write)
        "os.rmdir('/run/shared')",
        "os.rename('/run/shared', '/run/lock/shared')",
        "os.mkdir('/run/lock/mine'); os.rename('/run/lock/mine', '/run/shared')",
      ]
      const code = `import errno\nfor attempt in ${JSON.stringify(attempts)}:\n    try:\n        exec(attempt)\n        print('CHANGED', attempt)\n    except OSError as e:\n        print(errno.errorcode[e.errno])`
      const out = text(await a.execute(code)).trim().split("\n")
      expect(out).toHaveLength(attempts.length)
      // EXDEV: a file of the session's home cannot be renamed over it either
      for (const line of out) expect(["EROFS", "EACCES", "EPERM", "EBUSY", "EXDEV"]).toContain(line)
      const after = shared()
      expect(after.sha).toBe(before.sha)
      expect(after.mtimeMs).toBe(before.mtimeMs)
      const c = await client.open("sage")
      try {
        expect(value(await c.execute("gap('Size(SymmetricGroup(5))')"))).toBe("120")
        expect(text(await c.execute(GAP_COMMAND))).toContain(` -L ${seen} `)
      } finally {
        await c.close()
      }
    })

    it("a session that saves its own workspace writes it in its home and starts from it; no other session does", async () => {
      const before = shared()
      const seen = `${SHARED_GAP}/${before.path.split("/").at(-1)}`
      await a.execute("gap.eval('saved_probe := 17;')\ngap.save_workspace()\ngap.quit()")
      expect(text(await a.execute("print(gap.eval('IsBoundGlobal(\"saved_probe\");'))")).trim()).toBe("true")
      expect(text(await a.execute(GAP_COMMAND))).toContain(" -L /home/sagews/.sage/gap/gap-workspace-")
      await b.execute("gap.quit()")
      expect(text(await b.execute("print(gap.eval('IsBoundGlobal(\"saved_probe\");'))")).trim()).toBe("false")
      expect(text(await b.execute(GAP_COMMAND))).toContain(` -L ${seen} `)
      expect(shared().sha).toBe(before.sha)
    })
  })

  it("writes the interfaces' files in the session's home, runs them as its uid, and ends them with it", async () => {
    const files = value(await a.execute("import os\nsorted(os.listdir(os.path.expanduser('~/.sage')))"))
    expect(files).toContain("gp-expect.log")
    expect(value(await b.execute("os.path.exists(os.path.expanduser('~/.sage/gp-expect.log'))"))).toBe("True")
    const uid = Number(value(await a.execute("os.getuid()")))
    const mine = (await listProcesses()).filter((p) => p.uid === uid)
    // the kernel, and the gap, gp, maxima, Singular and R it started
    expect(mine.length).toBeGreaterThanOrEqual(1 + INTERFACES.length)
    await a.close()
    await settle({ dataDir: worker.dataDir, uidRange: { first: uid, last: uid } }, 10_000, ["uidProcesses"])
    expect((await listProcesses()).filter((p) => p.uid === uid)).toEqual([])
    // the other session's interfaces go on
    expect(value(await b.execute("gp('2+2')"))).toBe("4")
  })
})
