// haproxy's CLI sockets (the master CLI and the runtime API): one command, one answer; a runtime command whose
// answer is haproxy's refusal as a tagged error; `show proc` and `show servers state` parsed.
import net from "node:net"
import { Data, Effect } from "effect"

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


/** A runtime API command that haproxy refused (its words in `answer`), or a socket that did not answer. */
export class HaproxyRuntimeError extends Data.TaggedError("HaproxyRuntimeError")<{
  readonly reason: "unreachable" | "refused"
  readonly command: string
  /** haproxy's answer, or what went wrong with the socket */
  readonly answer: string
  readonly message: string
}> {}

/**
 * Sends `command` to the runtime API and passes its answer when `accepted` says it is a success: haproxy answers a
 * refusal in plain words on the same socket (`No such server.`), so every caller says what success looks like.
 */
export const runtimeCommand = (
  socketPath: string,
  command: string,
  accepted: (answer: string) => boolean,
): Effect.Effect<string, HaproxyRuntimeError> =>
  haproxyCommand(socketPath, command).pipe(
    Effect.mapError((answer) =>
      new HaproxyRuntimeError({ reason: "unreachable", command, answer, message: `haproxy runtime API, "${command}": ${answer}` })
    ),
    Effect.flatMap((answer) =>
      accepted(answer.trim())
        ? Effect.succeed(answer)
        : Effect.fail(new HaproxyRuntimeError({
          reason: "refused",
          command,
          answer: answer.trim(),
          message: `haproxy refused "${command}": ${answer.trim() === "" ? "(an empty answer)" : answer.trim()}`,
        }))
    ),
  )

/** A server as `show servers state` lists it. */
export interface ServerState {
  readonly backend: string
  readonly name: string
  readonly id: number
  readonly address: string
  readonly port: number
  /** srv_admin_state: 0x01 forced maintenance (`disable server`), 0x08 forced drain, ... */
  readonly adminState: number
}

/** srv_admin_state's flag of a server put in maintenance through the runtime API (or added, and not enabled yet). */
export const FORCED_MAINT = 0x01

/** Format 1 of `show servers state`: a version line, a `#` header, then one line of space-separated fields a server. */
export const parseServersState = (text: string): ReadonlyArray<ServerState> | undefined => {
  const lines = text.split("\n")
  if (lines[0]?.trim() !== "1") return undefined
  const servers: Array<ServerState> = []
  for (const line of lines.slice(1)) {
    if (line.startsWith("#") || line.trim() === "") continue
    const f = line.trim().split(" ")
    // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ... srv_port (the 19th)
    if (f.length < 19) return undefined
    servers.push({ backend: f[1]!, id: Number(f[2]), name: f[3]!, address: f[4]!, adminState: Number(f[6]), port: Number(f[18]) })
  }
  return servers
}
