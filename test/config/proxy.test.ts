// haproxy's timeouts and retries against the limits they must let answer first (issue 9), on the shipped template
// rendered as the haproxy actor renders it: no retry re-sends a request that reached a live backend, /api waits longer
// than the longest stateless run, a WebSocket longer than a session's longest silence, raw WebSockets are balanced.
import { readFile } from "node:fs/promises"
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { HAPROXY_TEMPLATE, haproxyValues } from "../../actors/haproxy.ts"
import { BACKEND_DEFAULTS } from "../../src/backend/options.ts"
import { loadConfig } from "../../src/config/load.ts"
import { invalidTimeouts, PROXY_MARGIN_MS, proxyTimeouts } from "../../src/config/proxy.ts"
import { renderTemplate } from "../../src/config/render.ts"

/** The rendered config as sections ("defaults", "backend be_app", ...), each its directive lines, comments dropped. */
const sections = (text: string): Map<string, Array<string>> => {
  const out = new Map<string, Array<string>>()
  let current: Array<string> = []
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.trim().startsWith("#")) continue
    if (!line.startsWith(" ")) out.set(line.trim(), (current = []))
    else current.push(line.trim())
  }
  return out
}

/** `timeout <name>` of a section, in ms (haproxy's units: ms, s, m, h; none = ms). */
const timeoutMs = (lines: ReadonlyArray<string> | undefined, name: string): number | undefined => {
  const m = lines?.map((l) => l.match(new RegExp(`^timeout ${name} (\\d+)(ms|s|m|h)?$`))).find((x) => x !== null)
  if (m === undefined || m === null) return undefined
  return Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? "ms"]!
}

const rendered = async () => {
  const config = loadConfig({ env: {} })
  const timeouts = proxyTimeouts(config)
  const options = { dataDir: "/d", port: 8080, bind: "127.0.0.1", nginxPort: 8079, backends: [{ name: "b1", port: 8090 }, { name: "b2", port: 8091 }] }
  const text = await Effect.runPromise(renderTemplate(await readFile(HAPROXY_TEMPLATE, "utf8"), haproxyValues(options, timeouts)))
  return { config, timeouts, text, conf: sections(text) }
}

describe("haproxy's timeouts and retries", () => {
  it("derives the /api timeout from the stateless wall limit and the tunnel from the session limits, plus a margin", () => {
    const sessions = { wallSeconds: 14_400, idleSeconds: 1_800, execSeconds: 600 }
    expect(proxyTimeouts({ sessions }, { wall: 60, exec: 30 })).toEqual({ api: 60_000 + PROXY_MARGIN_MS, tunnel: 1_800_000 + PROXY_MARGIN_MS })
    // the worker's limits cap a stateless run's too; a long exec limit is a long silence on a session's connection
    expect(proxyTimeouts({ sessions: { wallSeconds: 20, idleSeconds: 60, execSeconds: 900 } }, { wall: 60, exec: 30 }, 1_000)).toEqual({ api: 21_000, tunnel: 901_000 })
    expect(invalidTimeouts({ api: 0, tunnel: 1 })).toBe("proxy timeout api = 0: expected whole milliseconds >= 1")
    expect(invalidTimeouts({ api: 1, tunnel: 1.5 })).toContain("tunnel = 1.5")
    expect(invalidTimeouts({ api: 1, tunnel: 1 })).toBeUndefined()
  })

  it("retries a connection that could not be made; only /api (keyed by X-Request-Id) also a backend that died unanswering; never a timeout", async () => {
    const { conf } = await rendered()
    const retryOn = (section: string) => (conf.get(section) ?? []).filter((l) => l.startsWith("retry-on"))
    expect(retryOn("defaults")).toEqual(["retry-on conn-failure"])
    for (const be of ["backend be_sockjs", "backend be_websocket", "backend be_static"]) expect(retryOn(be)).toEqual([])
    expect(retryOn("backend be_app")).toEqual(["retry-on conn-failure empty-response"])
    expect(conf.get("backend be_app")).toContain("http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }")
  })

  it("waits on /api longer than the longest stateless run, and answers its own errors in JSON", async () => {
    const { conf, timeouts } = await rendered()
    const app = conf.get("backend be_app")
    const wall = BACKEND_DEFAULTS.statelessLimits.wall * 1_000
    expect(timeoutMs(app, "server")).toBe(timeouts.api)
    expect(timeouts.api).toBeGreaterThan(wall)
    for (const status of [502, 503, 504]) {
      const line = app?.find((l) => l.startsWith(`http-error status ${status} `)) ?? ""
      expect(line).toContain("content-type application/json")
      const body = JSON.parse(JSON.parse(line.match(/ string (".*?[^\\]")/)?.[1] ?? "null") as string) as { error: string }
      expect(body.error).toBe("failed")
    }
    expect(app?.find((l) => l.startsWith("http-error status 504 "))).toContain(`within ${timeouts.api / 1000} s`)
  })

  it("keeps a WebSocket open longer than a session's idle and exec limits", async () => {
    const { conf, timeouts, config } = await rendered()
    expect(timeoutMs(conf.get("defaults"), "tunnel")).toBe(timeouts.tunnel)
    expect(timeouts.tunnel).toBeGreaterThan(Math.max(config.sessions.idleSeconds, config.sessions.execSeconds) * 1_000)
  })

  it("sends the raw WebSocket to a balanced backend and SockJS's session URLs to the sticky one", async () => {
    const { conf } = await rendered()
    const front = conf.get("frontend fe_http") ?? []
    expect(front).toContain("acl to_websocket path /sockjs/websocket /sockjs/websocket/")
    expect(front.indexOf("use_backend be_websocket if to_websocket")).toBeLessThan(front.indexOf("use_backend be_sockjs if to_sockjs"))
    expect(conf.get("backend be_websocket")).toContain("balance leastconn")
    expect(conf.get("backend be_websocket")?.filter((l) => l.startsWith("server "))).toHaveLength(2)
    expect(conf.get("backend be_sockjs")).toContain("balance uri depth 3")
  })
})
