// The `sagews` command line: init, start, stop, status, restart, logs, config check, eval, doctor.
// Exit codes: 0 done, 1 failed or not running, 2 bad usage or bad configuration.
import { ConfigError, frontUrl, loadConfig } from "../config/load.ts"
import { serviceUrl } from "../db/credentials.ts"
import { dataPaths, defaultDataDir } from "../config/paths.ts"
import { parse, UsageError, intOption } from "./args.ts"
import { callControl, NotRunning } from "./control.ts"
import { initDataDir } from "./init.ts"
import { parseSince, showLogs } from "./logs.ts"
import { formatTable, type ComponentRow } from "./status.ts"

const USAGE = `usage: sagews <command> [options]

commands:
  init                       create the data directory and its secrets
  start [--daemon] [--port N] start the whole tree (foreground unless --daemon); prints the URL once ready
  stop                       stop the running tree, leaving no process behind
  status [--json]            the components: state, pid, uptime, restarts, last exit, port
  restart ID                 restart one component (e.g. worker:1)
  logs [ID] [-f] [--since 10m]  the shipped log from PostgreSQL
  config check               validate the configuration and print it
  eval CODE [--kernel K]     run CODE once (K: sage, the default, or python) through the HTTP API; --json for the raw reply
  doctor                     check what the session sandbox relies on here: root, cgroups, namespaces, seccomp, sysctls, secrets

options for every command:
  --data DIR      the data directory (default ./data, or SAGEWS_DATA)
  --config FILE   the operator's config file (or SAGEWS_CONFIG), over conf/sagews.json; SAGEWS_* variables override both`

const OPTIONS = {
  data: { type: "string" },
  config: { type: "string" },
  port: { type: "string" },
  daemon: { type: "boolean" },
  json: { type: "boolean" },
  follow: { type: "boolean", short: "f" },
  since: { type: "string" },
  kernel: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const

const out = (s: string) => process.stdout.write(s + "\n")

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const { values, positionals } = parse(argv, OPTIONS)
  const [command, ...rest] = positionals
  if (values.help || command === "help") {
    out(USAGE)
    return 0
  }
  if (!command) throw new UsageError("no command given")
  const dataDir = values.data ?? defaultDataDir()
  const paths = dataPaths(dataDir)
  const configFile = values.config ?? process.env.SAGEWS_CONFIG
  const config = () => loadConfig({ file: configFile, overrides: values.port !== undefined ? { port: intOption("port", values.port) } : {} })
  const expectArgs = (n: number, what: string) => {
    if (rest.length !== n) throw new UsageError(`${command} expects ${what}, got ${rest.length === 0 ? "nothing" : JSON.stringify(rest.join(" "))}`)
  }

  switch (command) {
    case "init": {
      expectArgs(0, "no arguments")
      config()
      out(`sagews: data directory ${await initDataDir(dataDir)} is ready`)
      return 0
    }
    case "start": {
      expectArgs(0, "no arguments")
      // loaded only here: the tree pulls in every actor, which `status` and `init` do not need
      const { startCommand } = await import("./start.ts")
      return startCommand({ dataDir, config: config(), daemon: values.daemon ?? false, argv })
    }
    case "stop": {
      expectArgs(0, "no arguments")
      const { stopCommand } = await import("./start.ts")
      return stopCommand(paths)
    }
    case "status": {
      expectArgs(0, "no arguments")
      const reply = await callControl(paths.control, { cmd: "status" })
      if (!reply.ok) throw new Error(reply.error)
      const rows = reply.components as ComponentRow[]
      if (values.json) out(JSON.stringify({ components: rows, events: reply.events, isolation: reply.isolation, url: reply.url }))
      else out(`${formatTable(rows)}\n\n${reply.url as string}  (isolation: ${reply.isolation as string})`)
      return 0
    }
    case "restart": {
      expectArgs(1, "one component id, such as worker:1")
      const reply = await callControl(paths.control, { cmd: "restart", id: rest[0]! })
      if (!reply.ok) throw new Error(reply.error)
      out(`sagews: ${rest[0]} restarted`)
      return 0
    }
    case "logs": {
      if (rest.length > 1) throw new UsageError(`logs takes at most one component id, got ${JSON.stringify(rest.join(" "))}`)
      const abort = new AbortController()
      process.once("SIGINT", () => abort.abort())
      const { postgres } = config()
      await showLogs(await serviceUrl(dataDir, { port: postgres.port, url: postgres.url || undefined }), { id: rest[0], sinceSeconds: parseSince(values.since ?? "10m"), follow: values.follow ?? false, out, signal: abort.signal })
      return 0
    }
    case "eval": {
      expectArgs(1, "the code to run, as one argument")
      const { evalCommand } = await import("./eval.ts")
      return evalCommand({ url: frontUrl(config()), code: rest[0]!, kernel: values.kernel ?? "sage", json: values.json ?? false, out, err: (s) => process.stderr.write(s + "\n") })
    }
    case "doctor": {
      expectArgs(0, "no arguments")
      const { doctorCommand } = await import("./doctor.ts")
      return doctorCommand(dataDir, out)
    }
    case "config": {
      if (rest[0] !== "check" || rest.length !== 1) throw new UsageError(`config expects "check", got ${JSON.stringify(rest.join(" "))}`)
      out(JSON.stringify(config(), null, 2))
      out("sagews: configuration is valid")
      return 0
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`sagews: ${e.message}\n\n${USAGE}\n`)
      process.exit(2)
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`sagews: ${e.message}\n`)
      process.exit(2)
    }
    if (e instanceof NotRunning) {
      process.stderr.write(`sagews: ${e.message}\n`)
      process.exit(1)
    }
    process.stderr.write(`sagews: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  },
)
