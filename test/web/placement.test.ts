// Placement: a backend puts each new session on the least loaded worker; with the registry in PostgreSQL a second
// backend sees the first one's sessions and places around them too.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SagewsClient } from "../../src/client/connection.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"

let stack: WebStack

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, workers: 2, postgres: true })
})

afterAll(async () => {
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

type Status = { workers: Record<string, { local: number; shared: number }> }
const status = async (i: number): Promise<Status> => (await (await fetch(`${stack.backendUrl(i)}/api/v1/status`)).json()) as Status

describe("placement", () => {
  it("spreads sessions over the workers, least loaded first, across backends", async () => {
    const first = new SagewsClient(`${stack.backendUrl(0)}/sockjs`, { transports: ["websocket"] })
    const second = new SagewsClient(`${stack.backendUrl(1)}/sockjs`, { transports: ["websocket"] })
    try {
      for (let i = 0; i < 2; i++) await first.open("python")
      expect(Object.values((await status(0)).workers).map((w) => w.local)).toEqual([1, 1])
      // backend 2 learns backend 1's sessions from the registry (refreshed every 2 s)
      await expect.poll(async () => Object.values((await status(1)).workers).map((w) => w.shared), { timeout: 10_000 }).toEqual([1, 1])
      await second.open("python")
      await second.open("python")
      expect(Object.values((await status(1)).workers).map((w) => w.local)).toEqual([1, 1])
      await expect.poll(async () => Object.values((await status(0)).workers).map((w) => w.shared), { timeout: 10_000 }).toEqual([2, 2])
      await first.open("python")
      await expect.poll(async () => Object.values((await status(1)).workers).reduce((n, w) => n + w.shared, 0), { timeout: 10_000 }).toBe(5)
      await second.open("python")
      const local = [0, 1].map(async (i) => Object.values((await status(i)).workers).map((w) => w.local))
      const [mine, theirs] = await Promise.all(local)
      // six sessions in all, never more than one apart
      const perWorker = (mine ?? []).map((n, i) => n + (theirs?.[i] ?? 0))
      expect(perWorker.reduce((x, y) => x + y, 0)).toBe(6)
      expect(Math.max(...perWorker) - Math.min(...perWorker)).toBeLessThanOrEqual(1)
    } finally {
      first.close()
      second.close()
    }
  })
})
