// `npm run bench`: runs every benchmark, prints one table, writes docs/bench/<name>.json.
// Timing goals live here, never in tests: the machines are shared and noisy, so compare ratios from one run.
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { cpus, totalmem } from "node:os"
import { join } from "node:path"

type Bench = () => Promise<Record<string, number>>

/** `writes`: the bench writes its own docs/bench/<name>.json (a report with more than numbers); run.ts leaves it. */
const BENCHES: ReadonlyArray<{ readonly name: string; readonly file: string; readonly fn: string; readonly writes?: true }> = [
  { name: "tree", file: "./tree.ts", fn: "benchTree" },
  { name: "logwatch", file: "./logwatch.ts", fn: "benchLogwatch" },
  { name: "worker", file: "./worker.ts", fn: "benchWorker" },
  { name: "sessions", file: "./sessions.ts", fn: "benchSessions" },
  { name: "web", file: "./web.ts", fn: "benchWeb" },
  { name: "chaos", file: "./chaos.ts", fn: "benchChaos", writes: true },
  { name: "workspace", file: "./workspace.ts", fn: "benchWorkspace" },
  { name: "saves", file: "./saves.ts", fn: "benchSaves" },
  { name: "fidelity", file: "./fidelity.ts", fn: "benchFidelity" },
  { name: "interfaces", file: "./interfaces.ts", fn: "benchInterfaces" },
  { name: "cluster", file: "./cluster.ts", fn: "benchCluster" },
]

const only = process.argv.slice(2)
const outDir = join(import.meta.dirname, "../docs/bench")
mkdirSync(outDir, { recursive: true })

const rows: Array<[string, string, string]> = []
let failed = false
for (const b of BENCHES) {
  if (only.length > 0 && !only.includes(b.name)) continue
  if (!existsSync(join(import.meta.dirname, b.file))) continue
  process.stderr.write(`bench: ${b.name}...\n`)
  try {
    const mod = (await import(b.file)) as Record<string, Bench>
    const results = await mod[b.fn]!()
    if (!b.writes) writeFileSync(
      join(outDir, `${b.name}.json`),
      JSON.stringify({ bench: b.name, date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) }, results }, null, 2) + "\n",
    )
    for (const [k, v] of Object.entries(results)) rows.push([b.name, k, Number.isInteger(v) ? String(v) : v.toFixed(2)])
  } catch (e) {
    failed = true
    rows.push([b.name, "FAILED", e instanceof Error ? e.message : String(e)])
  }
}

const w0 = Math.max(5, ...rows.map((r) => r[0].length))
const w1 = Math.max(6, ...rows.map((r) => r[1].length))
process.stdout.write(`${"bench".padEnd(w0)}  ${"metric".padEnd(w1)}  value\n`)
for (const [a, b, c] of rows) process.stdout.write(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}\n`)
process.exit(failed ? 1 : 0)
