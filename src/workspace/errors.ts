// The two ways a workspace operation fails: a stale write (Conflict), and everything else (WorkspaceError, with a
// reason naming what failed).
import { Data } from "effect"

export type WorkspaceErrorReason =
  /** a path that is absolute, climbs out (`..`), names `.git`, or is too long */
  | "UnsafePath"
  /** a workspace id that could not be a directory name */
  | "InvalidId"
  /** a version that is not a commit id */
  | "InvalidVersion"
  /** content larger than MAX_FILE_BYTES */
  | "TooLarge"
  /** no such workspace, file, or version of it */
  | "NotFound"
  /** a workspace with this id exists already */
  | "Exists"
  /** git failed (its stderr is in `detail`) */
  | "Git"
  /** git did not finish within GIT_TIMEOUT */
  | "Timeout"
  /** PostgreSQL failed */
  | "Database"
  /** the local copy could not be written or read (disk) */
  | "Filesystem"

export class WorkspaceError extends Data.TaggedError("WorkspaceError")<{
  readonly reason: WorkspaceErrorReason
  /** the workspace, when one is concerned */
  readonly workspace?: string | undefined
  /** what the user or operator is told: what happened, which value or limit, what to do */
  readonly message: string
  /** the underlying cause as text: git's stderr, PostgreSQL's message */
  readonly detail?: string | undefined
}> {}

/** A write named the version it started from, and that is no longer the latest: nothing was written. */
export class Conflict extends Data.TaggedError("Conflict")<{
  readonly workspace: string
  readonly path: string
  /** the version the write started from */
  readonly base: string
  /** the workspace's latest version: read it, merge, and write again naming it */
  readonly latest: string
}> {
  override get message(): string {
    return `${this.path} in workspace ${this.workspace} was saved elsewhere since version ${this.base}: the latest is ${this.latest}; nothing was written`
  }
}
