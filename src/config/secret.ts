// Secrets in <data>/secret/: random, created once by whoever needs one first, each file 0600 in a 0700 directory
// owned by the user that runs the tree (root). Nothing else keeps a copy: a child gets a secret through its
// environment or a file it reads, never its command line (/proc/*/cmdline is world-readable).
import { randomBytes } from "node:crypto"
import { chmod, link, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { dataPaths } from "./paths.ts"

/** 32 random bytes, as 64 hex characters: printable, no quoting anywhere, and far beyond guessing. */
const SECRET_BYTES = 32
const MIN_LENGTH = 32

export const secretPath = (dataDir: string, name: string): string => join(dataPaths(dataDir).secret, name)

const errorCode = (error: unknown): string | undefined =>
  error instanceof Error && "code" in error && typeof error.code === "string" ? error.code : undefined

const readIfThere = async (path: string): Promise<string | undefined> => {
  try {
    return (await readFile(path, "utf8")).trim()
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined
    if (errorCode(error) === "EACCES") {
      throw new Error(`cannot read ${path}: permission denied; run this as the user that runs \`sagews start\` (root)`)
    }
    throw error
  }
}

/** Puts the modes back (0700 directory, 0600 file) when they drifted, if the secret is ours to change. */
const keepPrivate = async (dir: string, path: string): Promise<void> => {
  const uid = process.getuid?.()
  for (const [p, mode] of [[dir, 0o700], [path, 0o600]] as const) {
    const st = await stat(p)
    if (st.uid === uid && (st.mode & 0o777) !== mode) await chmod(p, mode)
  }
}

/** Reads the secret `name`, creating it first (random) when it does not exist yet. */
export const ensureSecret = async (dataDir: string, name: string): Promise<string> => {
  const dir = dataPaths(dataDir).secret
  const path = join(dir, name)
  let text = await readIfThere(path)
  if (text === undefined) {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    // Written whole under a name of our own, then linked into place: exactly one of two starters racing creates
    // it, and neither can read it half-written.
    const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`
    try {
      await writeFile(temp, randomBytes(SECRET_BYTES).toString("hex"), { mode: 0o600, flag: "wx" })
      await link(temp, path)
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error
    } finally {
      await rm(temp, { force: true })
    }
    text = (await readIfThere(path)) ?? ""
  }
  await keepPrivate(dir, path)
  if (text.length < MIN_LENGTH) throw new Error(`secret ${path} is too short (${text.length} chars): delete it to regenerate`)
  return text
}
