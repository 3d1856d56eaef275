// `sagews status`: the tree's components as a table or as JSON, each worker with a line on its sessions.
import { formatExit, type ExitReason } from "../../supervisors/exit.ts"
import type { ChildStatus } from "../../supervisors/child.ts"
import { DISK_FLOOR_BYTES, type DiskSpace } from "../../actors/room.ts"

export interface ComponentRow {
  readonly id: string
  readonly type: "worker" | "supervisor"
  readonly state: string
  readonly pid: number | null
  readonly port: number | null
  readonly uptimeSeconds: number | null
  readonly restarts: number
  readonly lastExit: string | null
}

/** Flattens the tree depth-first: supervisors before their children, so escalations show next to their cause. */
export const flattenStatus = (children: ReadonlyArray<ChildStatus>, now: number): ComponentRow[] =>
  children.flatMap((c) => [
    {
      id: c.id,
      type: c.children ? ("supervisor" as const) : ("worker" as const),
      state: c.state,
      pid: c.pid ?? null,
      port: c.port ?? null,
      uptimeSeconds: c.startedAt !== undefined && c.state === "running" ? Math.max(0, Math.round((now - c.startedAt) / 1000)) : null,
      restarts: c.restarts,
      lastExit: c.lastExit ? formatExit(c.lastExit as ExitReason) : null,
    },
    ...flattenStatus(c.children ?? [], now),
  ])

/** `45s`, `12m`, `3h5m`: a duration in seconds as tables show it. */
export const formatSeconds = (s: number | null): string => {
  if (s === null) return "-"
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.floor(s / 60)}m`
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
}

/** Left-aligned columns two spaces apart, one line per row, the header first. */
export const alignColumns = (header: ReadonlyArray<string>, body: ReadonlyArray<ReadonlyArray<string>>): string[] => {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), ...body.map(line)]
}

/** The table; `subtrees` adds a line below a component's row (a worker's sessions), as `  └─ <text>`. */
export const formatTable = (rows: ReadonlyArray<ComponentRow>, subtrees: ReadonlyMap<string, string> = new Map()): string => {
  const header = ["ID", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "PORT"]
  const body = rows.map((r) => [r.id, r.state, r.pid?.toString() ?? "-", formatSeconds(r.uptimeSeconds), String(r.restarts), r.lastExit ?? "-", r.port?.toString() ?? "-"])
  const [head, ...lines] = alignColumns(header, body)
  return [head!, ...lines.flatMap((line, i) => {
    const sub = subtrees.get(rows[i]!.id)
    return sub === undefined ? [line] : [line, `  └─ ${sub}`]
  })].join("\n")
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MiB`

/** The data directory's disk, in one line; a full one says what that means for the tree and what to do. */
export const diskLine = (disk: DiskSpace): string =>
  disk.full
    ? `disk FULL: ${disk.path} has ${mib(disk.freeBytes)} free of ${mib(disk.totalBytes)} (under ${mib(DISK_FLOOR_BYTES)}): what runs keeps running, a component that stops waits to start again until there is room; free some space`
    : `disk: ${disk.path} has ${mib(disk.freeBytes)} free of ${mib(disk.totalBytes)}`
