// The store host's certificate signer: a supervised fiber that answers the cert_requests of joining hosts with a
// certificate from the CA (whose key only this host holds), for a live, unrevoked join role only, naming the host's
// address. Woken by NOTIFY (src/db/listen.ts); a slow sweep covers a notification missed while reconnecting.
import { Effect, Queue } from "effect"
import { connect, type DbError, query } from "../db/client.ts"
import { listen } from "../db/listen.ts"
import { fiberChild } from "../../supervisors/fiber.ts"
import type { ChildSpec } from "../../supervisors/child.ts"
import { signCsr } from "./ca.ts"

export const REQUESTED_CHANNEL = "sagews_cert_requested"
/** the safety sweep: a request whose notification was missed waits at most this long */
const SWEEP_MS = 5_000
/** a PEM CSR for a P-256 key is well under 1 KiB; anything far larger is not one of ours */
const MAX_CSR_BYTES = 16_384
/** ms the signer gets to finish a signature when it is stopped */
const SIGNER_SHUTDOWN_MS = 2_000

export interface CertSignerOptions {
  readonly dataDir: string
  /** the service role's URL (serviceUrl on the store host): it reads and answers every request */
  readonly dbUrl: string
  readonly id?: string
}

interface Pending {
  readonly id: string
  readonly pg_role: string
  readonly host: string
  readonly address: string
  readonly csr: string
}

/** Why the requester may not have a certificate, or undefined when it may. */
const refusal = (client: Parameters<typeof query>[0], request: Pending) =>
  Effect.gen(function*() {
    if (request.csr.length > MAX_CSR_BYTES) return `the request is ${request.csr.length} bytes, more than ${MAX_CSR_BYTES}`
    const found = yield* query(
      client,
      `SELECT t.revoked_at, r.rolcanlogin FROM join_tokens t LEFT JOIN pg_roles r ON r.rolname = t.pg_role WHERE t.pg_role = $1`,
      [request.pg_role],
    )
    const row = found.rows[0] as { revoked_at: Date | null; rolcanlogin: boolean | null } | undefined
    if (row === undefined) return `${request.pg_role} is not the role of a join token`
    if (row.revoked_at !== null) return `the join token of ${request.pg_role} was revoked at ${row.revoked_at.toISOString()}`
    if (row.rolcanlogin !== true) return `${request.pg_role} may not log in`
    return undefined
  })

/** One pass over the pending requests: each answered with a certificate or a refusal. */
const signPending = (dataDir: string, dbUrl: string): Effect.Effect<void, DbError> =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* connect(dbUrl)
    const pending = (yield* query(client, "SELECT id, pg_role, host, address, csr FROM cert_requests WHERE answered_at IS NULL ORDER BY created_at")).rows as Array<Pending>
    for (const request of pending) {
      const refused = yield* refusal(client, request)
      const signed = refused === undefined
        ? yield* Effect.result(signCsr(dataDir, request.csr, { address: request.address, host: request.host }))
        : undefined
      if (signed?._tag === "Success") {
        yield* query(client, "UPDATE cert_requests SET cert = $2, answered_at = now() WHERE id = $1 AND answered_at IS NULL", [request.id, signed.success])
        yield* query(client, "UPDATE join_tokens SET used_at = coalesce(used_at, now()), used_by = coalesce(used_by, $2) WHERE pg_role = $1", [request.pg_role, request.host])
        yield* Effect.logInfo(`signed a certificate for ${request.host} at ${request.address} (${request.pg_role})`)
      } else {
        const why = refused ?? (signed?._tag === "Failure" ? signed.failure.message : "unknown")
        yield* query(client, "UPDATE cert_requests SET refused = $2, answered_at = now() WHERE id = $1 AND answered_at IS NULL", [request.id, why])
        yield* Effect.logWarning(`refused a certificate for ${request.host} at ${request.address} (${request.pg_role}): ${why}`)
      }
    }
  }))

/**
 * The signer as a child of the store supervisor (after postgres): `certSignerChild({ dataDir, dbUrl })`. A pass that
 * fails (PostgreSQL restarting) is logged and retried at the next wake-up or sweep; it never crashes the child.
 */
export const certSignerChild = (options: CertSignerOptions): ChildSpec =>
  fiberChild({
    id: options.id ?? "cert-signer",
    shutdown: SIGNER_SHUTDOWN_MS,
    run: Effect.gen(function*() {
      const wake = yield* Queue.sliding<void>(1)
      yield* listen(options.dbUrl, REQUESTED_CHANNEL, () => void Queue.offerUnsafe(wake, undefined), (e) =>
        Effect.logWarning(`cert-signer lost its LISTEN connection: ${e.message}`))
      const pass = signPending(options.dataDir, options.dbUrl).pipe(
        Effect.catch((e) => Effect.logWarning(`cert-signer could not read the requests: ${e.operation}: ${e.message}`)),
      )
      return yield* Effect.forever(Effect.andThen(pass, Effect.raceFirst(Queue.take(wake), Effect.sleep(SWEEP_MS))))
    }),
  })
