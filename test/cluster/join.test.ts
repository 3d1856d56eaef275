// Joining a cluster with a token, against a real store: PostgreSQL with postgres.listen on 127.0.0.2 and the
// certificate signer running. A token joins a second data dir (CA pinned, certificate signed by the store, join.json,
// serviceUrl connecting over verify-full); a worker token's role cannot read accounts, a web token's can; a revoked
// token cannot join and its open connections end; a token whose fingerprint does not match is refused with nothing
// sent; a malformed or truncated token is named as such; a joined host whose address changes gets a new certificate.
import { execFile } from "node:child_process"
import { X509Certificate } from "node:crypto"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { Effect, Exit, Scope } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { postgresSpec } from "../../actors/postgres.ts"
import { ensureHostTrust } from "../../src/cluster/bootstrap.ts"
import { caFingerprint, ensureCa, ensureHostCert, sansOf, tlsPaths } from "../../src/cluster/ca.ts"
import { joinedCluster, joinPaths } from "../../src/cluster/join.ts"
import { certSignerChild } from "../../src/cluster/signer.ts"
import { decodeToken, encodeToken } from "../../src/cluster/token.ts"
import { createJoinToken, listJoinTokens, revokeJoinToken, type StoreTarget } from "../../src/cluster/tokens.ts"
import { initDataDir, joinDataDir } from "../../src/cli/init.ts"
import { serviceUrl } from "../../src/db/credentials.ts"
import { secretPath } from "../../src/config/secret.ts"
import { leftoverProcesses } from "../logwatch/fixture.ts"
import { freePort } from "../ports.ts"

const STORE_ADDRESS = "127.0.0.2"

let store = ""
let port = 0
let target: StoreTarget
let scope: Scope.Closeable | undefined
const joined: Array<string> = []

const tempDir = (name: string) => fs.mkdtemp(path.join(os.tmpdir(), `sagews-join-${name}-`))

beforeAll(async () => {
  store = await tempDir("store")
  port = await freePort()
  target = { dataDir: store, address: STORE_ADDRESS, port, listen: true }
  // what `sagews init` and `sagews start` on the store do: the CA and host certificate, postgres, the signer
  await initDataDir(store, { address: STORE_ADDRESS, host: "store", dbPort: port })
  scope = await Effect.runPromise(Scope.make())
  const started = await Effect.runPromiseExit(Scope.provide(scope)(postgresSpec({ dataDir: store, port, fastInit: true, listen: { address: STORE_ADDRESS, host: "store" } }).start))
  if (Exit.isFailure(started)) throw new Error(`postgres did not start: ${String(started.cause)}`)
  const dbUrl = await serviceUrl(store, { port })
  await Effect.runPromise(Scope.provide(scope)(certSignerChild({ dataDir: store, dbUrl }).start))
}, 60_000)

afterAll(async () => {
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
  expect(await leftoverProcesses(store)).toEqual([])
  for (const dir of [store, ...joined]) await fs.rm(dir, { recursive: true, force: true })
})

const newHost = async (name: string) => {
  const dir = await tempDir(name)
  joined.push(dir)
  return dir
}

const openssl = (args: ReadonlyArray<string>) =>
  new Promise<number>((resolve) => execFile("/usr/bin/openssl", [...args], (error) => resolve(error === null ? 0 : 1)))

/** The first row of `sql` as the joined host connects (serviceUrl), or the SQLSTATE it failed with. */
const asJoined = async (dir: string, sql: string): Promise<unknown> => {
  const client = new pg.Client({ connectionString: await serviceUrl(dir, { port: 1 }), connectionTimeoutMillis: 5_000 })
  client.on("error", () => {})
  try {
    await client.connect()
    return (await client.query(sql)).rows[0]
  } catch (e) {
    return typeof e === "object" && e !== null && "code" in e ? `error ${String(e.code)}` : `error ${String(e)}`
  } finally {
    await client.end().catch(() => {})
  }
}

const message = async (promise: Promise<unknown>): Promise<string> =>
  promise.then(() => "no error", (e: unknown) => (e instanceof Error ? e.message : String(e)))

