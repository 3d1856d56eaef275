// Checks of what callers name: workspace ids, paths inside a workspace, versions, content sizes. Each refusal is a
// WorkspaceError whose message names the bad value and the rule it broke.
import { Effect } from "effect"
import { WorkspaceError } from "./errors.ts"
import { MAX_FILE_BYTES, MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from "./limits.ts"

const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/
const VERSION = /^[0-9a-f]{40}$/
// control characters, and what git or a shell treats specially in a path
const UNSAFE_CHAR = /[\u0000-\u001f\u007f\\]/

const bytes = (s: string): number => Buffer.byteLength(s, "utf8")

/** Why `path` is no safe relative path inside a workspace, or undefined when it is one. */
export const pathProblem = (path: string): string | undefined => {
  if (path === "") return "it is empty"
  if (path.startsWith("/")) return "it is absolute"
  if (UNSAFE_CHAR.test(path)) return "it contains a control character or a backslash"
  if (bytes(path) > MAX_PATH_BYTES) return `it is longer than ${MAX_PATH_BYTES} bytes`
  for (const segment of path.split("/")) {
    if (segment === "") return "it has an empty segment (// or a trailing /)"
    if (segment === "." || segment === "..") return `it has a '${segment}' segment`
    if (segment.toLowerCase() === ".git") return "it names .git"
    if (bytes(segment) > MAX_SEGMENT_BYTES) return `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`
  }
  return undefined
}

export const checkPath = (workspace: string, path: string): Effect.Effect<string, WorkspaceError> => {
  const problem = pathProblem(path)
  return problem === undefined
    ? Effect.succeed(path)
    : Effect.fail(new WorkspaceError({
      reason: "UnsafePath",
      workspace,
      message: `refused the path ${JSON.stringify(path)}: ${problem}; name a file relative to the workspace, such as notebooks/a.ipynb`,
    }))
}

export const checkId = (id: string): Effect.Effect<string, WorkspaceError> =>
  ID.test(id)
    ? Effect.succeed(id)
    : Effect.fail(new WorkspaceError({
      reason: "InvalidId",
      message: `refused the workspace id ${JSON.stringify(id)}: use 1–64 letters, digits, '-' or '_', starting with a letter or digit`,
    }))

export const checkVersion = (workspace: string, version: string): Effect.Effect<string, WorkspaceError> =>
  VERSION.test(version)
    ? Effect.succeed(version)
    : Effect.fail(new WorkspaceError({
      reason: "InvalidVersion",
      workspace,
      message: `refused the version ${JSON.stringify(version)}: a version is a 40-digit lowercase hex commit id`,
    }))

export const checkSize = (workspace: string, path: string, content: Uint8Array): Effect.Effect<void, WorkspaceError> =>
  content.byteLength <= MAX_FILE_BYTES
    ? Effect.void
    : Effect.fail(new WorkspaceError({
      reason: "TooLarge",
      workspace,
      message: `refused to save ${path}: it is ${content.byteLength} bytes, more than the limit of ${MAX_FILE_BYTES} bytes (10 MiB) per file; save a smaller file`,
    }))
