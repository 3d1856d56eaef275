// One pass over one haproxy: its dynamic servers (`show servers state`) made equal to the wanted remote backends in
// every section that serves backends, through the runtime API (add, enable, disable, shut down, delete), no reload.
import { Effect } from "effect"
import { BACKEND_SECTIONS, SERVER_OPTIONS } from "../../actors/haproxy.ts"
import { FORCED_MAINT, HaproxyRuntimeError, parseServersState, runtimeCommand, type ServerState } from "../../actors/haproxycli.ts"
import { DYNAMIC_PREFIX, dynamicServerName, formatAddress, parseAddress, type ServerAddress, serverIdOf } from "./names.ts"
import type { LiveBackend } from "./registry.ts"

/** A remote backend as haproxy is to serve it. */
export interface WantedServer {
  readonly backendId: string
  readonly name: string
  readonly id: number
  readonly address: ServerAddress
}

/** The registry's backends as servers; one whose address haproxy cannot use is left out, with the reason. */
export const wantedServers = (backends: ReadonlyArray<LiveBackend>) => {
  const servers: Array<WantedServer> = []
  const invalid: Array<string> = []
  for (const b of backends) {
    const address = parseAddress(b.address)
    if (typeof address === "string") invalid.push(`backend ${b.id}: ${address}`)
    else servers.push({ backendId: b.id, name: dynamicServerName(b.id), id: serverIdOf(b.id), address })
  }
  return { servers, invalid }
}

/** What one pass changed, and each command haproxy refused (the rest of the pass went on). */
export interface PassResult {
  /** `section/server` added, or removed */
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly enabled: ReadonlyArray<string>
  readonly errors: ReadonlyArray<HaproxyRuntimeError>
}

const isEmpty = (answer: string) => answer === ""

/** `disable server` and its kin answer nothing when they succeed. */
const quiet = (socket: string, command: string) => runtimeCommand(socket, command, isEmpty)

const enable = (socket: string, server: string) =>
  Effect.andThen(quiet(socket, `enable health ${server}`), quiet(socket, `enable server ${server}`))

const add = (socket: string, section: string, w: WantedServer) =>
  Effect.andThen(
    runtimeCommand(
      socket,
      `add server ${section}/${w.name} ${formatAddress(w.address)} check id ${w.id} ${SERVER_OPTIONS}`,
      (answer) => answer === "New server registered.",
    ),
    enable(socket, `${section}/${w.name}`),
  )

/** Out of service (no new request), its connections cut (its backend is gone), then deleted. */
const remove = (socket: string, server: string) =>
  Effect.andThen(
    Effect.andThen(quiet(socket, `disable server ${server}`), quiet(socket, `shutdown sessions server ${server}`)),
    runtimeCommand(socket, `del server ${server}`, (answer) => answer === "Server deleted."),
  )

const sameServer = (s: ServerState, w: WantedServer): boolean =>
  s.address === w.address.host && s.port === w.address.port && s.id === w.id

/** haproxy's servers now; fails when it does not answer (stopped, restarting) or answers something unexpected. */
export const serversState = (socket: string): Effect.Effect<ReadonlyArray<ServerState>, HaproxyRuntimeError> =>
  runtimeCommand(socket, "show servers state", (answer) => answer.startsWith("1")).pipe(
    Effect.flatMap((answer) => {
      const parsed = parseServersState(answer)
      return parsed === undefined
        ? Effect.fail(new HaproxyRuntimeError({
          reason: "refused",
          command: "show servers state",
          answer,
          message: `haproxy's "show servers state" answer is not format 1: ${JSON.stringify(answer.slice(0, 200))}`,
        }))
        : Effect.succeed(parsed)
    }),
  )

/**
 * Makes the dynamic servers of `socket`'s haproxy equal to `wanted` in every section of BACKEND_SECTIONS. Static
 * servers (without DYNAMIC_PREFIX) are never touched. A server whose address or id changed is deleted and added
 * again; one left in maintenance by an earlier pass that failed half-way is enabled. Fails only when haproxy's
 * servers cannot be read; a refused command is in `errors` and the next pass tries again.
 */
export const applyServers = (
  socket: string,
  wanted: ReadonlyArray<WantedServer>,
): Effect.Effect<PassResult, HaproxyRuntimeError> =>
  Effect.gen(function*() {
    const state = yield* serversState(socket)
    const added: Array<string> = []
    const removed: Array<string> = []
    const enabled: Array<string> = []
    const errors: Array<HaproxyRuntimeError> = []
    const step = (done: Array<string>, server: string, effect: Effect.Effect<unknown, HaproxyRuntimeError>) =>
      Effect.match(effect, {
        onFailure: (e) => void errors.push(e),
        onSuccess: () => void done.push(server),
      })
    const byName = new Map(wanted.map((w) => [w.name, w]))
    for (const section of BACKEND_SECTIONS) {
      const present = new Map(
        state.filter((s) => s.backend === section && s.name.startsWith(DYNAMIC_PREFIX)).map((s) => [s.name, s]),
      )
      for (const s of present.values()) {
        const w = byName.get(s.name)
        if (w !== undefined && sameServer(s, w)) continue
        yield* step(removed, `${section}/${s.name}`, remove(socket, `${section}/${s.name}`))
      }
      for (const w of wanted) {
        const s = present.get(w.name)
        if (s === undefined || !sameServer(s, w)) {
          // a server still there (its delete was refused: connections left) is added on a later pass
          if (s !== undefined && removed.includes(`${section}/${s.name}`) === false) continue
          yield* step(added, `${section}/${w.name}`, add(socket, section, w))
        } else if ((s.adminState & FORCED_MAINT) !== 0) {
          yield* step(enabled, `${section}/${w.name}`, enable(socket, `${section}/${w.name}`))
        }
      }
    }
    return { added, removed, enabled, errors }
  })
