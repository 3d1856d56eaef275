// Remote backends in haproxy at run time (issue 12), against real haproxy and a real PostgreSQL: a backend that
// registers is served within a bound without a reload, one that stops or stops beating is taken out, a restarted
// haproxy gets them back, PostgreSQL down changes nothing haproxy serves, and two front doors serve every backend.
import { createServer, get } from "node:http"
import type { Socket } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Result, Schedule } from "effect"
import pg from "pg"
import { haproxyCommand, haproxyPaths, haproxySpec, reloadHaproxy, showProc } from "../../actors/haproxy.ts"
import { runtimeCommand } from "../../actors/haproxycli.ts"
import { groupGone } from "../../actors/procstat.ts"
import { dynamicServerName, parseAddress } from "../../src/front/names.ts"
import { BACKENDS_CHANNEL, STALE_AFTER } from "../../src/front/registry.ts"
import { haproxyServersChild } from "../../src/front/servers.ts"
import { leftoverProcesses, TestCluster } from "../logwatch/fixture.ts"
import { freePort, living, tempDir } from "./fixture.ts"

/** A registered backend is served (or a stopped one no longer) within this, NOTIFY to haproxy. */
const APPLY_BOUND = "3 seconds"
/** A restarted haproxy has its remote backends again within this of answering (one recheck, and a margin). */
const RESTORE_BOUND = "4 seconds"

/** A stand-in for a backend on another host: `/healthz`, and every other path answered with its name. */
const standIn = (name: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ name: string; port: number; address: string; hits: () => number; checks: () => number; close: () => void }>((resolve) => {
        let hits = 0
        let checks = 0
        const sockets = new Set<Socket>()
        const server = createServer((req, res) => {
          if (req.url === "/healthz") checks++
          else hits++
          res.setHeader("content-type", "text/plain")
          res.end(req.url === "/healthz" ? "ok" : `${name} ${req.url}`)
        })
        server.on("connection", (s) => {
          sockets.add(s)
          s.on("error", () => {})
          s.on("close", () => sockets.delete(s))
        })
        server.on("error", () => {})
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          const port = typeof address === "object" && address !== null ? address.port : 0
          resolve({
            name, port, address: `127.0.0.1:${port}`, hits: () => hits, checks: () => checks,
            close: () => (server.close(), sockets.forEach((s) => s.destroy())),
          })
        })
      })
    ),
    (b) => Effect.sync(() => b.close()),
  )

/** Which backend answered `path` (the first word of its answer); fails on anything but a 200. */
const servedBy = (port: number, path: string, cookie?: string) =>
  Effect.callback<string, string>((resume) => {
    const req = get({ host: "127.0.0.1", port, path, agent: false, headers: cookie === undefined ? {} : { cookie } }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () =>
        resume(res.statusCode === 200 ? Effect.succeed(body.split(" ")[0]!) : Effect.fail(`${path}: ${res.statusCode} ${body}`)))
    })
    req.on("error", (e) => resume(Effect.fail(`${path}: ${e.message}`)))
  })

/** The backends `n` requests of `path` reached. */
const spread = (port: number, path: string, n = 8) =>
  Effect.gen(function*() {
    const seen = new Set<string>()
    for (let i = 0; i < n; i++) seen.add(yield* servedBy(port, path))
    return seen
  })

/** Retries `check` until it succeeds, failing with its last error after `bound`. */
const within = <A>(bound: Duration.Input, what: string, check: Effect.Effect<A, string>) =>
  check.pipe(
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeoutOrElse({ duration: bound, orElse: () => Effect.fail(`${what}: not within ${String(bound)}`) }),
  )

const expectServed = (port: number, name: string) => (seen: ReadonlySet<string>) =>
  seen.has(name) ? Effect.succeed(seen) : Effect.fail(`${name} not among ${[...seen].join(", ")} through :${port}`)

/**
 * A PostgreSQL with the registry table (migration 3, plus migration 10's columns where it is not there yet), and a
 * heartbeat for the backends in `beating`, as the backends themselves would send every ~2 s.
 */
