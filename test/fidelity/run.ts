// One fidelity run: the tutorial's examples through sagews (a session per file) and through Jupyter's sagemath
// kernel (a kernel per file) at the same time, both judged by Sage's own checker. The record feeds the test, the
// report (docs/FIDELITY.md) and the bench.
import type { WorkerClient } from "../../src/wire/client.ts"
import { exampleId, judge, type Example, type Outcome, type Seen, type TutorialFile } from "./cases.ts"
import { startJupyter, type JupyterRun } from "./jupyter.ts"
import { runOnSagews } from "./sagews.ts"

/** how long one example may run before it is interrupted: the tutorial's slowest take a few seconds */
export const EXAMPLE_TIMEOUT_MS = 30_000

export interface Judged extends Seen {
  readonly outcome: Outcome
}

export interface ExampleRun extends Example {
  readonly id: string
  readonly file: string
  readonly sagews: Judged
  readonly jupyter: Judged
}

export interface FileRun {
  readonly file: string
  readonly examples: number
  readonly skipped: number
  readonly sagews: { readonly passed: number; readonly seconds: number }
  readonly jupyter: { readonly passed: number; readonly seconds: number; readonly startSeconds: number }
}

export interface FidelityRun {
  readonly date: string
  readonly seconds: number
  readonly files: ReadonlyArray<FileRun>
  readonly examples: ReadonlyArray<ExampleRun>
}

const sum = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0)

/**
 * Runs `files` both ways at once. `onJupyter` gets the Jupyter run as soon as it starts, so that a caller can stop
 * it (and check it left nothing) also when this fails.
 */
export const measure = async (client: WorkerClient, files: ReadonlyArray<TutorialFile>, onJupyter: (run: JupyterRun) => void, timeoutMs = EXAMPLE_TIMEOUT_MS): Promise<FidelityRun> => {
  const started = performance.now()
  const withExamples = files.filter((f) => f.examples.length > 0)
  const jupyterRun = await startJupyter(withExamples, timeoutMs)
  onJupyter(jupyterRun)
  const sagews = new Map<string, Array<Seen>>()
  for (const file of withExamples) sagews.set(file.file, await runOnSagews(client, file, timeoutMs))
  const jupyter = await jupyterRun.done
  const pairs = withExamples.flatMap((file) =>
    file.examples.map((example, i) => {
      const s = sagews.get(file.file)?.[i]
      const j = jupyter.get(file.file)?.seen[i]
      if (s === undefined || j === undefined) throw new Error(`no result for ${exampleId(file.file, example)} from ${s === undefined ? "sagews" : "Jupyter"}`)
      return { file: file.file, example, s, j }
    })
  )
  const outcomes = await judge(pairs.flatMap(({ example, s, j }) => [{ example, seen: s }, { example, seen: j }]))
  const outcome = (k: number): Outcome => {
    const o = outcomes[k]
    if (o === undefined) throw new Error(`judge.py gave no verdict ${k}`)
    return o
  }
  const examples: Array<ExampleRun> = pairs.map(({ file, example, s, j }, i) => ({
    ...example,
    id: exampleId(file, example),
    file,
    sagews: { ...s, outcome: outcome(2 * i) },
    jupyter: { ...j, outcome: outcome(2 * i + 1) },
  }))
  const fileRuns = files.map((file): FileRun => {
    const mine = examples.filter((e) => e.file === file.file)
    const passed = (side: "sagews" | "jupyter"): number => mine.filter((e) => e[side].outcome === "ok").length
    const seconds = (side: "sagews" | "jupyter"): number => sum(mine.map((e) => e[side].seconds))
    return {
      file: file.file,
      examples: file.examples.length,
      skipped: sum(Object.values(file.skipped)),
      sagews: { passed: passed("sagews"), seconds: seconds("sagews") },
      jupyter: { passed: passed("jupyter"), seconds: seconds("jupyter"), startSeconds: jupyter.get(file.file)?.startSeconds ?? 0 },
    }
  })
  return { date: new Date().toISOString(), seconds: (performance.now() - started) / 1000, files: fileRuns, examples }
}

export const passed = (run: FidelityRun, side: "sagews" | "jupyter"): number => run.examples.filter((e) => e[side].outcome === "ok").length
export const failures = (run: FidelityRun, side: "sagews" | "jupyter"): Array<ExampleRun> => run.examples.filter((e) => e[side].outcome !== "ok")
