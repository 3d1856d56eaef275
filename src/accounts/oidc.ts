// The sign-in providers of the backend's options (signIn.providers), as openid-client clients: for OpenID Connect,
// discovery once per provider (cached; retried, with a timeout; a failure is not cached), the authorization URL with
// PKCE, state and nonce, and the code exchange that checks them and the ID token, giving who the provider says signed
// in; for a plain OAuth 2 preset (GitHub, Facebook: oauth-presets.ts), its endpoints, PKCE and state, and its API.
import { readFile } from "node:fs/promises"
import { Context, Data, Duration, Effect, Layer, Schedule } from "effect"
import * as client from "openid-client"
import { Options } from "../backend/options.ts"
import { PRESET_SPECS, type PresetSpec } from "./oauth-presets.ts"

/** the scopes asked of a provider whose config names none: the email finds or makes the account */
export const DEFAULT_SCOPES = ["openid", "email", "profile"]
/** s one request to a provider may take (discovery, token exchange, userinfo) */
const REQUEST_TIMEOUT_SECONDS = 10
/** a provider that is briefly away at discovery: three more tries, 0.2 s, 0.4 s, 0.8 s apart */
const discoveryRetry = Schedule.max([Schedule.exponential("200 millis"), Schedule.recurs(3)])
const DISCOVERY_DEADLINE = Duration.seconds(4 * REQUEST_TIMEOUT_SECONDS)

/**
 * A sign-in through a provider failed: no provider of that name (UnknownProvider), its discovery or secret failed
 * (Discovery, Secret), it answered the authorization with an error (Denied), or the code exchange or its checks failed
 * (Exchange: a wrong state, nonce or ID token, a code used twice).
 */
export class OidcError extends Data.TaggedError("OidcError")<{
  readonly provider: string
  readonly reason: "UnknownProvider" | "Discovery" | "Secret" | "Denied" | "Exchange"
  readonly detail: string
}> {
  override get message(): string {
    switch (this.reason) {
      case "UnknownProvider": return `no sign-in provider is named ${JSON.stringify(this.provider)} (see GET /api/v1/oidc)`
      case "Discovery": return `the sign-in provider ${this.provider} cannot be reached (its discovery failed: ${this.detail}); try again later`
      case "Secret": return `the client secret of sign-in provider ${this.provider} cannot be read: ${this.detail}`
      case "Denied": return `the sign-in provider ${this.provider} refused the sign-in: ${this.detail}`
      case "Exchange": return `the sign-in through ${this.provider} could not be completed: ${this.detail}; start again`
    }
  }
}

/** what the authorization request committed to, kept by the caller (a signed cookie) until the callback */
export interface PendingChecks {
  readonly state: string
  readonly nonce: string
  readonly verifier: string
}

/** who the provider says signed in */
export interface ProviderIdentity {
  readonly issuer: string
  readonly subject: string
  readonly email: string | undefined
  readonly emailVerified: boolean
  readonly name: string | undefined
}

export interface OidcClientsService {
  /** the configured providers' names, in config order */
  readonly names: ReadonlyArray<string>
  /** the provider's authorization URL for a sign-in that comes back to `redirectUri`, and what the callback must check */
  authorize(provider: string, redirectUri: string): Effect.Effect<{ readonly url: URL; readonly checks: PendingChecks }, OidcError>
  /** the callback's URL (with code and state, or error) exchanged for who signed in */
  finish(provider: string, callbackUrl: URL, checks: PendingChecks): Effect.Effect<ProviderIdentity, OidcError>
}

const describe = (e: unknown): string => {
  if (e instanceof client.AuthorizationResponseError) return e.error_description !== undefined ? `${e.error}: ${e.error_description}` : e.error
  if (e instanceof client.ResponseBodyError) return `${e.error}${e.error_description !== undefined ? `: ${e.error_description}` : ""} (HTTP ${e.status})`
  const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : ""
  return e instanceof Error ? `${e.message}${cause}` : String(e)
}

const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined)

export type ProviderConfig = Options["Service"]["signIn"]["providers"][number]

