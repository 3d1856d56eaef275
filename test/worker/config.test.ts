// Worker configuration: defaults, per-worker uid ranges, capped limits, errors that name the field.
import { describe, expect, it } from "vitest"
import { capLimits, makeWorkerConfig, parseWorkerArgs, WORKER_DEFAULTS } from "../../src/worker/config.ts"

describe("worker config", () => {
  it("gives each worker id its own uid range", () => {
    const one = parseWorkerArgs(["--data", "/d", "--port", "1"])
    const three = parseWorkerArgs(["--data", "/d", "--port", "1", "--id", "worker:3"])
    expect(one.uidRange).toEqual({ first: 200_000, last: 209_999 })
    expect(three.uidRange).toEqual({ first: 220_000, last: 229_999 })
    expect(one.limits).toEqual(WORKER_DEFAULTS.limits)
  })

  it("takes overrides from --config-json and names a bad field", () => {
    const config = parseWorkerArgs(["--data", "/d", "--port", "1", "--config-json", JSON.stringify({ pool: 0, limits: { exec: 5 } })])
    expect(config.pool).toBe(0)
    expect(config.limits.exec).toBe(5)
    expect(config.limits.wall).toBe(WORKER_DEFAULTS.limits.wall)
    expect(() => makeWorkerConfig({ id: "w", dataDir: "/d", port: 1, pool: -1 })).toThrow(/pool: .*got -1/)
    expect(() => parseWorkerArgs(["--data", "/d"])).toThrow(/--port N is required/)
  })

  it("caps a backend's limits by the worker's", () => {
    const worker = { wall: 100, idle: 10, exec: 5, memory: 512, cpu: 60 }
    expect(capLimits(worker, { exec: 2, memory: 4096 })).toEqual({ ...worker, exec: 2 })
    expect(capLimits(worker, undefined)).toEqual(worker)
  })
})
