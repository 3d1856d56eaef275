// The Jupyter side of the comparison: jupyter.py runs the same examples through the `sagemath` kernel (one kernel
// per file) in its own private directory; `stop` ends it early, and `leftovers` finds any process it left behind.
import { spawn } from "node:child_process"
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { z } from "zod"
import { SAGE_PYTHON, type Seen, type TutorialFile } from "./cases.ts"

const FileResult = z.object({
  file: z.string(),
  start_seconds: z.number(),
  results: z.array(z.object({ got: z.string(), raised: z.string().nullable(), timed_out: z.boolean(), seconds: z.number() })),
})

export interface JupyterFile {
  readonly file: string
  /** the kernel's start, until it answered */
  readonly startSeconds: number
  readonly seen: Array<Seen>
}

export interface JupyterRun {
  /** resolves once every file has run, by file */
  readonly done: Promise<Map<string, JupyterFile>>
  /** ends the run now (SIGTERM: jupyter.py shuts its kernel down) and removes its directory */
  stop(): Promise<void>
  /** processes still running in the run's private directory (its kernels and what they started), once they are
   * given a few seconds to end */
  leftovers(): Promise<Array<string>>
}

/** how long jupyter.py may take to shut its kernel down after SIGTERM before it is killed */
const STOP_GRACE_MS = 15_000

export const startJupyter = async (files: ReadonlyArray<TutorialFile>, timeoutMs: number): Promise<JupyterRun> => {
  const home = await mkdtemp(join(tmpdir(), "sagews-fidelity-jupyter-"))
  const child = spawn(SAGE_PYTHON, [join(import.meta.dirname, "jupyter.py"), "--home", home, "--timeout", String(timeoutMs / 1000)], { stdio: ["pipe", "pipe", "pipe"] })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const byFile = new Map<string, JupyterFile>()
  let pending = ""
  let stderr = ""
  child.stdout.on("data", (chunk: Buffer) => {
    pending += chunk.toString("utf8")
    const lines = pending.split("\n")
    pending = lines.pop() ?? ""
    for (const line of lines.filter(Boolean)) {
      const r = FileResult.parse(JSON.parse(line))
      const seen = r.results.map((x) => ({ got: x.got, raised: x.raised, timedOut: x.timed_out, seconds: x.seconds }))
      byFile.set(r.file, { file: r.file, startSeconds: r.start_seconds, seen })
    }
  })
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-4_000)))
  child.stdin.end(JSON.stringify(files))
  const done = exited.then((code) => {
    if (code !== 0) throw new Error(`jupyter.py exited with ${code}:\n${stderr}`)
    return byFile
  })
  done.catch(() => undefined) // a caller that stops the run early never awaits it
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM")
        const killer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS)
        await exited
        clearTimeout(killer)
      }
      await rm(home, { recursive: true, force: true })
    })())
  return { done, stop, leftovers: () => settled(home) }
}

/** how long a kernel's children (gp, maxima, ...) may take to exit after the kernel did */
const SETTLE_MS = 10_000

const settled = async (dir: string): Promise<Array<string>> => {
  const deadline = Date.now() + SETTLE_MS
  for (;;) {
    const left = await processesIn(dir)
    if (left.length === 0 || Date.now() > deadline) return left
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** Processes whose command line or environment names `dir` (a kernel's connection file, its HOME), as `pid cmdline`. */
const processesIn = async (dir: string): Promise<Array<string>> => {
  const found: Array<string> = []
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
    const [cmdline, environ] = await Promise.all([readFile(`/proc/${pid}/cmdline`, "utf8"), readFile(`/proc/${pid}/environ`, "utf8")].map((p) => p.catch(() => "")))
    if (cmdline?.includes(dir) === true || environ?.split("\0").includes(`HOME=${dir}`) === true) found.push(`${pid} ${cmdline?.replaceAll("\0", " ")}`)
  }
  return found
}
