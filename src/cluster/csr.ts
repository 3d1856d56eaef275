// A host without the CA key gets its certificate as kubelet's TLS bootstrap does: it makes its own key and a CSR,
// puts the CSR into the store's cert_requests as its join role, and waits (LISTEN, with a bound) for the store's
// signer (src/cluster/signer.ts) to answer with a certificate or a refusal. The key never leaves this host.
import * as fs from "node:fs/promises"
import { Data, Effect } from "effect"
import type pg from "pg"
import { closeClient, connectRaw } from "../db/client.ts"
import { redact } from "../db/client.ts"
import { hostCertProblem, newKeyAndCsr, type PkiError, tlsPaths, writeAtomic } from "./ca.ts"

/** The store did not give this host a certificate: why, and what to do. */
export class CertRequestError extends Data.TaggedError("CertRequestError")<{
  readonly reason: "Unreachable" | "Refused" | "NoAnswer"
  readonly message: string
}> {}

/** how long `init --join` waits for the signer: it answers in well under a second when `sagews start` runs there */
export const CERT_WAIT_MS = 30_000
/** between looks at the request when no notification came (a notification can be missed, a look cannot) */
const RECHECK_MS = 1_000
export const ANSWERED_CHANNEL = "sagews_cert_answered"

const waitNotification = (client: pg.Client, id: string, ms: number) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      client.off("notification", onNotify)
      resolve()
    }
    const onNotify = (m: pg.Notification) => {
      if (m.channel === ANSWERED_CHANNEL && m.payload === id) done()
    }
    const timer = setTimeout(done, ms)
    client.on("notification", onNotify)
  })

const request = async (dbUrl: string, host: string, address: string, csr: string, waitMs: number): Promise<string> => {
  let client: pg.Client
  try {
    client = await connectRaw(dbUrl)
  } catch (e) {
    const revoked = typeof e === "object" && e !== null && "code" in e && e.code === "28000"
      ? "; this host's join token was revoked: join again with a new one (`sagews join-token` on the store host)"
      : ""
    throw new CertRequestError({ reason: "Unreachable", message: `cannot reach the store's PostgreSQL (${redact(dbUrl)}) to ask for a certificate: ${e instanceof Error ? e.message : String(e)}${revoked}` })
  }
  try {
    await client.query(`LISTEN ${ANSWERED_CHANNEL}`)
    const inserted = await client.query<{ id: string }>("INSERT INTO cert_requests (host, address, csr) VALUES ($1, $2, $3) RETURNING id", [host, address, csr])
    const id = inserted.rows[0]?.id ?? ""
    const deadline = Date.now() + waitMs
    while (true) {
      const row = (await client.query<{ cert: string | null; refused: string | null }>("SELECT cert, refused FROM cert_requests WHERE id = $1", [id])).rows[0]
      if (row?.cert) return row.cert
      if (row?.refused) throw new CertRequestError({ reason: "Refused", message: `the store's signer refused this host's certificate request: ${row.refused}` })
      const left = deadline - Date.now()
      if (left <= 0) {
        throw new CertRequestError({
          reason: "NoAnswer",
          message: `no certificate for this host within ${waitMs / 1000} s (request ${id}): is \`sagews start\` running on the store host? ` +
            "Its cert-signer answers requests; run this again once it is",
        })
      }
      await waitNotification(client, id, Math.min(left, RECHECK_MS))
    }
  } catch (e) {
    if (e instanceof CertRequestError) throw e
    throw new CertRequestError({ reason: "Unreachable", message: `asking the store for a certificate failed: ${e instanceof Error ? e.message : String(e)}` })
  } finally {
    await closeClient(client)
  }
}

/** A new key and a certificate for it from the store, written to <data>/secret/host.key and <data>/tls/host.crt. */
export const requestHostCert = (
  dataDir: string,
  dbUrl: string,
  target: { readonly host: string; readonly address: string },
  waitMs = CERT_WAIT_MS,
): Effect.Effect<void, CertRequestError | PkiError> =>
  Effect.gen(function*() {
    const { key, csr } = yield* newKeyAndCsr(target.host)
    const cert = yield* Effect.tryPromise({
      try: () => request(dbUrl, target.host, target.address, csr, waitMs),
      catch: (e) => e instanceof CertRequestError ? e : new CertRequestError({ reason: "Unreachable", message: String(e) }),
    })
    const p = tlsPaths(dataDir)
    yield* Effect.promise(() => fs.mkdir(p.tls, { recursive: true, mode: 0o755 }))
    yield* writeAtomic(p.hostKey, key, 0o600)
    yield* writeAtomic(p.hostCert, cert, 0o644)
  })

/**
 * On every start of a joined host: keeps the host certificate while it fits `address`, else asks the store for a
 * new one (an address changed in the config). Returns why it asked, or undefined.
 */
export const ensureJoinedHostCert = (dataDir: string, dbUrl: string, address: string, host: string) =>
  Effect.gen(function*() {
    const problem = yield* hostCertProblem(dataDir, address, host)
    if (problem === undefined) return undefined
    yield* requestHostCert(dataDir, dbUrl, { host, address })
    return problem
  })
