// The backend ⇄ worker shared secret (<data>/secret/worker.key, 0600) and the HMAC challenge/response over it.
// Both sides call `ensureWorkerSecret`: the first to run creates the key, the other reads it.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { chmod, mkdir, open, readFile } from "node:fs/promises"
import { join } from "node:path"

const SECRET_BYTES = 32
export const NONCE_BYTES = 32

export const workerSecretPath = (dataDir: string): string => join(dataDir, "secret", "worker.key")

/** Reads the worker secret, creating it (random, mode 0600, in a 0700 directory) if it does not exist yet. */
export const ensureWorkerSecret = async (dataDir: string): Promise<Buffer> => {
  const dir = join(dataDir, "secret")
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  const path = workerSecretPath(dataDir)
  try {
    // "wx": exactly one creator wins a race between a backend and a worker starting together.
    const handle = await open(path, "wx", 0o600)
    try {
      await handle.writeFile(randomBytes(SECRET_BYTES).toString("hex"))
    } finally {
      await handle.close()
    }
  } catch (error) {
    if (!(error instanceof Error && "code" in error && error.code === "EEXIST")) throw error
  }
  await chmod(path, 0o600)
  const text = (await readFile(path, "utf8")).trim()
  if (text.length < 32) throw new Error(`worker secret ${path} is too short (${text.length} chars): delete it to regenerate`)
  return Buffer.from(text, "utf8")
}

export const newNonce = (): string => randomBytes(NONCE_BYTES).toString("hex")

export const answerChallenge = (secret: Buffer, nonce: string): string =>
  createHmac("sha256", secret).update(nonce, "utf8").digest("hex")

/** Constant-time check of a backend's answer. */
export const verifyAnswer = (secret: Buffer, nonce: string, answer: string): boolean => {
  const expected = Buffer.from(answerChallenge(secret, nonce), "hex")
  const got = Buffer.from(answer, "hex")
  return got.length === expected.length && timingSafeEqual(got, expected)
}
