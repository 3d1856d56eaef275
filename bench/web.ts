// The web path's numbers: warm execution round trip through haproxy + SockJS (p50, p99), a new session's first
// result against a cold `import sage.all`, cached HTTP executions per second, idle SockJS connections and their memory.
import { execFile } from "node:child_process"
import { Agent, request } from "node:http"
import { SagewsClient } from "../src/client/connection.ts"
import { startWebStack, type WebStack } from "../test/web/harness.ts"

const WARM_ROUNDS = 300
const HTTP_SECONDS = 3
const HTTP_CONCURRENCY = 32
const IDLE_CONNECTIONS = 1_000

const percentile = (sorted: ReadonlyArray<number>, p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits

const warmRoundTrip = async (stack: WebStack): Promise<Record<string, number>> => {
  const client = new SagewsClient(`${stack.frontUrl()}/sockjs`, { transports: ["websocket"] })
  try {
    const session = await client.open("python")
    for (let i = 0; i < 20; i++) await session.execute("1+1")
    const times: Array<number> = []
    for (let i = 0; i < WARM_ROUNDS; i++) {
      const started = performance.now()
      await session.execute("1+1")
      times.push(performance.now() - started)
    }
    times.sort((a, b) => a - b)
    const pings: Array<number> = []
    for (let i = 0; i < 200; i++) {
      const started = performance.now()
      await client.ping()
      pings.push(performance.now() - started)
    }
    pings.sort((a, b) => a - b)
    session.close()
    return { warm_exec_p50_ms: round(percentile(times, 50)), warm_exec_p99_ms: round(percentile(times, 99)), sockjs_ping_p50_ms: round(percentile(pings, 50)) }
  } finally {
    client.close()
  }
}

const firstResult = async (stack: WebStack): Promise<Record<string, number>> => {
  const client = new SagewsClient(`${stack.frontUrl()}/sockjs`, { transports: ["websocket"] })
  try {
    // the first Sage session after start also pays for the forkserver's pool refill: measure a later one
    const warm = await client.open("sage")
    await warm.execute("1")
    warm.close()
    await new Promise((r) => setTimeout(r, 1_000))
    const started = performance.now()
    const session = await client.open("sage")
    await session.execute("factor(2^64-1)")
    const firstMs = performance.now() - started
    session.close()
    const coldStarted = performance.now()
    await new Promise<void>((resolve, reject) =>
      execFile("/usr/bin/python3", ["-c", "import sage.all; print(sage.all.factor(2**64-1))"], (error) => (error ? reject(error) : resolve())),
    )
    const coldMs = performance.now() - coldStarted
    return { sage_session_first_result_ms: round(firstMs, 1), sage_cold_start_ms: round(coldMs, 1), sage_speedup_x: round(coldMs / firstMs, 1) }
  } finally {
    client.close()
  }
}

/** POST over a keep-alive agent (fetch costs the client more CPU than the server it measures) */
const post = (agent: Agent, port: number, body: string): Promise<{ cached?: boolean; status?: string }> =>
  new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/api/v1/execute", method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
      let data = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (data += chunk))
      res.on("end", () => resolve(JSON.parse(data) as { cached?: boolean; status?: string }))
    })
    req.on("error", reject)
    req.end(body)
  })

const cachedHttp = async (stack: WebStack): Promise<Record<string, number>> => {
  const agent = new Agent({ keepAlive: true, maxSockets: HTTP_CONCURRENCY })
  const port = stack.frontPort ?? 0
  const body = JSON.stringify({ kernel: "python", code: "print(sum(range(10)))  # bench" })
  const first = await post(agent, port, body)
  if (first.status !== "ok") throw new Error(`the warm-up execution failed: ${JSON.stringify(first)}`)
  let done = 0
  let cached = 0
  const deadline = performance.now() + HTTP_SECONDS * 1_000
  const started = performance.now()
  await Promise.all(Array.from({ length: HTTP_CONCURRENCY }, async () => {
    while (performance.now() < deadline) {
      const reply = await post(agent, port, body)
      done++
      if (reply.cached === true) cached++
    }
  }))
  agent.destroy()
  const seconds = (performance.now() - started) / 1_000
  return { cached_http_exec_per_s: Math.round(done / seconds), cached_http_hit_ratio: round(cached / done, 3) }
}

const idleConnections = async (stack: WebStack): Promise<Record<string, number>> => {
  const status = async (): Promise<{ connections: number; memory: { rss: number; heapUsed: number } }> =>
    (await (await fetch(`${stack.backendUrl(0)}/api/v1/status`)).json()) as { connections: number; memory: { rss: number; heapUsed: number } }
  const before = await status()
  const sockets: Array<WebSocket> = []
  const url = `ws://127.0.0.1:${stack.backends[0]?.port ?? 0}/sockjs/${Math.floor(Math.random() * 999)}/`
  for (let i = 0; i < IDLE_CONNECTIONS; i++) {
    const ws = new WebSocket(`${url}b${i}${Math.random().toString(36).slice(2, 8)}/websocket`)
    sockets.push(ws)
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 50))
  }
  const deadline = Date.now() + 30_000
  let after = await status()
  while (after.connections < before.connections + IDLE_CONNECTIONS && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200))
    after = await status()
  }
  const opened = after.connections - before.connections
  for (const ws of sockets) ws.close()
  return {
    idle_sockjs_connections: opened,
    idle_sockjs_rss_kib_per_conn: round((after.memory.rss - before.memory.rss) / 1024 / Math.max(1, opened), 1),
    idle_sockjs_backend_rss_mib: round(after.memory.rss / 1024 / 1024, 1),
  }
}

export async function benchWeb(): Promise<Record<string, number>> {
  const stack = await startWebStack({ backends: 2, kernels: ["python", "sage"], cache: true, haproxy: true })
  try {
    return {
      ...(await warmRoundTrip(stack)),
      ...(await firstResult(stack)),
      ...(await cachedHttp(stack)),
      ...(await idleConnections(stack)),
    }
  } finally {
    await stack.stop()
  }
}

if (import.meta.main) console.log(await benchWeb())
