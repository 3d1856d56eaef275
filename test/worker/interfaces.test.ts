// Every interface Sage has on this machine (GAP, PARI/gp, Maxima, Singular, R) inside a session: it computes, writes
// its state in the session's own home, runs under the session's uid, is interrupted with the cell, ends with the
// session, and two sessions' interfaces never share state.
import { spawnSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { listProcesses } from "../../src/worker/uids.ts"
import { settle, startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

const value = (messages: ReadonlyArray<OutputMessage>): string | undefined =>
  messages.filter((m): m is Extract<OutputMessage, { kind: "display" }> => m.kind === "display").at(-1)?.data["text/plain"]
const status = (messages: ReadonlyArray<OutputMessage>): string | undefined => {
  const done = messages.at(-1)
  return done?.kind === "done" ? done.status : undefined
}

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
]

const installed = (program: string): boolean => spawnSync("sh", ["-c", `command -v ${program}`]).status === 0
const RANGE = { first: 255_000, last: 255_999 }

describe("Sage's interfaces in sessions", () => {
  let worker: TestWorker
  let client: WorkerClient
  let a: ClientSession
  let b: ClientSession
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: RANGE, kernels: ["sage"], pool: 2 })
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
