// Password hashes with Node's scrypt: a random salt per hash and the cost parameters stored beside it, so that raising
// the cost later still verifies the old hashes; compared in constant time.
import { randomBytes, scrypt, type ScryptOptions, timingSafeEqual } from "node:crypto"

/** the shortest password `sagews user add` accepts */
export const MIN_PASSWORD_CHARS = 8
/** longer passwords are refused before hashing: scrypt's cost grows with them and a login body is attacker-chosen */
export const MAX_PASSWORD_CHARS = 1024

/**
 * scrypt's cost: N = 2^15, r = 8, p = 1 takes 32 MiB and ~70 ms of one core here. OWASP asks for N = 2^17 (128 MiB);
 * on a shared 2-core host every sign-in would then cost 0.3 s of a core, so this is the compromise; raise N to make
 * guessing dearer (old hashes keep their own parameters)
 */
export const SCRYPT_DEFAULTS = { N: 2 ** 15, r: 8, p: 1, keyLength: 32, saltBytes: 16 }

interface Cost {
  readonly N: number
  readonly r: number
  readonly p: number
}

const derive = (password: string, salt: Buffer, keyLength: number, cost: Cost): Promise<Buffer> => {
  // scrypt needs 128 * N * r bytes; its default maxmem (32 MiB) refuses exactly the default cost
  const options: ScryptOptions = { ...cost, maxmem: 256 * cost.N * cost.r }
  return new Promise((resolve, reject) => scrypt(password.normalize("NFC"), salt, keyLength, options, (e, key) => (e ? reject(e) : resolve(key))))
}

/** `scrypt$<N>$<r>$<p>$<salt, base64url>$<key, base64url>` */
export const hashPassword = async (password: string, params = SCRYPT_DEFAULTS): Promise<string> => {
  const salt = randomBytes(params.saltBytes)
  const key = await derive(password, salt, params.keyLength, { N: params.N, r: params.r, p: params.p })
  return ["scrypt", params.N, params.r, params.p, salt.toString("base64url"), key.toString("base64url")].join("$")
}

const HASH_SHAPE = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/

/** True when `password` is the one `stored` was made from; false for another password or a hash not of this shape. */
export const verifyPassword = async (password: string, stored: string): Promise<boolean> => {
  const m = HASH_SHAPE.exec(stored)
  if (m === null) return false
  const [, n = "", r = "", p = "", salt = "", key = ""] = m
  const expected = Buffer.from(key, "base64url")
  const got = await derive(password, Buffer.from(salt, "base64url"), expected.length, { N: Number(n), r: Number(r), p: Number(p) })
  return got.length === expected.length && timingSafeEqual(got, expected)
}

/** A hash of a random password: verified against when the email is unknown, so that both cases take as long. */
let decoy: Promise<string> | undefined
export const decoyHash = (): Promise<string> => (decoy ??= hashPassword(randomBytes(16).toString("hex")))
