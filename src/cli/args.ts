// Command-line parsing for our programs and the CLI: `--name value`, `--flag`, and positionals.
// Unknown options are errors that name the option, so a typo never silently does the default.
import { parseArgs } from "node:util"

export class UsageError extends Error {
  override readonly name = "UsageError"
}

type OptionKinds = Record<string, { type: "string" | "boolean"; short?: string }>

export const parse = <O extends OptionKinds>(argv: ReadonlyArray<string>, options: O) => {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
}

/** A required numeric option: names the option and the bad value when it is not a number. */
export const intOption = (name: string, raw: string | undefined, fallback?: number): number => {
  if (raw === undefined) {
    if (fallback !== undefined) return fallback
    throw new UsageError(`--${name} is required`)
  }
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} expects a whole number, got ${JSON.stringify(raw)}`)
  return n
}
