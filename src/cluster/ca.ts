// The cluster's certificate authority and each host's certificate, made with the openssl CLI (execFile, no shell).
// The CA key lives only on the host that ran a plain `sagews init` (<data>/secret/ca.key, 0600); certificates are
// read back with Node's X509Certificate, so what is checked (SANs, issuer, expiry) is what a TLS peer will see.
import { execFile } from "node:child_process"
import { createHash, randomBytes, X509Certificate } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { isIP } from "node:net"
import { Data, Effect } from "effect"
import { dataPaths } from "../config/paths.ts"

/** Something about the CA or a certificate went wrong: what was being done, and why. */
export class PkiError extends Data.TaggedError("PkiError")<{ readonly message: string }> {}

const OPENSSL = "/usr/bin/openssl"
/** ten years: the CA outlives every host certificate it signs */
const CA_DAYS = 3650
/** host certificates: about two years (the CA/Browser Forum's old ceiling); re-issued on any start near the end */
const HOST_DAYS = 825
/** a host certificate this close to its end is re-issued at the next start */
const RENEW_BEFORE_MS = 30 * 86_400_000
/** openssl on a small machine answers in ms; this only bounds a hung one */
const OPENSSL_TIMEOUT_MS = 30_000
/** a DNS name openssl and TLS peers accept as a SAN: letters, digits, hyphens and dots */
const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

export const tlsPaths = (dataDir: string) => {
  const p = dataPaths(dataDir)
  const tls = path.join(p.data, "tls")
  return {
    tls,
    caCert: path.join(tls, "ca.crt"),
    caKey: path.join(p.secret, "ca.key"),
    hostCert: path.join(tls, "host.crt"),
    hostKey: path.join(p.secret, "host.key"),
  }
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const io = <A>(what: string, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => new PkiError({ message: `${what}: ${message(e)}` }) })

const exists = (file: string) => Effect.promise(() => fs.access(file).then(() => true, () => false))

/** Runs openssl with `args`, `input` on its stdin; fails with its last stderr lines. */
export const openssl = (args: ReadonlyArray<string>, input = ""): Effect.Effect<string, PkiError> =>
  Effect.callback<string, PkiError>((resume) => {
    const child = execFile(OPENSSL, [...args], { timeout: OPENSSL_TIMEOUT_MS, env: { PATH: "/usr/bin:/bin" } }, (error, stdout, stderr) => {
      if (error) {
        const detail = String(stderr).trim().split("\n").slice(-3).join(" / ") || error.message
        resume(Effect.fail(new PkiError({ message: `openssl ${args[0] ?? ""} failed: ${detail}` })))
      } else resume(Effect.succeed(String(stdout)))
    })
    child.stdin?.on("error", () => {})
    child.stdin?.end(input)
  })

/** Writes `content` to `file` with `mode` through a rename, so no reader ever sees it half-written or wider open. */
export const writeAtomic = (file: string, content: string, mode: number) =>
  io(`write ${file}`, async () => {
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`
    await fs.writeFile(tmp, content, { mode, flag: "wx" })
    await fs.chmod(tmp, mode)
    await fs.rename(tmp, file)
  })

/** tls/ (certificates: public, 0755) and secret/ (keys: 0700), made when missing. */
export const prepareTlsDirs = (dataDir: string) =>
  io("make tls/ and secret/", async () => {
    await fs.mkdir(tlsPaths(dataDir).tls, { recursive: true, mode: 0o755 })
    await fs.mkdir(dataPaths(dataDir).secret, { recursive: true, mode: 0o700 })
  })

/** A new EC P-256 private key, PEM (never on disk until the caller writes it 0600). */
export const newKey: Effect.Effect<string, PkiError> = openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])

/** `sha256:<hex>` of a certificate's DER: what a join token carries to pin the CA. */
export const fingerprint = (certPem: string): string => `sha256:${createHash("sha256").update(new X509Certificate(certPem).raw).digest("hex")}`

/** The fingerprint of this data dir's CA certificate (<data>/tls/ca.crt). */
export const caFingerprint = (dataDir: string): Effect.Effect<string, PkiError> =>
  io(`read the cluster CA ${tlsPaths(dataDir).caCert} (run \`sagews init\` on the store host to make it)`, () =>
    fs.readFile(tlsPaths(dataDir).caCert, "utf8")).pipe(Effect.map(fingerprint))

/** Does this data dir hold the CA's key (the host that signs), or only its certificate (a joined host)? */
export const hasCaKey = (dataDir: string): Effect.Effect<boolean> => exists(tlsPaths(dataDir).caKey)

/** A temporary directory of our own (0700) for openssl's input files, removed after `use`. */
const withTempDir = <A, E>(use: (dir: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    io("make a temporary directory", () => fs.mkdtemp(path.join(os.tmpdir(), "sagews-pki-"))),
    use,
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })),
  )

