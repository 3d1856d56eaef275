// The one wire between backends and workers: the worker secret (<data>/secret/worker.key, 0600) and the HMAC
// challenge/response over it. Both sides call `ensureWorkerSecret`: the first to run creates the key, the other reads it.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { ensureSecret } from "../config/secret.ts"

export const NONCE_BYTES = 32

/** Reads the worker secret, creating it (random, mode 0600, in a 0700 directory) if it does not exist yet. */
export const ensureWorkerSecret = async (dataDir: string): Promise<Buffer> => Buffer.from(await ensureSecret(dataDir, "worker.key"), "utf8")

export const newNonce = (): string => randomBytes(NONCE_BYTES).toString("hex")

export const answerChallenge = (secret: Buffer, nonce: string): string =>
  createHmac("sha256", secret).update(nonce, "utf8").digest("hex")

/** Constant-time check of a backend's answer. */
export const verifyAnswer = (secret: Buffer, nonce: string, answer: string): boolean => {
  const expected = Buffer.from(answerChallenge(secret, nonce), "hex")
  const got = Buffer.from(answer, "hex")
  return got.length === expected.length && timingSafeEqual(got, expected)
}
