// haproxy's CLI sockets (the master CLI and the runtime API): one command, one answer; `show proc` parsed.
import net from "node:net"
import { Effect } from "effect"

/** One master CLI round trip takes ~1 ms; this only bounds a hung master. */
export const CLI_TIMEOUT_MS = 1_000

/**
 * Sends one command to a haproxy CLI socket (master CLI or runtime API) and returns the whole answer.
 * The master CLI answers only after the client half-closes, so the command goes out with `end`.
 */
export const haproxyCommand = (socketPath: string, command: string, timeoutMs = CLI_TIMEOUT_MS) =>
  Effect.callback<string, string>((resume) => {
    let answer = ""
    const socket = net.connect(socketPath)
    const done = (result: Effect.Effect<string, string>) => {
      clearTimeout(timer)
      socket.destroy()
      resume(result)
    }
    const timer = setTimeout(
      () => done(Effect.fail(`haproxy did not answer "${command}" on ${socketPath} within ${timeoutMs} ms`)),
      timeoutMs,
    )
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.end(`${command}\n`))
    socket.on("data", (chunk: string) => (answer += chunk))
    socket.on("end", () => done(Effect.succeed(answer)))
    socket.on("error", (e) => done(Effect.fail(`haproxy socket ${socketPath}: ${e.message}`)))
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

export interface ProcList {
  readonly master: number
  /** failed reloads the master counts (2.6: `0 [failed: N]` in its reloads column) */
  readonly failedReloads: number
  readonly workers: ReadonlyArray<number>
}

/** Parses the master CLI's `show proc`: the master line, then the pids under `# workers`. */
export const parseShowProc = (text: string): ProcList | undefined => {
  let master: number | undefined
  let failedReloads = 0
  const workers: Array<number> = []
  let section = ""
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) {
      section = line
      continue
    }
    const [pid, type] = line.trim().split(/\s+/)
    if (pid === undefined || type === undefined) continue
    if (type === "master") {
      master = Number(pid)
      failedReloads = Number(/\[failed: (\d+)\]/.exec(line)?.[1] ?? 0)
    } else if (type === "worker" && section === "# workers") workers.push(Number(pid))
  }
  return master === undefined ? undefined : { master, failedReloads, workers }
}

