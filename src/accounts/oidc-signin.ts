// A sign-in through an OpenID Connect provider from start to web session: the sign-in in progress (state, nonce, PKCE
// verifier, provider, return path, expiry) sealed into a cookie with a key derived from the session key; at the
// callback the cookie checked against the provider and the state, the code exchanged (oidc.ts), the account found or
// made (oidc-identities.ts) and the web session started as a password sign-in does (Auth.startSession).
import { Clock, Data, Effect } from "effect"
import { z } from "zod"
import type { AuthService } from "../backend/auth.ts"
import type { OidcClientsService, OidcError } from "./oidc.ts"
import type { LinkedAccountsService } from "./oidc-identities.ts"
import type { AccountsError } from "./service.ts"
import type { Account } from "./store.ts"

/** s a started sign-in may take at the provider before its callback is refused (and its cookie's Max-Age) */
export const PENDING_MAX_AGE = 10 * 60
/** the purpose the pending cookie's key is derived for */
const SEAL_PURPOSE = "oidc-pending"

const Pending = z.strictObject({
  provider: z.string(),
  state: z.string(),
  nonce: z.string(),
  verifier: z.string(),
  returnTo: z.string(),
  /** ms since the epoch */
  expiresAt: z.number(),
})
type Pending = z.infer<typeof Pending>

/** The callback cannot be trusted or the person cannot be signed in; `reason` says which. */
export class OidcSignInRefused extends Data.TaggedError("OidcSignInRefused")<{
  readonly provider: string
  readonly reason: "NoSignInStarted" | "BadState" | "Expired" | "NoEmail" | "UnverifiedEmail" | "Disabled"
  readonly detail: string
}> {
  override get message(): string {
    switch (this.reason) {
      case "NoSignInStarted": return `no sign-in through ${this.provider} was started in this browser (or it was finished already): start again at /api/v1/oidc/${this.provider}/start`
      case "BadState": return `the sign-in's state does not match the one this browser started (${this.detail}): start again at /api/v1/oidc/${this.provider}/start`
      case "Expired": return `the sign-in through ${this.provider} took longer than ${PENDING_MAX_AGE / 60} minutes: start again`
      case "NoEmail": return `${this.provider} did not give an email address, and sagews accounts are kept by email: the provider must allow the email scope`
      case "UnverifiedEmail": return `${this.provider} has not verified the email ${this.detail}: verify it there, then sign in again`
      case "Disabled": return `the account ${this.detail} is disabled; ask an operator`
    }
  }
}

export interface Started {
  readonly location: string
  /** the sealed pending sign-in, for the cookie */
  readonly pending: string
}

export interface Finished {
  readonly account: Account
  readonly sessionId: string
  readonly csrf: string
  readonly returnTo: string
  readonly how: "identity" | "email" | "created"
}

export interface OidcSignInService {
  readonly names: ReadonlyArray<string>
  start(provider: string, redirectUri: string, returnTo: string): Effect.Effect<Started, OidcError>
  finish(provider: string, callbackUrl: URL, pending: string | undefined, address: string): Effect.Effect<Finished, OidcError | OidcSignInRefused | AccountsError>
}

const parsePending = (text: string | undefined): Pending | undefined => {
  if (text === undefined) return undefined
  try {
    const parsed = Pending.safeParse(JSON.parse(text))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

export const makeOidcSignIn = (clients: OidcClientsService, linked: LinkedAccountsService, auth: AuthService): OidcSignInService => {
  const sealer = auth.sealer(SEAL_PURPOSE)
  return {
    names: clients.names,
    start: Effect.fn("OidcSignIn.start")(function*(provider: string, redirectUri: string, returnTo: string) {
      const { url, checks } = yield* clients.authorize(provider, redirectUri)
      const expiresAt = (yield* Clock.currentTimeMillis) + PENDING_MAX_AGE * 1000
      const pending: Pending = { provider, ...checks, returnTo, expiresAt }
      return { location: url.href, pending: sealer.seal(JSON.stringify(pending)) }
    }),
    finish: Effect.fn("OidcSignIn.finish")(function*(provider: string, callbackUrl: URL, sealed: string | undefined, address: string) {
      const refuse = (reason: OidcSignInRefused["reason"], detail = "") => Effect.fail(new OidcSignInRefused({ provider, reason, detail }))
      if (sealed === undefined || sealed === "") return yield* refuse("NoSignInStarted")
      const pending = parsePending(sealer.open(sealed))
      if (pending === undefined) return yield* refuse("BadState", "the sign-in cookie is not one this server made")
      if (pending.provider !== provider) return yield* refuse("BadState", `it was started for ${pending.provider}`)
      if ((yield* Clock.currentTimeMillis) > pending.expiresAt) return yield* refuse("Expired")
      // the provider's error is the clearer answer when there is one: it comes back without a state of ours sometimes
      const state = callbackUrl.searchParams.get("state")
      if (!callbackUrl.searchParams.has("error") && state !== pending.state) return yield* refuse("BadState", state === null ? "the callback has no state" : "the callback's state differs")
      const who = yield* clients.finish(provider, callbackUrl, pending)
      const found = yield* linked.link(who)
      if (found.type === "no-email") return yield* refuse("NoEmail")
      if (found.type === "unverified-email") return yield* refuse("UnverifiedEmail", found.email)
      if (found.disabled) return yield* refuse("Disabled", found.account.email)
      const session = yield* auth.startSession(found.account, address)
      return { account: session.account, sessionId: session.sessionId, csrf: session.csrf, returnTo: pending.returnTo, how: found.how } satisfies Finished
    }),
  }
}