/** Makes the CA once (key 0600 in secret/, certificate in tls/); an existing CA is kept. Returns whether it made one. */
export const ensureCa = (dataDir: string, host: string): Effect.Effect<boolean, PkiError> =>
  Effect.gen(function*() {
    const p = tlsPaths(dataDir)
    const [key, cert] = [yield* exists(p.caKey), yield* exists(p.caCert)]
    if (key && cert) return false
    if (cert && !key) {
      return yield* new PkiError({
        message: `${p.caCert} exists without its key ${p.caKey}: this data dir joined a cluster (its CA signs elsewhere); ` +
          "run `sagews init --join TOKEN` again, or remove tls/ to make a new CA for a new cluster",
      })
    }
    yield* prepareTlsDirs(dataDir)
    const pem = yield* newKey
    const certPem = yield* withTempDir((dir) =>
      Effect.gen(function*() {
        const keyFile = path.join(dir, "ca.key")
        yield* io(`write ${keyFile}`, () => fs.writeFile(keyFile, pem, { mode: 0o600 }))
        return yield* openssl([
          "req", "-x509", "-new", "-key", keyFile, "-sha256", "-days", String(CA_DAYS),
          "-subj", `/O=sagews/CN=sagews cluster CA (${safeSubject(host)})`,
          "-set_serial", `0x${randomBytes(16).toString("hex")}`,
          "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign",
          "-addext", "subjectKeyIdentifier=hash",
        ])
      })
    )
    // the key first: a CA certificate on disk always has its key beside it
    yield* writeAtomic(p.caKey, pem, 0o600)
    yield* writeAtomic(p.caCert, certPem, 0o644)
    return true
  })

/** A subject's CN may not hold `/` or `=` unescaped; a host name never needs them. */
const safeSubject = (text: string): string => text.replace(/[^A-Za-z0-9 ._-]/g, "_").slice(0, 60) || "host"

/** The SANs a host certificate must carry: its address, loopback, and its name when it is a DNS name. */
export const wantedSans = (address: string, host: string): ReadonlyArray<string> => {
  const ips = [...new Set([address, "127.0.0.1"])].map((ip) => `IP Address:${ip}`)
  return DNS_NAME.test(host) && isIP(host) === 0 ? [...ips, `DNS:${host}`] : ips
}

/** The SAN list of a certificate, as Node spells it ("IP Address:10.0.0.5", "DNS:web1"). */
export const sansOf = (cert: X509Certificate): ReadonlyArray<string> =>
  (cert.subjectAltName ?? "").split(", ").filter((s) => s !== "")

const extFile = (sans: ReadonlyArray<string>): string =>
  [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth,clientAuth",
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid",
    `subjectAltName=${sans.map((s) => s.replace(/^IP Address:/, "IP:")).join(",")}`,
  ].join("\n") + "\n"

/**
 * Signs a certificate request with this data dir's CA for `host` at `address`. Only the CSR's public key is taken:
 * subject and SANs are ours (a request cannot ask for another host's address or for CA rights).
 */
