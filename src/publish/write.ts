// Published pages on disk: <data>/pub/<slug>/index.html, served by nginx at /pub/<slug>/, with KaTeX's CSS and fonts
// once per version in <data>/pub/katex-<version>/. Each page is rendered into a temporary directory beside its target
// and renamed into place, so a reader sees the old page or the new one, never half of one; unpublishing renames the
// page's directory away (404 at once) and then removes it. Everything is readable by nginx's workers (user nobody).
import { randomBytes } from "node:crypto"
import { chmod, cp, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { Data, Effect } from "effect"
import { dataPaths } from "../config/paths.ts"
import { KATEX_ASSETS } from "./render.ts"

/** The directory nginx serves at /pub/. */
export const pubRoot = (dataDir: string): string => dataPaths(dataDir).pub

/** 16 random bytes, 22 base64url characters: a page's address cannot be guessed, only be given. */
export const newSlug = (): string => randomBytes(16).toString("base64url")
export const SLUG = /^[A-Za-z0-9_-]{22}$/

/** directories nobody may list or write but may enter; pages and assets that nobody may read */
const DIR_MODE = 0o755
const FILE_MODE = 0o644
/** where temporary directories start: nginx answers 404 for /pub/.<anything> */
const TEMP_PREFIX = "."

export class PublishError extends Data.TaggedError("PublishError")<{ readonly message: string }> {}

const io = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, PublishError> =>
  Effect.tryPromise({ try: f, catch: (e) => new PublishError({ message: `cannot ${what}: ${e instanceof Error ? e.message : String(e)}` }) })

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? false : Promise.reject(e)))

const katexDist = (): string => join(dirname(createRequire(import.meta.url).resolve("katex/package.json")), "dist")

/** <root> itself, made readable by nginx's workers (chmod, since mkdir's mode is cut by the umask). */
const ensureRoot = (root: string): Effect.Effect<void, PublishError> =>
  io(`create the published pages' directory ${root}`, async () => {
    await mkdir(root, { recursive: true })
    await chmod(root, DIR_MODE)
  })

/** KaTeX's CSS and fonts in <root>/KATEX_ASSETS/, copied from the katex package the first time a page needs them. */
const ensureKatex = (root: string): Effect.Effect<void, PublishError> =>
  io(`install KaTeX's CSS and fonts in ${root}`, async () => {
    const target = join(root, KATEX_ASSETS)
    if (await exists(target)) return
    const temp = await mkdtemp(join(root, `${TEMP_PREFIX}${KATEX_ASSETS}-`))
    try {
      const dist = katexDist()
      await cp(join(dist, "katex.min.css"), join(temp, "katex.min.css"))
      await cp(join(dist, "fonts"), join(temp, "fonts"), { recursive: true })
      await chmodTree(temp)
      // another backend may have got there first: its copy is the same
      await rename(temp, target).catch(async (e: NodeJS.ErrnoException) => {
        if (!(await exists(target))) throw e
      })
    } finally {
      await rm(temp, { recursive: true, force: true })
    }
  })

const chmodTree = async (dir: string): Promise<void> => {
  await chmod(dir, DIR_MODE)
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) await chmodTree(path)
    else await chmod(path, FILE_MODE)
  }
}

/**
 * Writes the page at <root>/<slug>/index.html. A first publish renames the whole temporary directory into place; a
 * later one renames the new index.html over the old one (a page is that one file), both atomic on one filesystem.
 */
export const writePage = (dataDir: string, slug: string, html: string): Effect.Effect<void, PublishError> =>
  Effect.gen(function*() {
    if (!SLUG.test(slug)) return yield* new PublishError({ message: `the slug ${JSON.stringify(slug)} is not 22 base64url characters` })
    const root = pubRoot(dataDir)
    yield* ensureRoot(root)
    yield* ensureKatex(root)
    const target = join(root, slug)
    yield* io(`write the published page ${target}`, async () => {
      const temp = await mkdtemp(join(root, `${TEMP_PREFIX}${slug}-`))
      try {
        await writeFile(join(temp, "index.html"), html, { mode: FILE_MODE })
        await chmod(join(temp, "index.html"), FILE_MODE)
        await chmod(temp, DIR_MODE)
        const first = await rename(temp, target).then(() => true, (e: NodeJS.ErrnoException) => {
          if (e.code === "ENOTEMPTY" || e.code === "EEXIST") return false
          throw e
        })
        if (!first) await rename(join(temp, "index.html"), join(target, "index.html"))
      } finally {
        await rm(temp, { recursive: true, force: true })
      }
    })
  })

/** Removes the page at <root>/<slug>/ (nothing when there is none): renamed away first, so it is 404 from that moment. */
export const removePage = (dataDir: string, slug: string): Effect.Effect<void, PublishError> =>
  Effect.gen(function*() {
    if (!SLUG.test(slug)) return yield* new PublishError({ message: `the slug ${JSON.stringify(slug)} is not 22 base64url characters` })
    const root = pubRoot(dataDir)
    const target = join(root, slug)
    yield* io(`remove the published page ${target}`, async () => {
      const gone = join(root, `${TEMP_PREFIX}${slug}-gone-${randomBytes(6).toString("hex")}`)
      const moved = await rename(target, gone).then(() => true, (e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return false
        throw e
      })
      if (moved) await rm(gone, { recursive: true, force: true })
    })
  })
