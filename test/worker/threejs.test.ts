// A Sage 3-D plot in a session is one display of its scene as data (application/vnd.sagews.threejs+json, what
// Sage's three.js page holds, read by src/worker/sagedisplay.py) beside Sage's plain text: no page with inline scripts.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { displays, startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

const THREEJS = "application/vnd.sagews.threejs+json"
type Display = Extract<OutputMessage, { kind: "display" }>

interface Scene {
  options: { frame: boolean; projection: string }
  bounds: Array<{ x: number; y: number; z: number }>
  lights: Array<unknown>
  ambient: { color: string }
  texts: Array<{ text: string }>
  points: Array<{ point: Array<number> }>
  lines: Array<{ points: Array<Array<number>> }>
  surfaces: Array<{ vertices: Array<{ x: number; y: number; z: number }>; faces: Array<Array<number>> }>
}

/** The one display a cell made, its scene parsed (JSON.parse throws on anything that is not strict JSON: NaN too). */
const sceneOf = (messages: ReadonlyArray<OutputMessage>): { data: Display["data"]; scene: Scene } => {
  const all = displays(messages)
  expect(all).toHaveLength(1)
  const data = all[0] ?? {}
  expect(Object.keys(data).sort()).toEqual([THREEJS, "text/plain"])
  return { data, scene: JSON.parse(data[THREEJS] ?? "") as Scene }
}

describe("a Sage 3-D plot", () => {
  let worker: TestWorker
  let client: WorkerClient
  let s: ClientSession
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 256_000, last: 256_999 }, kernels: ["sage"], pool: 1 })
    client = await worker.connect()
    s = await client.open("sage")
  })
  afterAll(async () => {
    await s?.close()
    client?.close()
    await stopAndCheck(worker)
  })

  it("is one display: its scene as JSON and Sage's plain text", async () => {
    // y is not one of Sage's predefined variables
    const messages = await s.execute("x, y = var('x y')\nplot3d(sin(x*y), (x,-2,2), (y,-2,2))")
    expect(text(messages)).toBe("")
    const { data, scene } = sceneOf(messages)
    expect(data["text/plain"]).toBe("Graphics3d Object")
    expect(scene.options).toMatchObject({ frame: true, projection: "perspective" })
    expect(scene.bounds).toHaveLength(2)
    expect(scene.bounds[0]?.x).toBe(-2)
    expect(scene.bounds[1]?.y).toBe(2)
    expect(scene.lights.length).toBeGreaterThan(0)
    expect(scene.ambient.color).toMatch(/^#[0-9a-f]{6}$/)
    expect(scene.surfaces).toHaveLength(1)
    const surface = scene.surfaces[0]
    // Sage's default plot3d grid: 40 × 40 points, quadrilaterals between them
    expect(surface?.vertices.length).toBeGreaterThan(1000)
    expect(surface?.faces.length).toBeGreaterThan(1000)
    // Sage's own points, to the 7 significant digits that WebGL's 32-bit floats hold
    expect(surface?.vertices.every((v) => Math.abs(v.z - Math.sin(v.x * v.y)) < 1e-5)).toBe(true)
  })

  it("shows every kind of object through show(), and a label stays data", async () => {
    const label = `a </script><img src=x onerror=alert(1)> "label"`
    const code = `show(sphere() + line3d([(0,0,0), (1,1,1)], thickness=3) + point3d((0,0,2)) + text3d(${JSON.stringify(label)}, (1,1,1)))`
    const { data, scene } = sceneOf(await s.execute(code))
    expect(data["text/plain"]).toBe("Graphics3d Object")
    expect(scene.surfaces).toHaveLength(1)
    expect(scene.lines).toEqual([expect.objectContaining({ points: [[0, 0, 0], [1, 1, 1]], linewidth: 3 })])
    expect(scene.points).toEqual([expect.objectContaining({ point: [0, 0, 2] })])
    expect(scene.texts).toEqual([expect.objectContaining({ text: label })])
    // data only: nothing of Sage's page (its markup and its scripts) came along
    expect(data[THREEJS]).not.toMatch(/<html|<body|THREE\./i)
  })

  it("larger than one output message may be, is an OutputTooLarge error, not a display", async () => {
    // 400 × 400 points: some 11 MB of scene, past the worker's 8 MiB for one message
    const messages = await s.execute("x, y = var('x y')\nplot3d(sin(x*y), (x,-2,2), (y,-2,2), plot_points=400)")
    expect(displays(messages)).toEqual([])
    expect(messages).toContainEqual(expect.objectContaining({ kind: "error", ename: "OutputTooLarge" }))
  }, 60_000)

  it("leaves a 2-D plot a picture", async () => {
    const all = displays(await s.execute("plot(sin(x), (x, 0, pi))"))
    expect(all).toHaveLength(1)
    expect(Object.keys(all[0] ?? {})).not.toContain(THREEJS)
    expect(all[0]?.["image/png"]).toBeDefined()
  })
})
