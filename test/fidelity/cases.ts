// The tutorial's examples and their verdicts: runs examples.py (Sage's own doctest parser) and judge.py (Sage's own
// output checker) with Debian's python, and checks what they print at this edge.
import { spawn } from "node:child_process"
import { join } from "node:path"
import { z } from "zod"

/** Debian's interpreter, the one with Sage; the `python3` first on PATH is a pyenv one without it */
export const SAGE_PYTHON = "/usr/bin/python3"
const HERE = import.meta.dirname

export const Example = z.object({
  line: z.number().int(),
  source: z.string().describe("as a user types it into a cell: not preparsed"),
  want: z.string(),
  exc_msg: z.string().nullable(),
  tags: z.array(z.string()),
  options: z.record(z.string(), z.boolean()).describe("doctest directives: option flag → on"),
  ends_in_show: z.boolean().describe("its last statement is a show(...): a picture it displays is not its value"),
})
export type Example = z.infer<typeof Example>

export const TutorialFile = z.object({
  file: z.string(),
  examples: z.array(Example),
  skipped: z.object({
    tags: z.number().int().describe("not tested, optional packages not installed"),
    directives: z.number().int().describe("# doctest: +SKIP"),
    "skip blocks": z.number().int().describe("examples of a block after `.. skip`"),
    "python prompts": z.number().int().describe("`>>>` examples: plain Python, not input to a Sage cell"),
  }).describe("examples left out, by why"),
})
export type TutorialFile = z.infer<typeof TutorialFile>

/** What a doctest would have seen of one run example. */
export interface Seen {
  /** stdout and stderr as written, and the text of what was displayed */
  readonly got: string
  /** the exception's last line (`ZeroDivisionError: ...`), when one ended the example */
  readonly raised: string | null
  /** it ran past its timeout and was interrupted (or its kernel replaced) */
  readonly timedOut: boolean
  readonly seconds: number
}

export const Outcome = z.enum(["ok", "wrong output", "unexpected exception", "wrong exception", "timeout"])
export type Outcome = z.infer<typeof Outcome>
const Verdict = z.object({ pass: z.boolean(), outcome: Outcome })

/** An example's id in reasons.json and docs/FIDELITY.md: its file and line. */
export const exampleId = (file: string, example: Pick<Example, "line">): string => `${file}:${example.line}`

/** Runs `script` (in this directory) with Sage's python, `input` on stdin; resolves with its stdout. */
export const runPython = (script: string, args: ReadonlyArray<string>, input: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(SAGE_PYTHON, [join(HERE, script), ...args], { stdio: ["pipe", "pipe", "pipe"] })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk))
    child.on("error", reject)
    child.on("exit", (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out).toString("utf8"))
      else reject(new Error(`${script} exited with ${code ?? signal}:\n${Buffer.concat(err).toString("utf8").slice(-2_000)}`))
    })
    child.stdin.end(input)
  })

/** The tutorial files (by stem; all of them when none is named), with the examples sage -t would run. */
export const loadExamples = async (files: ReadonlyArray<string> = []): Promise<Array<TutorialFile>> =>
  z.array(TutorialFile).parse(JSON.parse(await runPython("examples.py", files, "")))

/** The verdict on each example's `seen`, as sage -t would give it; a timed-out example fails as `timeout`. */
export const judge = async (cases: ReadonlyArray<{ readonly example: Example; readonly seen: Seen }>): Promise<Array<Outcome>> => {
  const input = cases.map(({ example, seen }) => ({ source: example.source, want: example.want, exc_msg: example.exc_msg, options: example.options, got: seen.got, raised: seen.raised }))
  const verdicts = z.array(Verdict).parse(JSON.parse(await runPython("judge.py", [], JSON.stringify(input))))
  if (verdicts.length !== cases.length) throw new Error(`judge.py gave ${verdicts.length} verdicts for ${cases.length} cases`)
  return verdicts.map((v, i) => (cases[i]?.seen.timedOut === true ? "timeout" : v.outcome))
}