const registry = Effect.gen(function*() {
  const dir = yield* tempDir("sagews-dyn-pg-")
  const cluster = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const c = await TestCluster.create(dir)
      await c.start()
      return c
    }),
    (c) =>
      Effect.promise(async () => {
        await c.stop()
        assert.deepStrictEqual(await leftoverProcesses(dir), [], "PostgreSQL left running")
      }),
  )
  const sql = (text: string, params: ReadonlyArray<unknown> = [], url = cluster.url) =>
    Effect.tryPromise(async () => {
      const client = new pg.Client({ connectionString: url })
      client.on("error", () => {})
      await client.connect()
      try {
        await client.query(text, [...params])
      } finally {
        await client.end()
      }
    })
  yield* sql(
    `ALTER TABLE backends ADD COLUMN IF NOT EXISTS host text, ADD COLUMN IF NOT EXISTS address text,
       ADD COLUMN IF NOT EXISTS stopped_at timestamptz`,
    [],
    cluster.superuserUrl,
  )
  const notify = (type: "up" | "down", id: string) =>
    sql("SELECT pg_notify($1, $2)", [BACKENDS_CHANNEL, JSON.stringify({ type, id })])
  const beating = new Set<string>()
  // a beat that fails (PostgreSQL down) is tried again a second later, as a backend does
  const beat = Effect.suspend(() => (beating.size === 0 ? Effect.void : sql("UPDATE backends SET seen_at = now() WHERE id = ANY($1)", [[...beating]])))
  yield* Effect.forkScoped(Effect.repeat(Effect.ignore(beat), Schedule.spaced("1 second")))
  return {
    cluster,
    /** registers `id` at `address` (as a backend does when it starts) and keeps its heartbeat going */
    up: (id: string, address: string) =>
      Effect.andThen(
        sql(
          `INSERT INTO backends (id, host, address, seen_at) VALUES ($1, 'other', $2, now())
           ON CONFLICT (id) DO UPDATE SET address = $2, seen_at = now(), stopped_at = NULL`,
          [id, address],
        ),
        Effect.andThen(Effect.sync(() => beating.add(id)), notify("up", id)),
      ),
    /** a clean stop: `stopped_at` and a NOTIFY */
    down: (id: string) =>
      Effect.andThen(
        Effect.sync(() => beating.delete(id)),
        Effect.andThen(sql("UPDATE backends SET stopped_at = now() WHERE id = $1", [id]), notify("down", id)),
      ),
    /** the host died: no more heartbeat, and nobody to say so */
    silence: (id: string) => Effect.sync(() => void beating.delete(id)),
  }
})

/** haproxy with one local backend as its static server, in a temp data dir, and the servers child beside it. */
const frontDoor = (local: { readonly id: string; readonly port: number }, dbUrl: string) =>
  Effect.gen(function*() {
    const dir = yield* tempDir("sagews-dyn-")
    yield* Effect.addFinalizer(() => Effect.sync(() => assert.deepStrictEqual(living(dir), [], "haproxy left running")))
    const port = yield* freePort
    const pids: Array<number> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => pids.forEach((pid) => assert.isTrue(groupGone(pid), `haproxy group ${pid} left`))))
    // nothing listens on nginx's port: be_static is down, and nothing here asks it
    const spec = haproxySpec({ dataDir: dir, port, bind: "127.0.0.1", nginxPort: yield* freePort, backends: [{ name: "b1", port: local.port, key: local.id }] })
    const start = Effect.tap(spec.start, (r) => Effect.sync(() => pids.push(r.pid ?? 0)))
    const haproxy = yield* start
    yield* haproxyServersChild({ dataDir: dir, db: { port: 0, url: dbUrl }, local: [local.id] }).start
    return { dir, port, haproxy, start }
  })

const dynamicServers = (dir: string) =>
  haproxyCommand(haproxyPaths(dir).adminSocket, "show servers state").pipe(
    Effect.map((text) => text.split("\n").filter((l) => / dyn_/.test(l)).map((l) => `${l.split(" ")[1]}/${l.split(" ")[3]}`).sort()),
  )

