// `npm run chaos` (a tree of its own) and `sagews chaos` (the running tree): run, print the table, write the
// JSON, exit 0 when every promise held, 1 when one broke, 2 on bad usage.
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { UsageError } from "../cli/args.ts"
import { CHAOS_USAGE, parseChaosOptions } from "./options.ts"
import { formatReport, reportJson, verdict } from "./report.ts"
import { runChaos } from "./run.ts"
import { externalTree, ownTree, type Tree } from "./tree.ts"

export const DEFAULT_JSON = resolve(import.meta.dirname, "../../docs/bench/chaos.json")

const log = (line: string) => process.stderr.write(line + "\n")

/** Runs chaos; `own` starts (and at the end stops) a tree of its own. Returns the exit code. */
export const chaosCommand = async (argv: ReadonlyArray<string>, own: boolean): Promise<number> => {
  const options = parseChaosOptions(argv)
  if (options.help) {
    process.stdout.write(CHAOS_USAGE + "\n")
    return 0
  }
  if (own && (options.data !== undefined || options.config !== undefined)) throw new UsageError("--data and --config are for `sagews chaos` (a running tree); npm run chaos starts its own")
  const json = options.json ?? (own ? DEFAULT_JSON : undefined)
  log(`chaos: seed ${options.seed}`)
  const tree: Tree = own ? await ownTree(log) : await externalTree(options)
  let interrupted = false
  const onSignal = () => {
    if (interrupted) return
    interrupted = true
    log("chaos: interrupted; stopping")
    void tree.stop().finally(() => process.exit(130))
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  let facts
  try {
    facts = await runChaos(tree, options, log)
  } catch (e) {
    await tree.stop()
    throw e
  }
  // an owned tree's data dir goes with its tmpfs: its logs are kept as the evidence of what broke
  const logs = join(tmpdir(), `sagews-chaos-logs-${options.seed}-${Date.now()}`)
  if (tree.owned) cpSync(join(tree.dataDir, "log"), logs, { recursive: true })
  const { left } = await tree.stop()
  const final = { ...facts, left: tree.owned ? left : null }
  const v = verdict(final)
  if (tree.owned && v.broken.length === 0) rmSync(logs, { recursive: true, force: true })
  else if (tree.owned) log(`chaos: the tree's logs are kept in ${logs}`)
  process.stdout.write(formatReport(final, v) + "\n")
  if (json !== undefined) {
    mkdirSync(dirname(resolve(json)), { recursive: true })
    writeFileSync(json, JSON.stringify(reportJson(final, v), null, 2) + "\n")
    log(`chaos: wrote ${json}`)
  }
  process.off("SIGINT", onSignal)
  process.off("SIGTERM", onSignal)
  return v.broken.length === 0 ? 0 : 1
}

if (import.meta.main) {
  chaosCommand(process.argv.slice(2), true).then(
    (code) => process.exit(code),
    (e: unknown) => {
      if (e instanceof UsageError) {
        process.stderr.write(`chaos: ${e.message}\n\n${CHAOS_USAGE}\n`)
        process.exit(2)
      }
      process.stderr.write(`chaos: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
      process.exit(1)
    },
  )
}
