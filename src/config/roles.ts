// What a host runs in a cluster (`sagews start --role ROLES`): store (PostgreSQL, memcached), web (backends, nginx,
// haproxy), worker (workers), or all of them (`all`, the default: one machine runs the whole tree).
import { z } from "zod"

export const ROLES = ["store", "web", "worker"] as const
export type Role = (typeof ROLES)[number]

/** `all`, or a comma list of distinct roles: the error names what is not a role */
export const RolesText = z.string({ error: "expected all, or a comma list of store, web and worker" }).superRefine((text, ctx) => {
  if (text === "all") return
  const parts = text.split(",")
  const unknown = parts.filter((p) => !(ROLES as ReadonlyArray<string>).includes(p))
  if (unknown.length > 0) ctx.addIssue({ code: "custom", message: `${unknown.map((u) => JSON.stringify(u)).join(", ")} ${unknown.length > 1 ? "are not roles" : "is not a role"}: expected all, or a comma list of store, web and worker` })
  else if (new Set(parts).size !== parts.length) ctx.addIssue({ code: "custom", message: "expected each role once" })
})

/** the roles a valid `role` text names */
export const rolesOf = (text: string): ReadonlySet<Role> =>
  new Set(text === "all" ? ROLES : (text.split(",") as Array<Role>))
