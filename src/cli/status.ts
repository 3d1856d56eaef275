// `sagews status`: the tree's components as a table or as JSON.
import { formatExit, type ExitReason } from "../../supervisors/exit.ts"
import type { ChildStatus } from "../../supervisors/child.ts"

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

const uptime = (s: number | null): string => {
  if (s === null) return "-"
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.floor(s / 60)}m`
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
}

export const formatTable = (rows: ReadonlyArray<ComponentRow>): string => {
  const header = ["ID", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "PORT"]
  const body = rows.map((r) => [r.id, r.state, r.pid?.toString() ?? "-", uptime(r.uptimeSeconds), String(r.restarts), r.lastExit ?? "-", r.port?.toString() ?? "-"])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), ...body.map(line)].join("\n")
}