export const makeOidcClients = (providers: ReadonlyArray<ProviderConfig>): OidcClientsService => {
  const byName = new Map(providers.map((p) => [p.name, p]))
  const discovered = new Map<string, client.Configuration>()
  const provider = (name: string) => {
    const p = byName.get(name)
    return p === undefined ? Effect.fail(new OidcError({ provider: name, reason: "UnknownProvider", detail: "not configured" })) : Effect.succeed(p)
  }
  const secretOf = (p: ProviderConfig) =>
    p.clientSecret !== undefined ? Effect.succeed(p.clientSecret) : Effect.tryPromise({
      try: async () => (await readFile(p.clientSecretFile ?? "", "utf8")).trim(),
      catch: (e) => new OidcError({ provider: p.name, reason: "Secret", detail: `${p.clientSecretFile}: ${describe(e)}` }),
    })
  /** a preset's configuration: its endpoints as server metadata, nothing to discover */
  const presetConfiguration = (p: ProviderConfig, spec: PresetSpec, secret: string) => {
    const issuer = p.issuer ?? spec.issuer
    const api = p.api ?? spec.api(issuer)
    const config = new client.Configuration(
      { issuer, authorization_endpoint: spec.authorization(issuer, api), token_endpoint: spec.token(issuer, api) },
      p.clientId,
      { client_secret: secret },
      client.ClientSecretPost(secret),
    )
    if (new URL(issuer).protocol === "http:" || new URL(api).protocol === "http:") client.allowInsecureRequests(config)
    // each request (the code exchange, the API) has the time discovery has, as for an OpenID Connect provider
    config[client.customFetch] = (url, options) => fetch(url, { ...options, body: options.body as BodyInit | undefined, signal: AbortSignal.timeout(REQUEST_TIMEOUT_SECONDS * 1000) })
    return config
  }
  const configuration = Effect.fn("OidcClients.discover")(function*(p: ProviderConfig) {
    const known = discovered.get(p.name)
    if (known !== undefined) return known
    const secret = yield* secretOf(p)
    if (p.preset !== undefined) {
      const config = presetConfiguration(p, PRESET_SPECS[p.preset], secret)
      discovered.set(p.name, config)
      return config
    }
    const issuer = new URL(p.issuer ?? "")
    const found = yield* Effect.tryPromise({
      try: () => client.discovery(issuer, p.clientId, secret, undefined, {
        timeout: REQUEST_TIMEOUT_SECONDS,
        // the config allows http only for a provider on this machine
        ...(issuer.protocol === "http:" ? { execute: [client.allowInsecureRequests] } : {}),
      }),
      catch: (e) => new OidcError({ provider: p.name, reason: "Discovery", detail: `${p.issuer}: ${describe(e)}` }),
    }).pipe(
      Effect.retry(discoveryRetry),
      Effect.timeoutOrElse({ duration: DISCOVERY_DEADLINE, orElse: () => Effect.fail(new OidcError({ provider: p.name, reason: "Discovery", detail: `${p.issuer}: no answer within ${Duration.format(DISCOVERY_DEADLINE)}` })) }),
    )
    discovered.set(p.name, found)
    return found
  })
  /** who a preset's API says signed in, asked with the access token */
  const presetPerson = (p: ProviderConfig, spec: PresetSpec, config: client.Configuration, accessToken: string) =>
    Effect.tryPromise({
      try: async () => {
        const issuer = p.issuer ?? spec.issuer
        const get = async (url: URL): Promise<unknown> => {
          const headers = new Headers({ accept: "application/json", "user-agent": "sagews" })
          const response = await client.fetchProtectedResource(config, accessToken, url, "GET", undefined, headers)
          if (!response.ok) throw new Error(`${url.pathname} answered HTTP ${response.status}`)
          return response.json()
        }
        return { issuer, ...(await spec.person(p.api ?? spec.api(issuer), get)) } satisfies ProviderIdentity
      },
      catch: (e) => new OidcError({ provider: p.name, reason: "Exchange", detail: `asking ${p.preset} who signed in: ${describe(e)}` }),
    })
  return {
    names: providers.map((p) => p.name),
    authorize: Effect.fn("OidcClients.authorize")(function*(name: string, redirectUri: string) {
      const p = yield* provider(name)
      const config = yield* configuration(p)
      const checks = { state: client.randomState(), nonce: client.randomNonce(), verifier: client.randomPKCECodeVerifier() }
      const challenge = yield* Effect.promise(() => client.calculatePKCECodeChallenge(checks.verifier))
      const spec = p.preset !== undefined ? PRESET_SPECS[p.preset] : undefined
      // a plain OAuth 2 provider has no ID token to carry a nonce, and no openid scope
      const scopes = new Set(spec !== undefined ? (p.scopes ?? spec.scopes) : ["openid", ...(p.scopes ?? DEFAULT_SCOPES)])
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: [...scopes].join(" "),
        code_challenge: challenge,
        code_challenge_method: "S256",
        state: checks.state,
        ...(spec === undefined ? { nonce: checks.nonce } : {}),
      })
      return { url, checks }
    }),
    finish: Effect.fn("OidcClients.finish")(function*(name: string, callbackUrl: URL, checks: PendingChecks) {
      const p = yield* provider(name)
      const config = yield* configuration(p)
      const error = callbackUrl.searchParams.get("error")
      if (error !== null) {
        const description = callbackUrl.searchParams.get("error_description")
        return yield* new OidcError({ provider: name, reason: "Denied", detail: description !== null ? `${error}: ${description}` : error })
      }
      const spec = p.preset !== undefined ? PRESET_SPECS[p.preset] : undefined
      const tokens = yield* Effect.tryPromise({
        try: () => client.authorizationCodeGrant(config, callbackUrl, spec !== undefined
          ? { pkceCodeVerifier: checks.verifier, expectedState: checks.state }
          : { pkceCodeVerifier: checks.verifier, expectedState: checks.state, expectedNonce: checks.nonce, idTokenExpected: true }),
        catch: (e) => new OidcError({ provider: name, reason: e instanceof client.AuthorizationResponseError ? "Denied" : "Exchange", detail: describe(e) }),
      })
      if (spec !== undefined) return yield* presetPerson(p, spec, config, tokens.access_token)
      const claims = tokens.claims()
      if (claims === undefined) return yield* new OidcError({ provider: name, reason: "Exchange", detail: "the provider sent no ID token" })
      // a provider may keep the email out of the ID token (oidc-provider does by default): ask its userinfo endpoint
      const info = text(claims["email"]) !== undefined ? claims : yield* Effect.tryPromise({
        try: () => client.fetchUserInfo(config, tokens.access_token, claims.sub),
        catch: (e) => new OidcError({ provider: name, reason: "Exchange", detail: `userinfo: ${describe(e)}` }),
      })
      return {
        issuer: claims.iss,
        subject: claims.sub,
        email: text(info["email"]),
        emailVerified: info["email_verified"] === true,
        name: text(info["name"]),
      } satisfies ProviderIdentity
    }),
  }
}

export class OidcClients extends Context.Service<OidcClients, OidcClientsService>()("sagews/accounts/OidcClients") {
  static readonly layer = Layer.effect(OidcClients, Effect.gen(function*() {
    const { signIn } = yield* Options
    return makeOidcClients(signIn.providers)
  }))
}
