// Benchmark of a Sage tutorial file's examples per second: each file's examples in order through one sagews sage
// session and through one Jupyter `sagemath` kernel, one side after the other in the same run (not at once: they
// would share the two cores). The time counted is the examples' own, from send to done (or idle); the session's open
// and the kernel's start are reported beside it.
import { loadExamples } from "../test/fidelity/cases.ts"
import { startJupyter } from "../test/fidelity/jupyter.ts"
import { EXAMPLE_TIMEOUT_MS } from "../test/fidelity/run.ts"
import { runOnSagews } from "../test/fidelity/sagews.ts"
import { round, sleep, startBenchWorker } from "./worker.ts"

/** many short examples (programming) and a file of heavier algebra (tour_polynomial) */
const FILES = ["programming", "tour_polynomial"]

const sum = (xs: ReadonlyArray<{ readonly seconds: number }>): number => xs.reduce((n, x) => n + x.seconds, 0)

export const benchFidelity = async (): Promise<Record<string, number>> => {
  const files = await loadExamples(FILES)
  const results: Record<string, number> = {}
  const worker = await startBenchWorker({ kernels: ["sage"], pool: 1, uidRange: { first: 261_000, last: 261_999 } })
  try {
    await sleep(300) // let the pool fill
    for (const file of files) {
      const started = performance.now()
      const seen = await runOnSagews(worker.client, file, EXAMPLE_TIMEOUT_MS)
      const wall = (performance.now() - started) / 1000
      results[`sagews ${file.file} examples/s`] = round(seen.length / sum(seen))
      results[`sagews ${file.file} open+close s`] = round(wall - sum(seen))
    }
  } finally {
    worker.client.close()
    await worker.stop()
  }
  const jupyter = await startJupyter(files, EXAMPLE_TIMEOUT_MS)
  try {
    const byFile = await jupyter.done
    for (const file of files) {
      const run = byFile.get(file.file)
      if (run === undefined) throw new Error(`jupyter.py gave no results for ${file.file}`)
      results[`jupyter ${file.file} examples/s`] = round(run.seen.length / sum(run.seen))
      results[`jupyter ${file.file} kernel start s`] = round(run.startSeconds)
    }
  } finally {
    await jupyter.stop()
  }
  for (const file of files) results[`${file.file} sagews/jupyter`] = round((results[`sagews ${file.file} examples/s`] ?? 0) / (results[`jupyter ${file.file} examples/s`] ?? 1))
  return results
}
