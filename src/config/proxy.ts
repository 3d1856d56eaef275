// How long haproxy waits on a backend, derived from the limits the backends and workers enforce themselves: every
// limit must end a request with sagews's own JSON answer (status `limit`, an `ended`) before haproxy gives up on it.
import { BACKEND_DEFAULTS } from "../backend/options.ts"
import type { Config } from "./schema.ts"

export interface ProxyTimeouts {
  /** ms haproxy waits for the answer to an /api request (be_app's `timeout server`): the longest stateless run, plus the margin */
  readonly api: number
  /** ms an upgraded connection (a WebSocket) may stay silent (`timeout tunnel`): the longest silence of a live session, plus the margin */
  readonly tunnel: number
}

/** seconds: the limits of a stateless run (the backend's `statelessLimits`) */
export interface StatelessLimits {
  readonly wall: number
  readonly exec: number
}

/**
 * Added to a limit so that the answer to it arrives before haproxy's timeout: a limit escalates SIGINT, SIGQUIT,
 * SIGKILL 500 ms apart and the session's cgroup is emptied before `ended` is sent; a run may wait for a kernel first.
 */
export const PROXY_MARGIN_MS = 10_000

/**
 * The timeouts that let every limit answer first. A stateless run (`POST /api/v1/execute`) lasts at most its wall
 * limit, the backend's and the worker's whichever is lower. A session's connection is silent at most as long as one
 * execution without output (exec) or its idle time (then `ended` comes); SockJS's own transports send heartbeats.
 */
export const proxyTimeouts = (
  config: { readonly sessions: Pick<Config["sessions"], "wallSeconds" | "idleSeconds" | "execSeconds"> },
  stateless: StatelessLimits = BACKEND_DEFAULTS.statelessLimits,
  marginMs: number = PROXY_MARGIN_MS,
): ProxyTimeouts => ({
  api: Math.ceil(Math.min(stateless.wall, config.sessions.wallSeconds) * 1000 + marginMs),
  tunnel: Math.ceil(Math.max(config.sessions.idleSeconds, config.sessions.execSeconds) * 1000 + marginMs),
})

/** A timeout that is not a whole positive number of ms, named by its field; else undefined. */
export const invalidTimeouts = (timeouts: ProxyTimeouts): string | undefined => {
  for (const [field, ms] of Object.entries(timeouts)) {
    if (!Number.isInteger(ms) || ms < 1) return `proxy timeout ${field} = ${JSON.stringify(ms)}: expected whole milliseconds >= 1`
  }
  return undefined
}
