// A join token: everything a new host needs to become part of the cluster, in one line an operator copies
// (`sgw1.` + base64url JSON). It is a credential: whoever holds it logs in to the store's PostgreSQL as the token's
// role and holds the worker secret (and, for web, the backends' identity key), until `sagews join-token --revoke`.
import { isIP } from "node:net"
import { z } from "zod"

export const TOKEN_PREFIX = "sgw1."

export const JOIN_ROLES = ["worker", "web"] as const
export type JoinRole = (typeof JOIN_ROLES)[number]

/** sagews's secrets are 64 hex characters (src/config/secret.ts); anything else did not come from a store host */
const secret = (what: string) => z.string({ error: `expected ${what}` }).regex(/^[0-9a-f]{64}$/, `expected ${what} (64 hex characters)`)

export const JoinTokenSchema = z.strictObject({
  /** the join_tokens row, for `--list` and `--revoke` */
  id: z.string().regex(/^[a-z0-9]{8,32}$/, "expected the token id (lowercase letters and digits)"),
  role: z.enum(JOIN_ROLES, { error: "expected the role worker or web" }),
  /** the store's PostgreSQL, as other hosts reach it */
  store: z.strictObject({
    address: z.string().refine((a) => isIP(a) !== 0, "expected the store's IP address"),
    port: z.number().int().min(1).max(65535, "expected a port 1-65535"),
  }),
  /** the PostgreSQL role made for this token, and its password */
  user: z.string().regex(/^sagews_join_[a-z0-9]{8,32}$/, "expected the join role's name (sagews_join_...)"),
  password: secret("the join role's password"),
  /** sha256:<hex> of the CA certificate's DER: the CA presented by the store must have it */
  ca: z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected the CA fingerprint sha256:<64 hex characters>"),
  workerKey: secret("the worker secret"),
  /** the backends' signing key (web tokens only): every web host must share it */
  identityKey: secret("the backends' identity key").optional(),
}).refine((t) => (t.role === "web") === (t.identityKey !== undefined), {
  message: "expected the identity key in a web token, and only there",
  path: ["identityKey"],
})

export type JoinToken = z.infer<typeof JoinTokenSchema>

/** The token was not one `sagews join-token` printed, or it lost characters on its way. */
export class TokenError extends Error {
  override readonly name = "TokenError"
}

export const encodeToken = (token: JoinToken): string =>
  TOKEN_PREFIX + Buffer.from(JSON.stringify(JoinTokenSchema.parse(token)), "utf8").toString("base64url")

const AGAIN = "copy the whole token `sagews join-token` printed on the store host (one line), or make a new one there"

/** Decodes and checks a token; every refusal names what is wrong with it. */
export const decodeToken = (text: string): JoinToken => {
  const trimmed = text.trim()
  if (!trimmed.startsWith(TOKEN_PREFIX)) {
    throw new TokenError(`the join token does not start with ${TOKEN_PREFIX} (it starts ${JSON.stringify(trimmed.slice(0, 8))}): ${AGAIN}`)
  }
  const body = trimmed.slice(TOKEN_PREFIX.length)
  if (!/^[A-Za-z0-9_-]+$/.test(body)) {
    const bad = body.match(/[^A-Za-z0-9_-]/)?.[0] ?? ""
    throw new TokenError(`the join token holds ${JSON.stringify(bad)}, which base64url does not use: ${AGAIN}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(body, "base64url").toString("utf8"))
  } catch {
    throw new TokenError(`the join token is truncated or altered (its ${body.length} characters do not decode to JSON): ${AGAIN}`)
  }
  const result = JoinTokenSchema.safeParse(parsed)
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "token"}: ${i.message}`).join("; ")
    throw new TokenError(`the join token is not valid (${problems}): ${AGAIN}`)
  }
  return result.data
}
