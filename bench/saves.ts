// Benchmark of a worksheet save as the page makes it, beside the peer's: `PUT /api/v1/worksheets/{id}` with If-Match
// on a backend with PostgreSQL (validation, a git commit, its bundle and the row in one PostgreSQL transaction that
// is committed before the answer), against Jupyter Notebook's `PUT /api/contents/{path}` of the same ~20 KB notebook
// (Debian's jupyter-notebook: a file written in place). Both over HTTP on 127.0.0.1, one save after another, each
// save changing one cell a little, as autosave does.
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort, startWebStack } from "../test/web/harness.ts"
import { users } from "../test/web/users.ts"
import { notebook } from "../test/workspace/fixture.ts"

const SAVES = 300
const WARMUP = 10

const quantile = (xs: ReadonlyArray<number>, q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? Number.NaN
const round = (x: number): number => Math.round(x * 10) / 10

/** ms of each of `n` calls of `save(i)`, after WARMUP calls not counted */
const timed = async (n: number, save: (i: number) => Promise<void>): Promise<Array<number>> => {
  for (let i = 0; i < WARMUP; i++) await save(i)
  const ms: Array<number> = []
  for (let i = WARMUP; i < WARMUP + n; i++) {
    const t = performance.now()
    await save(i)
    ms.push(performance.now() - t)
  }
  return ms
}

const sagewsSaves = async (): Promise<Array<number>> => {
  const stack = await startWebStack({ postgres: true, workers: 0 })
  try {
    const { tokenUser } = users(() => stack)
    const who = await tokenUser("bench@example.org")
    const url = `${stack.backendUrl()}/api/v1/worksheets`
    const created = await fetch(url, { method: "POST", headers: { ...who.headers, "content-type": "application/json" }, body: notebook(0) })
    if (created.status !== 201) throw new Error(`creating the worksheet answered ${created.status}`)
    const { id } = (await created.json()) as { id: string }
    let etag = created.headers.get("etag") ?? ""
    if (etag === "") etag = (await fetch(`${url}/${id}`, { headers: who.headers })).headers.get("etag") ?? ""
    return await timed(SAVES, async (i) => {
      const r = await fetch(`${url}/${id}`, { method: "PUT", headers: { ...who.headers, "content-type": "application/json", "if-match": etag }, body: notebook(i + 1) })
      if (r.status !== 200) throw new Error(`save ${i} answered ${r.status}: ${await r.text()}`)
      await r.arrayBuffer()
      etag = r.headers.get("etag") ?? ""
    })
  } finally {
    await stack.stop()
  }
}

const jupyterSaves = async (): Promise<Array<number>> => {
  const dir = mkdtempSync(join(tmpdir(), "sagews-bench-jupyter-"))
  const port = await freePort()
  const token = "bench"
  let child: ChildProcess | undefined
  try {
    child = spawn("/usr/bin/python3", ["-m", "notebook", "--no-browser", "--allow-root", `--port=${port}`, "--ip=127.0.0.1", `--NotebookApp.token=${token}`, `--notebook-dir=${dir}`], {
      env: { PATH: "/usr/bin:/bin", HOME: dir, JUPYTER_RUNTIME_DIR: join(dir, ".runtime") },
      stdio: "ignore",
    })
    const base = `http://127.0.0.1:${port}/api/contents/bench.ipynb`
    const headers = { authorization: `token ${token}`, "content-type": "application/json" }
    for (let tries = 0; ; tries++) {
      const up = await fetch(`http://127.0.0.1:${port}/api/status`, { headers }).then((r) => r.ok, () => false)
      if (up) break
      if (tries > 200) throw new Error("jupyter notebook did not start within 20 s")
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return await timed(SAVES, async (i) => {
      const r = await fetch(base, { method: "PUT", headers, body: JSON.stringify({ type: "notebook", format: "json", content: JSON.parse(notebook(i + 1)) }) })
      if (!r.ok) throw new Error(`jupyter save ${i} answered ${r.status}: ${await r.text()}`)
      await r.arrayBuffer()
    })
  } finally {
    child?.kill("SIGTERM")
    rmSync(dir, { recursive: true, force: true })
  }
}

export const benchSaves = async (): Promise<Record<string, number>> => {
  const ours = await sagewsSaves()
  const peer = await jupyterSaves()
  return {
    [`sagews PUT /api/v1/worksheets/{id}, p50 over ${SAVES} (ms)`]: round(quantile(ours, 0.5)),
    [`sagews PUT /api/v1/worksheets/{id}, p99 over ${SAVES} (ms)`]: round(quantile(ours, 0.99)),
    [`jupyter notebook PUT /api/contents, p50 over ${SAVES} (ms)`]: round(quantile(peer, 0.5)),
    [`jupyter notebook PUT /api/contents, p99 over ${SAVES} (ms)`]: round(quantile(peer, 0.99)),
    "sagews p50 / jupyter p50": round(quantile(ours, 0.5) / quantile(peer, 0.5)),
  }
}