export const signCsr = (dataDir: string, csrPem: string, target: { readonly address: string; readonly host: string }) =>
  Effect.gen(function*() {
    if (isIP(target.address) === 0) return yield* new PkiError({ message: `a host certificate needs an IP address, got ${JSON.stringify(target.address)}` })
    if (!csrPem.includes("-----BEGIN CERTIFICATE REQUEST-----")) {
      return yield* new PkiError({ message: "the certificate request is not a PEM CSR (expected -----BEGIN CERTIFICATE REQUEST-----)" })
    }
    const p = tlsPaths(dataDir)
    return yield* withTempDir((dir) =>
      Effect.gen(function*() {
        const csrFile = path.join(dir, "host.csr")
        const ext = path.join(dir, "host.ext")
        yield* io(`write ${csrFile}`, () => fs.writeFile(csrFile, csrPem, { mode: 0o600 }))
        yield* io(`write ${ext}`, () => fs.writeFile(ext, extFile(wantedSans(target.address, target.host)), { mode: 0o600 }))
        // -req checks the request's own signature: a CSR whose key its sender does not hold is refused
        return yield* openssl([
          "x509", "-req", "-in", csrFile, "-CA", p.caCert, "-CAkey", p.caKey, "-sha256", "-days", String(HOST_DAYS),
          "-set_serial", `0x${randomBytes(16).toString("hex")}`, "-extfile", ext,
          "-subj", `/O=sagews/CN=${safeSubject(target.host)}`,
        ])
      })
    )
  })

/** A new key and a CSR for it (subject = host name); the caller writes the key 0600 once the certificate arrives. */
export const newKeyAndCsr = (host: string) =>
  Effect.gen(function*() {
    const key = yield* newKey
    const csr = yield* withTempDir((dir) =>
      Effect.gen(function*() {
        const keyFile = path.join(dir, "host.key")
        yield* io(`write ${keyFile}`, () => fs.writeFile(keyFile, key, { mode: 0o600 }))
        return yield* openssl(["req", "-new", "-key", keyFile, "-subj", `/O=sagews/CN=${safeSubject(host)}`])
      })
    )
    return { key, csr }
  })

/** Why the host certificate on disk is not good enough (undefined: it is); the reason goes into the log. */
export const hostCertProblem = (dataDir: string, address: string, host: string): Effect.Effect<string | undefined> =>
  Effect.gen(function*() {
    const p = tlsPaths(dataDir)
    if (!(yield* exists(p.hostKey))) return "no host key"
    const read = yield* Effect.result(io("read", () => Promise.all([fs.readFile(p.hostCert, "utf8"), fs.readFile(p.caCert, "utf8")])))
    if (read._tag === "Failure") return "no host certificate or CA certificate"
    const [certPem, caPem] = read.success
    const parsed = yield* Effect.result(Effect.try({ try: () => [new X509Certificate(certPem), new X509Certificate(caPem)] as const, catch: message }))
    if (parsed._tag === "Failure") return `unreadable certificate: ${parsed.failure}`
    const [cert, ca] = parsed.success
    if (!cert.verify(ca.publicKey)) return "not signed by this cluster's CA"
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return `it ends ${cert.validTo}`
    const have = new Set(sansOf(cert))
    const want = wantedSans(address, host)
    if (have.size !== want.length || want.some((s) => !have.has(s))) return `its names (${[...have].join(", ")}) are not ${want.join(", ")}`
    return undefined
  })

/**
 * Idempotent, on every init and start of a host that holds the CA key: (re-)issues <data>/tls/host.crt for
 * `address` (and 127.0.0.1, and `host` as DNS name) when it is missing, not from this CA, near its end, or made for
 * another address. Returns why it re-issued, or undefined when the certificate on disk was kept. A joined host
 * (no CA key) asks the store's signer instead: see `ensureJoinedHostCert` in src/cluster/csr.ts.
 */
export const ensureHostCert = (dataDir: string, address: string, host: string): Effect.Effect<string | undefined, PkiError> =>
  Effect.gen(function*() {
    const problem = yield* hostCertProblem(dataDir, address, host)
    if (problem === undefined) return undefined
    if (!(yield* hasCaKey(dataDir))) {
      return yield* new PkiError({
        message: `the host certificate ${tlsPaths(dataDir).hostCert} must be re-issued (${problem}) but this data dir has no CA key: ` +
          "run `sagews init` (a new cluster) or `sagews init --join TOKEN` (a host of an existing one)",
      })
    }
    const p = tlsPaths(dataDir)
    yield* prepareTlsDirs(dataDir)
    const { key, csr } = yield* newKeyAndCsr(host)
    const cert = yield* signCsr(dataDir, csr, { address, host })
    yield* writeAtomic(p.hostKey, key, 0o600)
    yield* writeAtomic(p.hostCert, cert, 0o644)
    return problem
  })