describe("sagews init --join", () => {
  it("joins a worker host: CA pinned, its certificate signed by the store, join.json written, serviceUrl connects", async () => {
    const made = await Effect.runPromise(createJoinToken(target, "worker"))
    const dir = await newHost("worker")
    const info = await joinDataDir(dir, { token: made.token, role: "worker", address: "127.0.0.3", host: "worker1" })
    expect(info).toMatchObject({ tokenId: made.id, store: { address: STORE_ADDRESS, port }, user: made.pgRole, roles: ["worker"] })

    // join.json holds no secret; the secrets went into secret/ (0600)
    const joinText = await fs.readFile(joinPaths(dir).joinFile, "utf8")
    expect(joinText).not.toContain(decodeToken(made.token).password)
    expect(joinedCluster(dir)).toEqual(info)
    expect(await fs.readFile(secretPath(dir, "worker.key"), "utf8")).toBe(await fs.readFile(secretPath(store, "worker.key"), "utf8"))
    expect((await fs.stat(joinPaths(dir).password)).mode & 0o777).toBe(0o600)
    // a worker host does not get the backends' identity key of the cluster
    expect(await fs.readFile(secretPath(dir, "identity.key"), "utf8")).not.toBe(await fs.readFile(secretPath(store, "identity.key"), "utf8"))

    // the same CA as the store's; its own key, a certificate from the store's CA for its own address
    const p = tlsPaths(dir)
    expect(await fs.readFile(p.caCert, "utf8")).toBe(await fs.readFile(tlsPaths(store).caCert, "utf8"))
    await expect(fs.access(p.caKey)).rejects.toThrow()
    expect(await openssl(["verify", "-CAfile", p.caCert, p.hostCert])).toBe(0)
    expect(sansOf(new X509Certificate(await fs.readFile(p.hostCert)))).toEqual(["IP Address:127.0.0.3", "IP Address:127.0.0.1", "DNS:worker1"])
    expect((await fs.stat(p.hostKey)).mode & 0o777).toBe(0o600)

    // every component's URL is now the store's, over TLS verified against the CA
    const url = new URL(await serviceUrl(dir, { port: 1 }))
    expect(url.host).toBe(`${STORE_ADDRESS}:${port}`)
    expect(url.searchParams.get("sslmode")).toBe("verify-full")
    expect(await asJoined(dir, "SELECT current_user AS u, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl")).toEqual({ u: made.pgRole, ssl: true })

    // what a worker host needs, and nothing more: not the accounts, not the join tokens
    expect(await asJoined(dir, "INSERT INTO log (host, component, ts, level, msg) VALUES ('worker1', 'test', now(), 'info', 'hello') RETURNING msg")).toEqual({ msg: "hello" })
    expect(await asJoined(dir, "SELECT count(*) FROM accounts")).toBe("error 42501")
    expect(await asJoined(dir, "SELECT count(*) FROM join_tokens")).toBe("error 42501")
    expect(await asJoined(dir, "UPDATE sessions SET kernel = 'x'")).toBe("error 42501")

    const listed = (await Effect.runPromise(listJoinTokens(target))).find((t) => t.id === made.id)
    expect(listed).toMatchObject({ role: "worker", pgRole: made.pgRole, usedBy: "worker1", revokedAt: null })
    expect(listed?.usedAt).toBeInstanceOf(Date)

    // an address change in the config: the next start asks the store for a new certificate
    const why = await Effect.runPromise(ensureHostTrust(dir, { address: "127.0.0.4", host: "worker1", dbPort: 1 }))
    expect(why).toContain("127.0.0.4")
    expect(sansOf(new X509Certificate(await fs.readFile(p.hostCert)))).toEqual(["IP Address:127.0.0.4", "IP Address:127.0.0.1", "DNS:worker1"])
    expect(await Effect.runPromise(ensureHostTrust(dir, { address: "127.0.0.4", host: "worker1", dbPort: 1 }))).toBeUndefined()

    // a data dir joins once
    expect(await message(joinDataDir(dir, { token: made.token, role: "worker", address: "127.0.0.3", host: "worker1" }))).toContain("already joined")
  }, 60_000)

  it("joins a web host with the backends' identity key, and its role reads what backends read", async () => {
    const made = await Effect.runPromise(createJoinToken(target, "web"))
    const dir = await newHost("web")
    await joinDataDir(dir, { token: made.token, role: undefined, address: "127.0.0.5", host: "web1" })
    expect(joinedCluster(dir)?.roles).toEqual(["web"])
    expect(await fs.readFile(secretPath(dir, "identity.key"), "utf8")).toBe(await fs.readFile(secretPath(store, "identity.key"), "utf8"))
    expect(await asJoined(dir, "SELECT count(*)::int AS n FROM accounts")).toEqual({ n: 0 })
  }, 60_000)

  it("refuses a worker token for a web host", async () => {
    const made = await Effect.runPromise(createJoinToken(target, "worker"))
    const dir = await newHost("wrong-role")
    expect(await message(joinDataDir(dir, { token: made.token, role: "web", address: "127.0.0.6", host: "web2" }))).toContain("a worker token cannot make this host web")
    expect(joinedCluster(dir)).toBeUndefined()
  })

  it("cannot join with a revoked token, and revoking ends the connections of a host that joined with it", async () => {
    const first = await Effect.runPromise(createJoinToken(target, "worker"))
    const dir = await newHost("revoked")
    await joinDataDir(dir, { token: first.token, role: "worker", address: "127.0.0.7", host: "worker7" })
    const open = new pg.Client({ connectionString: await serviceUrl(dir, { port: 1 }) })
    const ended = new Promise<string>((resolve) => open.on("error", (e) => resolve(String((e as { code?: string }).code))))
    await open.connect()
    await Effect.runPromise(revokeJoinToken(target, first.id))
    expect(await ended).toBe("57P01")
    await open.end().catch(() => {})
    expect(await asJoined(dir, "SELECT 1")).toBe("error 28000")

    const unused = await Effect.runPromise(createJoinToken(target, "worker"))
    await Effect.runPromise(revokeJoinToken(target, unused.id))
    const other = await newHost("revoked2")
    const why = await message(joinDataDir(other, { token: unused.token, role: "worker", address: "127.0.0.8", host: "worker8" }))
    expect(why).toContain("the token was revoked")
    expect(joinedCluster(other)).toBeUndefined()
    expect((await Effect.runPromise(listJoinTokens(target))).find((t) => t.id === unused.id)?.revokedAt).toBeInstanceOf(Date)
    expect(await message(Effect.runPromise(revokeJoinToken(target, "nosuchtoken")))).toContain(`no join token has the id "nosuchtoken"`)
  }, 60_000)

  it("refuses a store whose CA does not have the token's fingerprint, before any password is sent", async () => {
    // an impostor that speaks PostgreSQL's SSLRequest with a certificate of its own CA, recording what it is sent
    const impostorDir = await newHost("impostor")
    await Effect.runPromise(Effect.andThen(ensureCa(impostorDir, "impostor"), ensureHostCert(impostorDir, "127.0.0.1", "impostor")))
    const p = tlsPaths(impostorDir)
    const context = { cert: (await fs.readFile(p.hostCert, "utf8")) + (await fs.readFile(p.caCert, "utf8")), key: await fs.readFile(p.hostKey, "utf8") }
    const received: Array<Buffer> = []
    let closeSeen: () => void = () => {}
    const closed = new Promise<void>((resolve) => (closeSeen = resolve))
    const server = net.createServer((raw) => {
      raw.on("error", () => {})
      raw.once("data", () => {
        raw.write("S")
        const secure = new tls.TLSSocket(raw, { isServer: true, ...context })
        secure.on("data", (chunk: Buffer) => received.push(chunk))
        secure.on("error", () => {})
        secure.on("close", () => closeSeen())
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const impostorPort = (server.address() as net.AddressInfo).port
      const real = decodeToken((await Effect.runPromise(createJoinToken(target, "worker"))).token)
      const token = encodeToken({ ...real, store: { address: "127.0.0.1", port: impostorPort } })
      const dir = await newHost("pinned")
      const why = await message(joinDataDir(dir, { token, role: "worker", address: "127.0.0.9", host: "worker9" }))
      // the fingerprint it names is the impostor's CA's: the handshake happened, then the joiner hung up
      expect(why).toContain(`has the fingerprint ${await Effect.runPromise(caFingerprint(impostorDir))}, not the token's ${real.ca}`)
      expect(why).toContain("nothing was sent")
      await closed
      expect(Buffer.concat(received).length).toBe(0)
      expect(joinedCluster(dir)).toBeUndefined()
      await expect(fs.access(tlsPaths(dir).caCert)).rejects.toThrow()
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }, 60_000)

  it("names what is wrong with a malformed or truncated token", async () => {
    const made = await Effect.runPromise(createJoinToken(target, "worker"))
    const dir = await newHost("malformed")
    const join = (token: string) => message(joinDataDir(dir, { token, role: "worker", address: "127.0.0.10", host: "w" }))
    expect(await join(made.token.slice(0, -20))).toContain("truncated or altered")
    expect(await join(made.token.slice(5))).toContain("does not start with sgw1.")
    expect(await join(`${made.token.slice(0, 30)} ${made.token.slice(30)}`)).toContain(`holds " "`)
    const { workerKey: _, ...noKey } = decodeToken(made.token)
    expect(await join(`sgw1.${Buffer.from(JSON.stringify(noKey)).toString("base64url")}`)).toContain("workerKey: expected the worker secret")
    expect(joinedCluster(dir)).toBeUndefined()
  })

  it("will not make a token while PostgreSQL listens on loopback only", async () => {
    expect(await message(Effect.runPromise(createJoinToken({ ...target, listen: false }, "worker")))).toContain("postgres.listen is false")
  })
})
