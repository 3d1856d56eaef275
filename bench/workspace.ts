// Benchmark of workspace saves against a real PostgreSQL: latency of one save (write + commit + bundle stored in
// PostgreSQL, as Workspaces.write does it) over 1,000 saves of a ~20 KB worksheet that changes a little each time;
// bundle sizes and save times after 1, 100 and 1,000 commits, beside what a full bundle on every save would cost;
// and a restore from PostgreSQL alone after 1,000 commits.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, ManagedRuntime } from "effect"
import pg from "pg"
import { postgresSpec } from "../actors/postgres.ts"
import { serviceUrl } from "../src/db/credentials.ts"
import { createBundle } from "../src/workspace/bundle.ts"
import { COMPACT_EVERY } from "../src/workspace/limits.ts"
import { repo } from "../src/workspace/repo.ts"
import { WorkspaceStore } from "../src/workspace/store.ts"
import { Workspaces } from "../src/workspace/workspaces.ts"
import { startSpec } from "../test/web/harness.ts"
// ~20 KB of nbformat-4 JSON; save `n` edits one cell's source and output (the same worksheet the tests save)
import { notebook } from "../test/workspace/fixture.ts"

const SAVES = 1_000
const CHECKPOINTS = [1, 100, 1_000]
/** saves on each side of a checkpoint whose median is its save time */
const AROUND = 5
const AUTHOR = { name: "Bench", email: "bench@example.org" }
const PORT = 26_432 + Math.floor(Math.random() * 1000)

const quantile = (xs: ReadonlyArray<number>, q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? Number.NaN
const round = (x: number): number => Math.round(x * 10) / 10

export const benchWorkspace = async (): Promise<Record<string, number>> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sagews-bench-ws-"))
  fs.mkdirSync(path.join(dataDir, "log"))
  const roots = [path.join(dataDir, "host-a"), path.join(dataDir, "host-b")]
  const stops: Array<() => Promise<void>> = []
  try {
    const postgres = await startSpec(postgresSpec({ dataDir, port: PORT }))
    stops.push(postgres.stop)
    const url = await serviceUrl(dataDir, { port: PORT })
    const client = new pg.Client({ connectionString: url })
    client.on("error", () => {})
    await client.connect()
    stops.push(() => client.end())
    const owner = (await client.query<{ id: string }>("INSERT INTO accounts (email) VALUES ('bench@example.org') RETURNING id")).rows[0]?.id ?? ""
    const host = (root: string) => {
      const runtime = ManagedRuntime.make(Workspaces.layer({ root }).pipe(Layer.provide(WorkspaceStore.layer(url))))
      stops.push(() => runtime.dispose())
      return <A, E>(effect: Effect.Effect<A, E, Workspaces>) => runtime.runPromise(effect)
    }
    const run = host(roots[0] ?? "")
    const id = "bench"
    await run(Workspaces.use((w) => w.create({ id, owner, author: AUTHOR })))
    const gitDir = await run(Workspaces.use((w) => Effect.succeed(w.gitDir(id))))
    const stored = async () =>
      (await client.query<{ bytes: string; n: string }>("SELECT sum(octet_length(bundle)) AS bytes, count(*) AS n FROM workspace_bundles WHERE workspace_id = $1", [id])).rows[0]
    await client.query("CREATE TEMP TABLE full_bundles (bundle bytea)")
    await client.query("ALTER TABLE full_bundles ALTER COLUMN bundle SET STORAGE EXTERNAL")

    const latencies: Array<number> = []
    /** bytes of the bundle each save stored */
    const written: Array<number> = []
    const results: Record<string, number> = {}
    for (let n = 1; n <= SAVES; n++) {
      const t = performance.now()
      await run(Workspaces.use((w) => w.write({ id, path: "fourier.ipynb", content: notebook(n), message: `autosave ${n}`, author: AUTHOR })))
      latencies.push(performance.now() - t)
      const last = await client.query<{ bytes: number }>("SELECT octet_length(bundle) AS bytes FROM workspace_bundles WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 1", [id])
      written.push(last.rows[0]?.bytes ?? 0)
      if (!CHECKPOINTS.includes(n)) continue
      const at = stored()
      const t0 = performance.now()
      const full = await Effect.runPromise(createBundle(repo(gitDir, id)))
      const t1 = performance.now()
      await client.query("BEGIN")
      await client.query("INSERT INTO full_bundles (bundle) VALUES ($1)", [full])
      await client.query("COMMIT")
      const t2 = performance.now()
      const kept = await at
      // the same pack with every delta computed again: the delta search a full bundle of unpacked history pays
      const r = repo(gitDir, id)
      const objects = await Effect.runPromise(r.run(["rev-list", "--objects", "refs/heads/main"]))
      const t3 = performance.now()
      await Effect.runPromise(r.run(["pack-objects", "--stdout", "--no-reuse-delta", "-q"], { input: objects }))
      results[`after ${n} commits: full bundle's pack with every delta computed again (ms)`] = round(performance.now() - t3)
      results[`after ${n} commits: full bundle (bytes)`] = full.byteLength
      results[`after ${n} commits: full bundle, git bundle create, objects as kept (ms)`] = round(t1 - t0)
      results[`after ${n} commits: full bundle, stored in PostgreSQL (ms)`] = round(t2 - t1)
      results[`after ${n} commits: kept in PostgreSQL, full + increments (bytes)`] = Number(kept?.bytes ?? 0)
      results[`after ${n} commits: bundles kept`] = Number(kept?.n ?? 0)
    }
    for (const n of CHECKPOINTS) {
      const window = latencies.slice(Math.max(0, n - 1 - AROUND), Math.min(SAVES, n + AROUND))
      results[`after ${n} commits: save, median of ${window.length} around it (ms)`] = round(quantile(window, 0.5))
    }
    results[`bundle stored by a save, median over ${SAVES} (bytes)`] = quantile(written, 0.5)
    results[`bundles stored by ${SAVES} saves, in all (bytes)`] = written.reduce((a, b) => a + b, 0)
    results[`save p50 over ${SAVES} (ms)`] = round(quantile(latencies, 0.5))
    results[`save p99 over ${SAVES} (ms)`] = round(quantile(latencies, 0.99))
    results[`save max over ${SAVES} (ms)`] = round(Math.max(...latencies))
    const compacting = latencies.filter((_, i) => (i + 1) % COMPACT_EVERY === 0)
    results[`compacting save (every ${COMPACT_EVERY}th: a full bundle), median (ms)`] = round(quantile(compacting, 0.5))
    const other = host(roots[1] ?? "")
    const t = performance.now()
    await other(Workspaces.use((w) => w.restore(id)))
    results[`restore from PostgreSQL on a fresh directory after ${SAVES} commits (ms)`] = round(performance.now() - t)
    const history = await other(Workspaces.use((w) => w.history(id)))
    if (history.length !== SAVES + 1) throw new Error(`restored ${history.length} versions, expected ${SAVES + 1}`)
    const single = performance.now()
    await other(Workspaces.use((w) => w.read(id, "fourier.ipynb", history[SAVES - 1]?.version)))
    results["read the first save's version after the restore (ms)"] = round(performance.now() - single)
    return results
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {})
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}
