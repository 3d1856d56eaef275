// A full disk is a condition to wait out, not a crash to restart into: a component's start writes to the data
// directory (its rendered config, pid file, log), so with no room it would crash at once, be restarted, crash again,
// and its supervisors would give up one after another until the whole tree stopped. Instead a start waits, before
// anything else, until the data directory's filesystem has room again; what is running keeps running.
import { statfsSync } from "node:fs"
import { Effect, Schedule } from "effect"
import type { ChildSpec } from "../supervisors/child.ts"

/** below this many free bytes on the data directory's filesystem nothing is started, and `status` says the disk is full */
export const DISK_FLOOR_BYTES = 16 * 1024 * 1024
/** how often a start that waits for room looks again */
const roomPoll = Schedule.spaced("1 second")

export interface DiskSpace {
  readonly path: string
  /** bytes an unprivileged process may still write */
  readonly freeBytes: number
  readonly totalBytes: number
  /** fewer than DISK_FLOOR_BYTES free */
  readonly full: boolean
}

/** The data directory's filesystem: its free and total bytes; undefined if it cannot be read (it does not exist). */
export const diskSpace = (path: string): DiskSpace | undefined => {
  try {
    const s = statfsSync(path)
    const freeBytes = s.bavail * s.bsize
    return { path, freeBytes, totalBytes: s.blocks * s.bsize, full: freeBytes < DISK_FLOOR_BYTES }
  } catch {
    return undefined
  }
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`

/** Returns once `dataDir`'s filesystem has DISK_FLOOR_BYTES free (at once, usually); says so while it waits. */
export const waitForRoom = (dataDir: string, id: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const first = diskSpace(dataDir)
    if (first === undefined || !first.full) return
    yield* Effect.logWarning(`the disk of ${dataDir} is full (${mib(first.freeBytes)} free, ${mib(DISK_FLOOR_BYTES)} needed): ${id} waits to start until there is room`)
    yield* Effect.repeat(Effect.sync(() => diskSpace(dataDir)?.full === true), { schedule: roomPoll, until: (full) => !full })
    yield* Effect.logInfo(`there is room on the disk of ${dataDir} again: starting ${id}`)
  })

/** `spec`, whose every start first waits for room on `dataDir`'s disk. */
export const withRoom = (dataDir: string, spec: ChildSpec): ChildSpec => ({ ...spec, start: Effect.andThen(waitForRoom(dataDir, spec.id), spec.start) })