describe("haproxy's remote backends", () => {
  it("names a backend id safely and never as a static server; refuses an address haproxy cannot use", () => {
    assert.strictEqual(dynamicServerName("backend:1@web2"), "dyn_backend:1_40web2")
    assert.notStrictEqual(dynamicServerName("a_40b"), dynamicServerName("a@b"))
    assert.deepStrictEqual(parseAddress("10.0.0.2:8081"), { host: "10.0.0.2", port: 8081 })
    assert.deepStrictEqual(parseAddress("[fd00::2]:8081"), { host: "fd00::2", port: 8081 })
    assert.include(parseAddress("web2:8081") as string, `"web2" is not an IP address`)
    assert.include(parseAddress("10.0.0.2:70000") as string, "port 70000")
    assert.include(parseAddress("10.0.0.2") as string, "is not host:port")
  })

  it.live("serves a backend that registers and stops serving one that stops or falls silent, without a reload", () =>
    Effect.gen(function*() {
      const reg = yield* registry
      const local = yield* standIn("backend:1")
      const remote = yield* standIn("backend:1@web2")
      const silent = yield* standIn("backend:2@web3")
      const door = yield* frontDoor({ id: "backend:1", port: local.port }, reg.cluster.url)
      const before = yield* showProc(door.dir)
      assert.deepStrictEqual(yield* spread(door.port, "/api/v1/status"), new Set(["backend:1"]))

      yield* reg.up(remote.name, remote.address)
      const started = Date.now()
      yield* within(APPLY_BOUND, "the registered backend served on /api", Effect.flatMap(spread(door.port, "/api/v1/status"), expectServed(door.port, remote.name)))
      const tookMs = Date.now() - started
      // every request of one SockJS session reaches one backend, and sessions are spread over both
      const sessions = new Set<string>()
      for (let i = 0; i < 16; i++) {
        const of = new Set<string>()
        for (const transport of ["xhr_streaming", "xhr_send", "xhr_send", "xhr"]) of.add(yield* servedBy(door.port, `/sockjs/000/s${i}/${transport}`))
        assert.strictEqual(of.size, 1, `session s${i} reached ${[...of].join(", ")}`)
        sessions.add([...of][0]!)
      }
      assert.deepStrictEqual(sessions, new Set(["backend:1", remote.name]), "SockJS sessions go to the remote backend too")
      // a client pinned by its cookie to this host's backend stays there
      for (let i = 0; i < 4; i++) assert.strictEqual(yield* servedBy(door.port, "/api/v1/status", "SRV=b1"), "backend:1")
      yield* within(APPLY_BOUND, "haproxy health-checks the remote backend", Effect.suspend(() => (remote.checks() > 0 ? Effect.void : Effect.fail("no check yet"))))

      // a clean stop: out within the bound, and no request (not even a health check) reaches it afterwards
      yield* reg.down(remote.name)
      yield* within(APPLY_BOUND, "the stopped backend removed", Effect.flatMap(dynamicServers(door.dir), (s) => (s.length === 0 ? Effect.void : Effect.fail(s.join(" ")))))
      const [hits, checks] = [remote.hits(), remote.checks()]
      assert.deepStrictEqual(yield* spread(door.port, "/api/v1/status", 12), new Set(["backend:1"]))
      for (let i = 0; i < 8; i++) assert.strictEqual(yield* servedBy(door.port, `/sockjs/000/s${i}/xhr`), "backend:1")
      yield* Effect.sleep("1 second")
      assert.deepStrictEqual([remote.hits(), remote.checks()], [hits, checks], "nothing reached the stopped backend")

      // a host that dies says nothing: its backend goes once its heartbeat is older than the staleness bound
      yield* reg.up(silent.name, silent.address)
      yield* within(APPLY_BOUND, "the second remote backend served", Effect.flatMap(spread(door.port, "/api/v1/status"), expectServed(door.port, silent.name)))
      yield* reg.silence(silent.name)
      yield* within("20 seconds", "the silent backend removed", Effect.flatMap(dynamicServers(door.dir), (s) => (s.length === 0 ? Effect.void : Effect.fail(s.join(" ")))))
      assert.deepStrictEqual(yield* spread(door.port, "/api/v1/status", 12), new Set(["backend:1"]))

      assert.deepStrictEqual(yield* showProc(door.dir), before, "no reload: the same master and worker, no failed reload")
      // this host's own backend is a static server, never touched
      assert.deepStrictEqual(yield* spread(door.port, "/api/v1/status", 4), new Set(["backend:1"]))
      // a command haproxy refuses is an error that says the command and haproxy's words
      const refused = yield* Effect.result(runtimeCommand(haproxyPaths(door.dir).adminSocket, "del server be_app/dyn_nope", (a) => a === "Server deleted."))
      assert.isTrue(Result.isFailure(refused))
      if (Result.isFailure(refused)) assert.strictEqual(refused.failure.message, `haproxy refused "del server be_app/dyn_nope": No such server.`)
      yield* Effect.log(`remote backend served ${tookMs} ms after its NOTIFY; staleness bound ${String(STALE_AFTER)}`)
    }).pipe(Effect.scoped), 60_000)

  it.live("a haproxy restarted or reloaded gets its remote backends back, also while PostgreSQL is down", () =>
    Effect.gen(function*() {
      const reg = yield* registry
      const local = yield* standIn("backend:1")
      const remote = yield* standIn("backend:1@web2")
      const door = yield* frontDoor({ id: "backend:1", port: local.port }, reg.cluster.url)
      yield* reg.up(remote.name, remote.address)
      const served = Effect.flatMap(spread(door.port, "/api/v1/status"), expectServed(door.port, remote.name))
      yield* within(APPLY_BOUND, "the registered backend served", served)

      // a reload starts a worker from the config alone
      yield* reloadHaproxy(door.dir, [{ name: "b1", port: local.port, key: "backend:1" }])
      yield* within(RESTORE_BOUND, "the remote backend back after a reload", served)

      // PostgreSQL stops, longer than the staleness bound: haproxy keeps serving what it has, through several failed
      // reads of the registry
      yield* Effect.promise(() => reg.cluster.stop())
      const failures: Array<string> = []
      for (let i = 0; i < 16; i++) {
        const seen = yield* spread(door.port, "/api/v1/status", 4)
        if (!seen.has(remote.name)) failures.push(`${i}: ${[...seen].join(", ")}`)
        yield* Effect.sleep("500 millis")
      }
      assert.deepStrictEqual(failures, [], "the remote backend stays served while PostgreSQL is down")

      // and haproxy killed meanwhile comes back (as its supervisor starts it) with the remote backend it had
      process.kill(-(door.haproxy.pid ?? 0), "SIGKILL")
      assert.deepStrictEqual(yield* door.haproxy.exit, { _tag: "Killed", signal: "SIGKILL" })
      yield* door.start
      yield* within(RESTORE_BOUND, "the remote backend back after haproxy's restart, PostgreSQL down", served)

      // PostgreSQL back: heartbeats look old until the backends beat again, which does not take them out; a backend
      // that registers now is served too
      yield* Effect.promise(() => reg.cluster.start())
      const other = yield* standIn("backend:2@web3")
      yield* reg.up(other.name, other.address)
      yield* within("20 seconds", "a backend registered after PostgreSQL's return", Effect.flatMap(spread(door.port, "/api/v1/status"), expectServed(door.port, other.name)))
      for (let i = 0; i < 12; i++) {
        const seen = yield* spread(door.port, "/api/v1/status", 6)
        if (!seen.has(remote.name)) failures.push(`after PostgreSQL's return, ${i}: ${[...seen].join(", ")}`)
        yield* Effect.sleep("500 millis")
      }
      assert.deepStrictEqual(failures, [], "the remote backend stays served once PostgreSQL is back")
    }).pipe(Effect.scoped), 90_000)

  it.live("two front doors: either serves every backend, and one SockJS session reaches one backend through both", () =>
    Effect.gen(function*() {
      const reg = yield* registry
      const web1 = yield* standIn("backend:1")
      const web2 = yield* standIn("backend:1@web2")
      const web3 = yield* standIn("backend:1@web3")
      // each web host's haproxy names its own backend statically; every backend registers
      const door1 = yield* frontDoor({ id: web1.name, port: web1.port }, reg.cluster.url)
      const door2 = yield* frontDoor({ id: web2.name, port: web2.port }, reg.cluster.url)
      for (const b of [web1, web2, web3]) yield* reg.up(b.name, b.address)
      const all = new Set([web1.name, web2.name, web3.name])
      for (const door of [door1, door2]) {
        yield* within(APPLY_BOUND, `every backend through :${door.port}`, Effect.flatMap(spread(door.port, "/api/v1/status", 9), (seen) =>
          seen.size === 3 ? Effect.void : Effect.fail([...seen].join(", "))))
      }
      const places = new Set<string>()
      for (let i = 0; i < 16; i++) {
        const path = `/sockjs/000/s${i}/xhr_send`
        const [one, two] = [yield* servedBy(door1.port, path), yield* servedBy(door2.port, path)]
        assert.strictEqual(one, two, `session s${i}: ${one} through one door, ${two} through the other`)
        places.add(one)
      }
      assert.deepStrictEqual(places, all, "sessions are spread over every backend")
      // the first door gone, the second still serves every backend
      yield* Effect.promise(() => Promise.resolve(process.kill(-(door1.haproxy.pid ?? 0), "SIGTERM")))
      yield* door1.haproxy.exit
      assert.deepStrictEqual(yield* spread(door2.port, "/api/v1/status", 9), all)
    }).pipe(Effect.scoped), 60_000)
})
