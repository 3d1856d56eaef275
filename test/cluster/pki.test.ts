// The cluster's CA and host certificates (openssl verifies them, the SANs name the host, a new address re-issues),
// and the own PostgreSQL with postgres.listen on 127.0.0.2: a loopback address the hba's 127.0.0.1/32 line does not
// match, so it counts as another host. There a plain-text connection is refused, a wrong password is refused, the
// superuser is refused even with its password, and TLS + scram with verify-full against the CA works.
import { execFile } from "node:child_process"
import { X509Certificate } from "node:crypto"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import pg from "pg"
import { afterEach, describe, expect, it } from "vitest"
import { postgresSpec } from "../../actors/postgres.ts"
import { caFingerprint, ensureCa, ensureHostCert, sansOf, tlsPaths } from "../../src/cluster/ca.ts"
import { createJoinToken } from "../../src/cluster/tokens.ts"
import { decodeToken } from "../../src/cluster/token.ts"
import { clusterPaths } from "../../src/db/cluster.ts"
import { clusterCredentials } from "../../src/db/credentials.ts"
import { leftoverProcesses } from "../logwatch/fixture.ts"
import { freePort } from "../ports.ts"

const OTHER_HOST = "127.0.0.2"

let dataDir = ""
let cleanup: Array<() => Promise<unknown>> = []

afterEach(async () => {
  for (const f of cleanup.reverse()) await f()
  cleanup = []
  if (dataDir !== "") {
    expect(await leftoverProcesses(dataDir)).toEqual([])
    await fs.rm(dataDir, { recursive: true, force: true })
  }
  dataDir = ""
})

const newDataDir = async () => (dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "sagews-pki-")))

const openssl = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number; out: string }>((resolve) =>
    execFile("/usr/bin/openssl", [...args], (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, out: `${stdout}${stderr}` })))

const cert = async (file: string) => new X509Certificate(await fs.readFile(file))

describe("the cluster CA", () => {
  it("makes a CA once and a host certificate that openssl verifies, naming the address, loopback and the host", async () => {
    const dir = await newDataDir()
    const p = tlsPaths(dir)
    expect(await Effect.runPromise(ensureCa(dir, "store1"))).toBe(true)
    expect(await Effect.runPromise(ensureHostCert(dir, "10.20.30.40", "store1"))).toBe("no host key")

    expect(await openssl(["verify", "-CAfile", p.caCert, p.hostCert])).toEqual({ code: 0, out: `${p.hostCert}: OK\n` })
    const ca = await cert(p.caCert)
    expect(ca.ca).toBe(true)
    // ten years, give or take the day it was made
    expect(Date.parse(ca.validTo) - Date.now()).toBeGreaterThan(3649 * 86_400_000)
    expect(sansOf(await cert(p.hostCert))).toEqual(["IP Address:10.20.30.40", "IP Address:127.0.0.1", "DNS:store1"])
    expect((await cert(p.hostCert)).ca).toBe(false)
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1")
    for (const key of [p.caKey, p.hostKey]) expect((await fs.stat(key)).mode & 0o777).toBe(0o600)

    // the fingerprint a token carries is the SHA-256 of the certificate's DER, as openssl computes it
    const der = await openssl(["x509", "-in", p.caCert, "-noout", "-fingerprint", "-sha256"])
    const hex = der.out.trim().split("=")[1]!.replaceAll(":", "").toLowerCase()
    expect(await Effect.runPromise(caFingerprint(dir))).toBe(`sha256:${hex}`)

    // idempotent: the same CA and the same host certificate on the next init or start
    const before = await fs.readFile(p.hostCert, "utf8")
    expect(await Effect.runPromise(ensureCa(dir, "store1"))).toBe(false)
    expect(await Effect.runPromise(ensureHostCert(dir, "10.20.30.40", "store1"))).toBeUndefined()
    expect(await fs.readFile(p.hostCert, "utf8")).toBe(before)
    expect(await Effect.runPromise(caFingerprint(dir))).toBe(`sha256:${hex}`)
  })

  it("re-issues the host certificate when the address changes, from the same CA", async () => {
    const dir = await newDataDir()
    const p = tlsPaths(dir)
    await Effect.runPromise(ensureCa(dir, "store1"))
    await Effect.runPromise(ensureHostCert(dir, "10.0.0.5", "store1"))
    const fingerprint = await Effect.runPromise(caFingerprint(dir))
    const why = await Effect.runPromise(ensureHostCert(dir, "10.0.0.6", "store1"))
    expect(why).toContain("10.0.0.6")
    expect(sansOf(await cert(p.hostCert))).toEqual(["IP Address:10.0.0.6", "IP Address:127.0.0.1", "DNS:store1"])
    expect((await openssl(["verify", "-CAfile", p.caCert, p.hostCert])).code).toBe(0)
    expect(await Effect.runPromise(caFingerprint(dir))).toBe(fingerprint)
  })
})

