// Benchmarks of the tree: time to a ready tree (fresh and existing data dir) and restart time per component.
import { join } from "node:path"
import { callControl } from "../src/cli/control.ts"
import type { ComponentRow } from "../src/cli/status.ts"
import { makeStack, type Stack } from "../test/e2e/stack.ts"

const COMPONENTS = ["postgres", "memcached", "logwatch", "worker:1", "backend:1", "nginx", "haproxy"]
const RESTARTS_PER_COMPONENT = 3

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}

const timeStart = async (stack: Stack): Promise<number> => {
  const t0 = performance.now()
  const r = await stack.cli(["start", "--daemon"])
  if (r.code !== 0) throw new Error(`start failed: ${r.stderr}`)
  await stack.waitRunning()
  return performance.now() - t0
}

/** The status straight from the control socket: a CLI run costs a Node start, which would swamp a restart. */
const component = async (stack: Stack, id: string): Promise<ComponentRow | undefined> => {
  const reply = await callControl(join(stack.dataDir, "run/control.sock"), { cmd: "status" })
  if (!reply.ok) throw new Error(reply.error)
  return (reply.components as ComponentRow[]).find((r) => r.id === id)
}

/** SIGKILL → the component is running again as a new process (ready), in ms. */
const timeRestart = async (stack: Stack, id: string): Promise<number> => {
  const before = await component(stack, id)
  if (!before?.pid) throw new Error(`${id} has no pid`)
  const t0 = performance.now()
  process.kill(before.pid, "SIGKILL")
  for (;;) {
    const now = await component(stack, id)
    if (now && now.state === "running" && now.pid !== before.pid) return performance.now() - t0
    await new Promise((r) => setTimeout(r, 10))
  }
}

export const benchTree = async (): Promise<Record<string, number>> => {
  const stack = await makeStack({ extraEnv: { SAGEWS_SUPERVISOR_INTENSITY: "100" } })
  try {
    const results: Record<string, number> = {}
    results["ready tree, fresh data dir (ms)"] = await timeStart(stack)
    await stack.cli(["stop"])
    results["ready tree, existing data dir (ms)"] = await timeStart(stack)
    for (const id of COMPONENTS) {
      const times: number[] = []
      for (let i = 0; i < RESTARTS_PER_COMPONENT; i++) {
        times.push(await timeRestart(stack, id))
        await stack.waitRunning()
      }
      results[`restart after SIGKILL: ${id} (ms, median of ${RESTARTS_PER_COMPONENT})`] = median(times)
    }
    return results
  } finally {
    await stack.cleanup()
  }
}
