// Readiness and liveness probes: tcp connect, http GET 2xx, banner (>= 1 byte from a port or unix socket),
// custom Effects. Each attempt has a deadline and fails with a message that says what did not answer.
import { request } from "node:http"
import { createConnection, type Socket } from "node:net"
import { Effect } from "effect"
import type { Probe } from "./process.ts"

const DEFAULT_HOST = "127.0.0.1"

/** Runs one attempt of `probe`, failing with a readable message if it is not healthy within `timeoutMs`. */
export const checkProbe = (probe: Probe, timeoutMs: number): Effect.Effect<void, string> =>
  attempt(probe).pipe(
    Effect.timeoutOrElse({
      duration: timeoutMs,
      orElse: () => Effect.fail(`${describeProbe(probe)}: no answer within ${timeoutMs} ms`),
    }),
  )

/** A short name of the probe for messages: `tcp 127.0.0.1:5432`, `http GET http://127.0.0.1:8080/healthz`. */
export const describeProbe = (probe: Probe): string => {
  switch (probe._tag) {
    case "tcp":
      return `tcp ${probe.host ?? DEFAULT_HOST}:${probe.port}`
    case "http":
      return `http GET http://${probe.host ?? DEFAULT_HOST}:${probe.port}${probe.path}`
    case "banner":
      return `banner ${probe.path ?? `${DEFAULT_HOST}:${probe.port}`}`
    case "line":
      return `line ${probe.pattern}`
    case "custom":
      return "custom probe"
  }
}

const attempt = (probe: Probe): Effect.Effect<void, string> => {
  switch (probe._tag) {
    case "tcp":
      return tcpConnect(probe.port, probe.host ?? DEFAULT_HOST)
    case "http":
      return httpGet(probe.port, probe.path, probe.host ?? DEFAULT_HOST)
    case "banner":
      return banner(probe)
    case "line":
      return Effect.fail(`${describeProbe(probe)}: a line probe watches the child's output and works only for readiness`)
    case "custom":
      return probe.check
  }
}

/** Succeeds once a TCP connection to host:port is established. */
export const tcpConnect = (port: number, host: string = DEFAULT_HOST): Effect.Effect<void, string> =>
  withSocket(
    () => createConnection({ port, host }),
    (socket, done) => socket.once("connect", () => done(undefined)),
    `tcp ${host}:${port}`,
  )

/** Connects (TCP port or unix socket path) and succeeds once at least one byte arrives. */
export const banner = (target: { readonly port?: number; readonly path?: string }): Effect.Effect<void, string> => {
  const name = `banner ${target.path ?? `${DEFAULT_HOST}:${target.port}`}`
  if (target.path === undefined && target.port === undefined) return Effect.fail(`${name}: neither port nor path given`)
  return withSocket(
    () => target.path !== undefined ? createConnection({ path: target.path }) : createConnection({ port: target.port ?? 0, host: DEFAULT_HOST }),
    (socket, done) => {
      socket.once("data", () => done(undefined))
      socket.once("end", () => done("connection closed before any byte arrived"))
    },
    name,
  )
}

/** GET http://host:port/path; succeeds on a 2xx answer. */
export const httpGet = (port: number, path: string, host: string = DEFAULT_HOST): Effect.Effect<void, string> =>
  Effect.callback<void, string>((resume) => {
    const url = `http://${host}:${port}${path}`
    const req = request({ host, port, path, method: "GET", agent: false }, (res) => {
      const status = res.statusCode ?? 0
      res.resume()
      res.on("error", () => {})
      req.destroy()
      if (status >= 200 && status < 300) resume(Effect.void)
      else resume(Effect.fail(`http GET ${url}: status ${status}, expected 2xx`))
    })
    req.on("error", (error) => resume(Effect.fail(`http GET ${url}: ${error.message}`)))
    req.end()
    return Effect.sync(() => req.destroy())
  })

/**
 * Opens a socket, waits for `wait` to call `done` (undefined = healthy, a string = what went wrong) or for
 * an error, and always destroys the socket: on success, failure and interruption (the probe's timeout).
 */
const withSocket = (
  open: () => Socket,
  wait: (socket: Socket, done: (failure: string | undefined) => void) => void,
  name: string,
): Effect.Effect<void, string> =>
  Effect.callback<void, string>((resume) => {
    const socket = open()
    const done = (failure: string | undefined) => {
      socket.destroy()
      resume(failure === undefined ? Effect.void : Effect.fail(`${name}: ${failure}`))
    }
    socket.on("error", (error) => done(error.message))
    wait(socket, done)
    return Effect.sync(() => socket.destroy())
  })
