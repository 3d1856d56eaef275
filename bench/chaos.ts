// `npm run bench` includes a 10-minute chaos run (src/chaos): its own tree, every fault, every component. It writes
// the whole report to docs/bench/chaos.json itself and hands the bench table its numbers.
import { readFileSync } from "node:fs"
import { spawnSync } from "node:child_process"
import { join } from "node:path"

export const CHAOS_DURATION_S = 600

export const benchChaos = async (): Promise<Record<string, number>> => {
  const root = join(import.meta.dirname, "..")
  const json = join(root, "docs/bench/chaos.json")
  // a process of its own: the harness exits with its verdict and owns its tree's cleanup on a signal
  const r = spawnSync(process.execPath, [join(root, "src/chaos/main.ts"), "--duration", String(CHAOS_DURATION_S), "--json", json], { stdio: ["ignore", "inherit", "inherit"] })
  if (r.status !== 0 && r.status !== 1) throw new Error(`chaos exited ${r.status ?? r.signal}`)
  return (JSON.parse(readFileSync(json, "utf8")) as { results: Record<string, number> }).results
}
