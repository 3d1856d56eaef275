// Losing the worker under a backend: its sessions end with WorkerStopped (named to the client, nothing hangs),
// a stateless run asked for meanwhile waits for the worker, the backend reconnects by itself and serves the restarted worker.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import type { EndedEvent } from "../../src/client/types.ts"
import { postJson, processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack

beforeAll(async () => {
  stack = await startWebStack({ backends: 1 })
})

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

describe("worker loss", () => {
  it("a SIGKILLed and restarted worker: the session is reported ended, new work runs on the new worker", async () => {
    const client = new SagewsClient(`${stack.backendUrl()}/sockjs`, { transports: ["websocket"] })
    try {
      const session = await client.open("python")
      expect((await session.execute("print(1)")).status).toBe("ok")
      const ended = new Promise<EndedEvent>((resolve) => session.onEnded(resolve))
      const running = session.execute("import time\ntime.sleep(30)")
      await new Promise((r) => setTimeout(r, 300))
      await stack.workers[0]?.stop("SIGKILL")
      // a stateless run asked for while no worker is up waits for one (within its deadline) rather than failing
      const waiting = postJson(`${stack.backendUrl()}/api/v1/execute`, { kernel: "python", code: "print(3)" })
      await stack.startWorker()
      expect((await ended).reason._tag).toBe("WorkerStopped")
      expect((await ended).message).toMatch(/worker/)
      expect((await running).status).toBe("ended")
      const reply = await waiting
      expect(reply.status).toBe(200)
      expect(reply.json).toMatchObject({ status: "ok", outputs: [{ kind: "stdout", text: "3\n" }, { kind: "done" }] })
      const fresh = await client.open("python")
      expect((await fresh.execute("print(4)")).outputs[0]).toEqual({ kind: "stdout", text: "4\n" })
      fresh.close()
    } finally {
      client.close()
    }
  })
})
