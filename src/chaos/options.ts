// The options of `npm run chaos` and `sagews chaos`, checked at the edge: each error names the option and the value.
import { UsageError, parse } from "../cli/args.ts"
import { FAULT_KINDS, type FaultKind } from "./types.ts"

export const CHAOS_USAGE = `usage: npm run chaos -- [options]      (its own tree on free ports, data dir on a tmpfs it mounts)
       sagews chaos [options]            (the running tree of --data / SAGEWS_DATA)

options:
  --duration D      seconds of load and faults (default ${60})
  --every K         seconds between faults (default ${5})
  --faults LIST     comma-separated, any of ${FAULT_KINDS.join(",")} (default: all; disk-full only on a tree the harness owns)
  --components LIST the components sigkill, sigstop and restart pick from (default: every process in status)
  --seed N          seed of every random choice (default: a random one, printed)
  --json FILE       write the report as JSON (npm run chaos: docs/bench/chaos.json by default)
  --data DIR, --config FILE   (sagews chaos) the tree's data directory and config file`

export interface ChaosOptions {
  readonly durationS: number
  readonly everyS: number
  /** undefined: every kind that applies to the tree */
  readonly faults: ReadonlyArray<FaultKind> | undefined
  /** undefined: every component with a process */
  readonly components: ReadonlyArray<string> | undefined
  readonly seed: number
  readonly json: string | undefined
  readonly data: string | undefined
  readonly config: string | undefined
}

const OPTIONS = {
  duration: { type: "string" },
  every: { type: "string" },
  faults: { type: "string" },
  components: { type: "string" },
  seed: { type: "string" },
  json: { type: "string" },
  data: { type: "string" },
  config: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const

const positive = (name: string, raw: string | undefined, fallback: number): number => {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} expects a number of seconds above 0, got ${JSON.stringify(raw)}`)
  return n
}

const list = (raw: string | undefined): string[] | undefined =>
  raw === undefined ? undefined : raw.split(",").map((s) => s.trim()).filter((s) => s !== "")

/** Parses argv (without the command name); `help` true when -h was given. */
export const parseChaosOptions = (argv: ReadonlyArray<string>): ChaosOptions & { readonly help: boolean } => {
  const { values, positionals } = parse(argv, OPTIONS)
  if (positionals.length > 0) throw new UsageError(`chaos takes no arguments, got ${JSON.stringify(positionals.join(" "))}`)
  const faults = list(values.faults)
  for (const f of faults ?? []) {
    if (!(FAULT_KINDS as ReadonlyArray<string>).includes(f)) throw new UsageError(`--faults expects a list of ${FAULT_KINDS.join(", ")}, got ${JSON.stringify(f)}`)
  }
  if (faults !== undefined && faults.length === 0) throw new UsageError(`--faults expects at least one of ${FAULT_KINDS.join(", ")}, got ${JSON.stringify(values.faults)}`)
  const components = list(values.components)
  if (components !== undefined && components.length === 0) throw new UsageError(`--components expects component ids such as worker:1,haproxy, got ${JSON.stringify(values.components)}`)
  let seed = Math.floor(Math.random() * 2 ** 31)
  if (values.seed !== undefined) {
    seed = Number(values.seed)
    if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed expects a whole number, got ${JSON.stringify(values.seed)}`)
  }
  const durationS = positive("duration", values.duration, 60)
  const everyS = positive("every", values.every, 5)
  return {
    durationS,
    everyS,
    faults: faults as FaultKind[] | undefined,
    components,
    seed,
    json: values.json,
    data: values.data,
    config: values.config,
    help: values.help ?? false,
  }
}
