// The `sagews` command line: init (and init --join), join-token, start, stop, status, restart, sessions, kill, logs,
// user, config check, eval, doctor, chaos.
// Exit codes: 0 done, 1 failed or not running, 2 bad usage or bad configuration.
import { ConfigError, frontUrl, loadConfig } from "../config/load.ts"
import { serviceUrl } from "../db/credentials.ts"
import { dataPaths, defaultDataDir } from "../config/paths.ts"
import { parse, UsageError, intOption } from "./args.ts"
import { callControl, NotRunning } from "./control.ts"
import { initDataDir, joinDataDir } from "./init.ts"
import { parseSince, showLogs } from "./logs.ts"
import { killCommand, sessionsCommand, sessionsLine, workerSessions } from "./sessions.ts"
import { diskLine, formatTable, type ComponentRow } from "./status.ts"
import type { DiskSpace } from "../../actors/room.ts"

const USAGE = `usage: sagews <command> [options]

commands:
  init                       create the data directory, its secrets, the cluster's CA and this host's certificate
  init --join TOKEN [--role worker|web]
                             set up this data directory as a host of the cluster that made TOKEN (then start --role ...)
  join-token [--role worker|web]  on the store host: print a new token for one more host (shown once; default worker)
  join-token --list [--json] the tokens: id, role, created, used, revoked
  join-token --revoke ID     revoke a token: its host can no longer log in to PostgreSQL, its connections end
  start [--daemon] [--port N] start the whole tree (foreground unless --daemon); prints the URL once ready
  stop                       stop the running tree, leaving no process behind
  status [--json]            the components: state, pid, uptime, restarts, last exit, port
  restart ID                 restart one component (e.g. worker:1)
  sessions [--json]          every worker's live sessions (id, kind, user, uid, age, idle, running, limits) and the ends of the last hour
  kill SESSION               end one user session (reason ClosedByOperator; its page says an operator ended it)
  logs [ID] [-f] [--since 10m]  the shipped log from PostgreSQL
  user add EMAIL             add a local account; its password is read from stdin (at least 8 characters)
  user list [--json]         the accounts: email, created, disabled, last sign-in
  user disable EMAIL         disable an account: its sign-ins end, its API tokens are refused
  user token EMAIL           print a new API token for the account (shown once; Authorization: Bearer TOKEN)
  config check               validate the configuration and print it
  eval CODE [--kernel K]     run CODE once (K: sage, the default, or python) through the HTTP API; --json for the raw reply
  doctor                     check what the session sandbox relies on here: root, cgroups, namespaces, seccomp, sysctls, secrets
  chaos [--duration D] [--every K] [--faults LIST] [--components LIST] [--seed N] [--json FILE]
                             load the running tree through its front door while killing, stopping and restarting its parts;
                             prints what broke (exit 1 if a promise did); sagews chaos --help for the options

options for every command:
  --data DIR      the data directory (default ./data, or SAGEWS_DATA)
  --config FILE   the operator's config file (or SAGEWS_CONFIG), over conf/sagews.json; SAGEWS_* variables override both
  --role ROLES    what this host runs (config role): all, or a comma list of store, web, worker`

