// Finding the cluster's CA from nothing but a join token, as `kubeadm join` does: open a TLS session to the store's
// PostgreSQL without verifying it, take the root of the chain it presents, and keep it only if its SHA-256 is the
// token's. Nothing of the token (no password) is sent on this connection; a man in the middle gets a refusal.
import { createHash, X509Certificate } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import type { DetailedPeerCertificate, PeerCertificate } from "node:tls"
import { Data, Effect } from "effect"

/** The CA could not be fetched, or it is not the one the token names. */
export class DiscoveryError extends Data.TaggedError("DiscoveryError")<{
  readonly reason: "Unreachable" | "NoTls" | "Mismatch"
  readonly message: string
}> {}

/** PostgreSQL's SSLRequest: length 8, then the code 80877103 (1234 << 16 | 5679) */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
/** ms for the TCP connection, the server's one-byte answer and the handshake together */
export const DISCOVERY_TIMEOUT_MS = 10_000

const rootOf = (leaf: DetailedPeerCertificate): PeerCertificate => {
  let cert: DetailedPeerCertificate = leaf
  const seen = new Set<DetailedPeerCertificate>()
  // Node links a self-signed root to itself; a chain without its root ends where issuerCertificate is missing
  while (cert.issuerCertificate !== undefined && cert.issuerCertificate !== cert && !seen.has(cert)) {
    seen.add(cert)
    cert = cert.issuerCertificate
  }
  return cert
}

const toPem = (der: Buffer): string =>
  `-----BEGIN CERTIFICATE-----\n${der.toString("base64").match(/.{1,64}/g)?.join("\n") ?? ""}\n-----END CERTIFICATE-----\n`

/** The root certificate the PostgreSQL at address:port presents, as PEM; unverified (the caller pins it). */
export const presentedRoot = (address: string, port: number, timeoutMs = DISCOVERY_TIMEOUT_MS): Effect.Effect<string, DiscoveryError> =>
  Effect.callback<string, DiscoveryError>((resume) => {
    const where = `${address}:${port}`
    let done = false
    const socket = net.connect({ host: address, port })
    let secure: tls.TLSSocket | undefined
    const finish = (result: Effect.Effect<string, DiscoveryError>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      secure?.destroy()
      socket.destroy()
      resume(result)
    }
    const fail = (reason: DiscoveryError["reason"], message: string) => finish(Effect.fail(new DiscoveryError({ reason, message })))
    const timer = setTimeout(() => fail("Unreachable", `the store's PostgreSQL at ${where} did not answer within ${timeoutMs} ms: is the port open from this host, and \`sagews start\` running on the store?`), timeoutMs)
    socket.on("error", (e) => fail("Unreachable", `cannot reach the store's PostgreSQL at ${where}: ${e.message}; check the address and port in the token, the network, and that \`sagews start\` runs on the store`))
    socket.once("connect", () => socket.write(SSL_REQUEST))
    socket.once("data", (answer) => {
      if (answer[0] !== 0x53 /* S */) {
        fail("NoTls", `the PostgreSQL at ${where} does not speak TLS (answered ${JSON.stringify(String.fromCharCode(answer[0] ?? 0))} to the SSLRequest): set postgres.listen to true on the store and restart it`)
        return
      }
      // verification is the pin below; nothing but the handshake happens on this connection
      secure = tls.connect({ socket, rejectUnauthorized: false })
      secure.on("error", (e) => fail("NoTls", `the TLS handshake with ${where} failed: ${e.message}`))
      secure.once("secureConnect", () => {
        const peer = secure?.getPeerCertificate(true)
        if (peer === undefined || peer.raw === undefined) {
          fail("NoTls", `${where} presented no certificate`)
          return
        }
        finish(Effect.succeed(toPem(rootOf(peer).raw)))
      })
    })
  })

/** `sha256:<hex>` of a PEM certificate's DER */
const fingerprintOf = (pem: string): string => `sha256:${createHash("sha256").update(new X509Certificate(pem).raw).digest("hex")}`

/**
 * The store's CA, checked against the token's fingerprint: its PEM on a match; a mismatch is refused before the
 * caller sends any password.
 */
export const discoverCa = (address: string, port: number, expected: string, timeoutMs = DISCOVERY_TIMEOUT_MS): Effect.Effect<string, DiscoveryError> =>
  Effect.gen(function*() {
    const pem = yield* presentedRoot(address, port, timeoutMs)
    const got = fingerprintOf(pem)
    if (got !== expected) {
      return yield* new DiscoveryError({
        reason: "Mismatch",
        message: `the CA presented by ${address}:${port} has the fingerprint ${got}, not the token's ${expected}: ` +
          "this is not the store that made the token (or something is in between); nothing was sent to it. Check the address, or make a new token on the store host",
      })
    }
    const ca = new X509Certificate(pem)
    if (!ca.ca) {
      return yield* new DiscoveryError({ reason: "Mismatch", message: `the pinned certificate from ${address}:${port} is not a CA certificate` })
    }
    return pem
  })
