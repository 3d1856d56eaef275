// Sage sessions on a real worker (Debian's sagemath): preparsing, exact arithmetic, LaTeX, plots, interacts.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

const displayed = (messages: ReadonlyArray<OutputMessage>): Record<string, string> =>
  messages.find((m): m is Extract<OutputMessage, { kind: "display" }> => m.kind === "display")?.data ?? {}

const isPng = (data: Record<string, string>): boolean => Buffer.from(data["image/png"] ?? "", "base64").subarray(1, 4).toString() === "PNG"

describe("sage sessions", () => {
  let worker: TestWorker
  let client: WorkerClient
  let s: ClientSession
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 250_000, last: 250_999 }, kernels: ["sage"], pool: 1 })
    client = await worker.connect()
    s = await client.open("sage")
  })
  afterAll(async () => {
    await s.close()
    client.close()
    await stopAndCheck(worker)
  })

  it("factors and computes exactly, with Sage's preparser", async () => {
    expect(displayed(await s.execute("factor(x^2-1)"))["text/plain"]).toBe("(x + 1)*(x - 1)")
    expect(displayed(await s.execute("2/3+1/3"))["text/plain"]).toBe("1")
    expect(displayed(await s.execute("f(x) = x^3\nf.diff(x)(2)"))["text/plain"]).toBe("12")
  })

  it("shows values as the Sage shell prints them, and typesets what show() is given", async () => {
    // latex() is a string of LaTeX, printed as text, as in the Sage shell
    expect(displayed(await s.execute("latex(x^2)"))).toEqual({ "text/plain": "x^{2}" })
    const shown = await s.execute("show(integrate(sin(x)^2, x))")
    expect(shown.filter((m) => m.kind === "display")).toHaveLength(1)
    expect(displayed(shown)["text/latex"]).toContain("\\sin")
  })

  it("renders Sage plots and Matplotlib figures as image/png", async () => {
    expect(isPng(displayed(await s.execute("plot(sin(x), (x, 0, pi))")))).toBe(true)
    expect(isPng(displayed(await s.execute("plot(cos(x)).show()")))).toBe(true)
    expect(isPng(displayed(await s.execute("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")))).toBe(true)
  })

  it("runs interacts", async () => {
    const out = await s.execute("@interact\ndef g(n=slider(1, 5, 1, default=2)):\n    print(factorial(n))")
    expect(out.find((m) => m.kind === "interact")).toMatchObject({ controls: [{ name: "n", control: "slider", default: 2 }] })
    expect(text(out)).toBe("2\n")
    const iid = out.find((m) => m.kind === "interact")
    expect(text(await s.interactChange(iid?.kind === "interact" ? iid.interact : "", "n", 5))).toBe("120\n")
  })

  it("interrupts a computation inside C code (cysignals) and keeps the session", async () => {
    await s.execute("kept = 41")
    const running = s.execute("factorial(10^9)")
    await new Promise((resolve) => setTimeout(resolve, 500))
    s.interrupt()
    expect((await running).at(-1)).toEqual({ kind: "done", status: "interrupted" })
    expect(displayed(await s.execute("kept + 1"))["text/plain"]).toBe("42")
  })

  it("runs as the session's uid in its own home, with no network", async () => {
    const net = await s.execute("import socket\nsocket.create_connection(('127.0.0.1', int(5432)), timeout=1)")
    expect(net.find((m) => m.kind === "error")).toMatchObject({ evalue: expect.stringContaining("Network is unreachable") })
    const out = await s.execute("import os\n(os.getuid() >= 250000, os.getcwd() == os.environ['HOME'] == '/home/sagews')")
    expect(displayed(out)["text/plain"]).toBe("(True, True)")
  })
})