const OPTIONS = {
  data: { type: "string" },
  config: { type: "string" },
  port: { type: "string" },
  daemon: { type: "boolean" },
  json: { type: "boolean" },
  follow: { type: "boolean", short: "f" },
  since: { type: "string" },
  kernel: { type: "string" },
  role: { type: "string" },
  join: { type: "string" },
  revoke: { type: "string" },
  list: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const

const out = (s: string) => process.stdout.write(s + "\n")
const err = (s: string) => process.stderr.write(s + "\n")

/** The command word: the first argument that is neither an option nor the value of --data or --config. */
const commandOf = (argv: ReadonlyArray<string>): number => {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === "--data" || a === "--config" || a === "--role" || a === "--join" || a === "--revoke") i++
    else if (!a.startsWith("-")) return i
  }
  return -1
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const at = commandOf(argv)
  if (at >= 0 && argv[at] === "chaos") {
    // its own options (--json FILE, --duration, ...), parsed by the harness
    const { chaosCommand } = await import("../chaos/main.ts")
    const { CHAOS_USAGE } = await import("../chaos/options.ts")
    return chaosCommand([...argv.slice(0, at), ...argv.slice(at + 1)], false).catch((e: unknown) => {
      if (!(e instanceof UsageError)) throw e
      err(`sagews chaos: ${e.message}\n\n${CHAOS_USAGE}`)
      return 2
    })
  }
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
  // --port and --role are config fields too, validated with the rest (a bad --role names the value it got)
  const overrides = {
    ...(values.port !== undefined ? { port: intOption("port", values.port) } : {}),
    ...(values.role !== undefined ? { role: values.role } : {}),
  }
  const config = () => loadConfig({ file: configFile, overrides })
  const expectArgs = (n: number, what: string) => {
    if (rest.length !== n) throw new UsageError(`${command} expects ${what}, got ${rest.length === 0 ? "nothing" : JSON.stringify(rest.join(" "))}`)
  }

  switch (command) {
    case "init": {
      expectArgs(0, "no arguments")
      const c = config()
      if (values.join !== undefined) {
        const info = await joinDataDir(dataDir, { token: values.join, role: values.role, address: c.address, host: c.host })
        out(`sagews: data directory ${paths.data} joined the cluster of ${info.store.address}:${info.store.port} as ${info.roles.join(",")} (token ${info.tokenId})`)
        if (c.address === "127.0.0.1") err("sagews: note: address is 127.0.0.1, so other hosts cannot reach this one's components; set address (or SAGEWS_ADDRESS) to its IP and run init again")
        out(`then: sagews start --role ${info.roles.join(",")} --data ${paths.data}`)
        return 0
      }
      out(`sagews: data directory ${await initDataDir(dataDir, { address: c.address, host: c.host, dbPort: c.postgres.port })} is ready`)
      return 0
    }
    case "join-token": {
      expectArgs(0, "no arguments (--role, --list or --revoke ID)")
      const { joinTokenCommand } = await import("./jointoken.ts")
      const c = config()
      return joinTokenCommand({
        target: { dataDir: paths.data, address: c.address, port: c.postgres.port, listen: c.postgres.listen, externalUrl: c.postgres.url || undefined },
        role: values.role,
        list: values.list ?? false,
        revoke: values.revoke,
        json: values.json ?? false,
        out,
        err,
      })
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
      const sessions = await workerSessions(paths.data, rows.filter((r) => r.id.startsWith("worker:")).map((r) => r.id))
      const disk = (reply.disk ?? undefined) as DiskSpace | undefined
      if (values.json) {
        const components = rows.map((r) => (sessions.has(r.id) ? { ...r, sessions: sessions.get(r.id) } : r))
        out(JSON.stringify({ components, events: reply.events, isolation: reply.isolation, url: reply.url, disk: disk ?? null }))
      } else {
        const table = formatTable(rows, new Map([...sessions].map(([id, s]) => [id, sessionsLine(s)])))
        out(`${table}\n\n${reply.url as string}  (isolation: ${reply.isolation as string})${disk !== undefined ? `\n${diskLine(disk)}` : ""}`)
      }
      return 0
    }
    case "restart": {
      expectArgs(1, "one component id, such as worker:1")
      const reply = await callControl(paths.control, { cmd: "restart", id: rest[0]! })
      if (!reply.ok) throw new Error(reply.error)
      out(`sagews: ${rest[0]} restarted`)
      return 0
    }
    case "sessions": {
      expectArgs(0, "no arguments")
      return sessionsCommand({ dataDir: paths.data, json: values.json ?? false, out, err })
    }
    case "kill": {
      expectArgs(1, "one session id, as `sagews sessions` lists them")
      return killCommand({ dataDir: paths.data, session: rest[0]!, out, err })
    }
    case "logs": {
      if (rest.length > 1) throw new UsageError(`logs takes at most one component id, got ${JSON.stringify(rest.join(" "))}`)
      const abort = new AbortController()
      process.once("SIGINT", () => abort.abort())
      const { postgres } = config()
      await showLogs(await serviceUrl(dataDir, { port: postgres.port, url: postgres.url || undefined }), { id: rest[0], sinceSeconds: parseSince(values.since ?? "10m"), follow: values.follow ?? false, out, signal: abort.signal })
      return 0
    }
    case "user": {
      const { userCommand, readStdin } = await import("./users.ts")
      const { postgres } = config()
      return userCommand({ dbUrl: () => serviceUrl(dataDir, { port: postgres.port, url: postgres.url || undefined }), args: rest, json: values.json ?? false, out, err, readStdin })
    }
    case "eval": {
      expectArgs(1, "the code to run, as one argument")
      const { evalCommand } = await import("./eval.ts")
      return evalCommand({ url: frontUrl(config()), code: rest[0]!, kernel: values.kernel ?? "sage", json: values.json ?? false, out, err })
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