/**
 * A socket whose source address is `local`. pg_hba matches the client's address: a connection to 127.0.0.2 from the
 * default source 127.0.0.1 would count as loopback, one from 127.0.0.2 as another host.
 */
const sourcedFrom = (local: string) => () => {
  const socket = new net.Socket()
  const connect = socket.connect.bind(socket) as (options: net.TcpSocketConnectOpts) => net.Socket
  return Object.assign(socket, { connect: (port: number, host: string) => connect({ port, host, localAddress: local }) })
}

/** One connection attempt from another host; resolves to the SQLSTATE or message it failed with, or "ok" with current_user. */
const attempt = async (config: pg.ClientConfig, from = OTHER_HOST): Promise<string> => {
  const client = new pg.Client({ connectionTimeoutMillis: 5_000, stream: sourcedFrom(from), ...config })
  client.on("error", () => {})
  try {
    await client.connect()
    const { rows } = await client.query<{ u: string; ssl: boolean }>("SELECT current_user AS u, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    return `ok ${rows[0]?.u} ssl=${rows[0]?.ssl}`
  } catch (e) {
    return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : String(e)
  } finally {
    await client.end().catch(() => {})
  }
}

describe("PostgreSQL with postgres.listen", () => {
  it("takes another host only over TLS, verified against the CA, with a join role's password", async () => {
    const dir = await newDataDir()
    const port = await freePort()
    const scope = await Effect.runPromise(Scope.make())
    cleanup.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
    // no CA yet: the actor makes the host certificate itself (it holds the key on a store host)
    await Effect.runPromise(ensureCa(dir, "store1"))
    const spec = postgresSpec({ dataDir: dir, port, fastInit: true, listen: { address: OTHER_HOST, host: "store1" } })
    const started = await Effect.runPromiseExit(Scope.provide(scope)(spec.start))
    expect(Exit.isSuccess(started)).toBe(true)

    const hba = await fs.readFile(path.join(clusterPaths(dir).pg, "pg_hba.conf"), "utf8")
    expect(hba).not.toMatch(/\btrust\b/)
    expect(hba).toMatch(/^hostnossl\s+all\s+all\s+0\.0\.0\.0\/0\s+reject$/m)
    expect(hba).toMatch(/^hostssl\s+all\s+all\s+0\.0\.0\.0\/0\s+scram-sha-256$/m)

    const made = await Effect.runPromise(createJoinToken({ dataDir: dir, address: OTHER_HOST, port, listen: true }, "worker"))
    const { user, password } = decodeToken(made.token)
    const ca = await fs.readFile(tlsPaths(dir).caCert, "utf8")
    const remote = { host: OTHER_HOST, port, database: "sagews" }

    // plain text from another host: rejected by pg_hba before a password is asked (28000)
    expect(await attempt({ ...remote, user, password, ssl: false })).toBe("28000")
    // TLS, wrong password (28P01)
    expect(await attempt({ ...remote, user, password: "0".repeat(64), ssl: { ca } })).toBe("28P01")
    // the superuser's password never works from another host, even over TLS
    const superuser = (await clusterCredentials(dir)).superuser
    expect(await attempt({ ...remote, user: superuser.user, password: superuser.password, ssl: { ca } })).toBe("28000")
    // verify-full through a URL, as a joined host's serviceUrl gives it: the address is in the certificate
    const url = `postgres://${user}:${password}@${OTHER_HOST}:${port}/sagews?sslmode=verify-full&sslrootcert=${encodeURIComponent(tlsPaths(dir).caCert)}`
    expect(await attempt({ connectionString: url })).toBe(`ok ${user} ssl=true`)
    // a server certificate from another CA is refused by the client
    const stranger = await fs.mkdtemp(path.join(os.tmpdir(), "sagews-pki-other-"))
    try {
      await Effect.runPromise(ensureCa(stranger, "elsewhere"))
      const otherCa = await fs.readFile(tlsPaths(stranger).caCert, "utf8")
      expect(await attempt({ ...remote, user, password, ssl: { ca: otherCa } })).toMatch(/self.signed|unable to verify|certificate/i)
    } finally {
      await fs.rm(stranger, { recursive: true, force: true })
    }
    // loopback stays as it was: scram over 127.0.0.1 without TLS
    expect(await attempt({ host: "127.0.0.1", port, database: "sagews", user, password, ssl: false }, "127.0.0.1")).toBe(`ok ${user} ssl=false`)
  })
})
