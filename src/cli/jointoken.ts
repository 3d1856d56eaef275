// `sagews join-token`: print a new token (stdout alone, so `$(sagews join-token)` holds just it), list the tokens,
// or revoke one. The work is in src/cluster/tokens.ts; this file checks the options and formats the answers.
import { Effect } from "effect"
import { JOIN_ROLES, type JoinRole } from "../cluster/token.ts"
import { createJoinToken, listJoinTokens, revokeJoinToken, type StoreTarget, type TokenRow } from "../cluster/tokens.ts"
import { UsageError } from "./args.ts"

export interface JoinTokenCommand {
  readonly target: StoreTarget
  readonly role: string | undefined
  readonly list: boolean
  readonly revoke: string | undefined
  readonly json: boolean
  readonly out: (line: string) => void
  readonly err: (line: string) => void
}

const when = (d: Date | null): string => (d === null ? "-" : d.toISOString().replace(/\.\d{3}Z$/, "Z"))

const table = (rows: ReadonlyArray<TokenRow>): string => {
  const lines = [["ID", "ROLE", "PG ROLE", "CREATED", "USED", "BY", "REVOKED"], ...rows.map((r) => [
    r.id, r.role, r.pgRole, when(r.createdAt), when(r.usedAt), r.usedBy ?? "-", when(r.revokedAt),
  ])]
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)))
  return lines.map((l) => l.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n")
}

export const joinTokenCommand = async (o: JoinTokenCommand): Promise<number> => {
  if (o.list && o.revoke !== undefined) throw new UsageError("join-token takes --list or --revoke ID, not both")
  if (o.list) {
    const rows = await Effect.runPromise(listJoinTokens(o.target))
    o.out(o.json ? JSON.stringify(rows) : rows.length === 0 ? "no join tokens yet: `sagews join-token` makes one" : table(rows))
    return 0
  }
  if (o.revoke !== undefined) {
    const row = await Effect.runPromise(revokeJoinToken(o.target, o.revoke))
    o.out(`sagews: join token ${row.id} (${row.role}, ${row.pgRole}) is revoked: it can no longer log in, and its connections were ended`)
    return 0
  }
  const role = o.role ?? "worker"
  if (!(JOIN_ROLES as ReadonlyArray<string>).includes(role)) {
    throw new UsageError(`join-token --role expects ${JOIN_ROLES.join(" or ")}, got ${JSON.stringify(role)} (a store is made by a plain \`sagews init\`)`)
  }
  const made = await Effect.runPromise(createJoinToken(o.target, role as JoinRole))
  o.out(made.token)
  o.err(`sagews: join token ${made.id} for a ${made.role} host (PostgreSQL role ${made.pgRole}); it is shown only this once.`)
  o.err(`on the new host: sagews init --join TOKEN --role ${made.role} --data DIR; revoke it with: sagews join-token --revoke ${made.id}`)
  return 0
}
