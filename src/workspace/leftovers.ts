// What a killed process leaves among its local repositories: git's lock files (git removes them on exit, so a
// SIGKILL inside git keeps them, and every later git command that needs them fails on "File exists"), repositories
// it was building aside, and bundle files it was fetching. One process owns a root, so at its start they are stale.
import { readdir, rm } from "node:fs/promises"
import { join } from "node:path"

/** git's lock files in `dir`: `<name>.lock` beside what it locks, at the repository's top and anywhere under refs/ */
const locks = async (dir: string, everywhere: boolean): Promise<Array<string>> => {
  const found: Array<string> = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isFile() && entry.name.endsWith(".lock")) found.push(path)
    else if (entry.isDirectory() && (everywhere || entry.name === "refs")) found.push(...(await locks(path, true)))
  }
  return found
}

/** Removes the leftovers of an earlier process from `root`, the directory of `<id>.git` repositories. */
export const removeLeftovers = async (root: string): Promise<void> => {
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name)
    // `.<id>.<uuid>.git`: a repository being created or restored, moved in place only once complete
    if (entry.name.startsWith(".")) await rm(path, { recursive: true, force: true })
    else if (entry.isFile() && entry.name.endsWith(".bundle")) await rm(path, { force: true })
    else if (entry.isDirectory() && entry.name.endsWith(".git")) for (const lock of await locks(path, false)) await rm(lock, { force: true })
  }
}
