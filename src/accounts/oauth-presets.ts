// The sign-in providers that speak plain OAuth 2 rather than OpenID Connect: GitHub and Facebook. There is no
// discovery and no ID token: each preset names its authorization and token endpoints, the scopes that reach the
// person's email, and how its API says who signed in. The rest (PKCE, state, the code exchange) is openid-client's, as
// for an OpenID Connect provider (oidc.ts).
import type { PRESETS } from "../config/schema.ts"

export type Preset = (typeof PRESETS)[number]

/** who the provider's API says signed in */
export interface PresetPerson {
  readonly subject: string
  readonly email: string | undefined
  readonly emailVerified: boolean
  readonly name: string | undefined
}

/** GETs a JSON document of the provider's API with the access token; throws with the status on anything but 2xx */
export type ApiGet = (url: URL) => Promise<unknown>

export interface PresetSpec {
  /** the public service's web and API bases; a config's `issuer` and `api` replace them (GitHub Enterprise Server) */
  readonly issuer: string
  readonly api: (issuer: string) => string
  readonly authorization: (issuer: string, api: string) => string
  readonly token: (issuer: string, api: string) => string
  readonly scopes: ReadonlyArray<string>
  readonly person: (api: string, get: ApiGet) => Promise<PresetPerson>
}

const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined)
const field = (o: unknown, name: string): unknown => (typeof o === "object" && o !== null ? (o as Record<string, unknown>)[name] : undefined)
const trimmed = (url: string): string => url.replace(/\/+$/, "")

/** the id must be there: it is what identifies the person at the provider, whatever their email becomes */
const subjectOf = (provider: string, user: unknown): string => {
  const id = field(user, "id")
  if ((typeof id !== "number" || !Number.isSafeInteger(id)) && (typeof id !== "string" || id === "")) {
    throw new Error(`${provider}'s API answered without the person's id`)
  }
  return String(id)
}

export const PRESET_SPECS: Record<Preset, PresetSpec> = {
  github: {
    issuer: "https://github.com",
    // github.com's API has a host of its own; a GitHub Enterprise Server's is under /api/v3
    api: (issuer) => (trimmed(issuer) === "https://github.com" ? "https://api.github.com" : `${trimmed(issuer)}/api/v3`),
    authorization: (issuer) => `${trimmed(issuer)}/login/oauth/authorize`,
    token: (issuer) => `${trimmed(issuer)}/login/oauth/access_token`,
    scopes: ["read:user", "user:email"],
    person: async (api, get) => {
      const user = await get(new URL(`${trimmed(api)}/user`))
      // the profile's email is only what the person made public, and GitHub does not say it is verified there: the
      // verified addresses are in /user/emails (scope user:email); the primary one if it is verified, else the first
      const emails = await get(new URL(`${trimmed(api)}/user/emails`)).catch(() => [])
      const verified = (Array.isArray(emails) ? emails : []).filter((e) => field(e, "verified") === true && text(field(e, "email")) !== undefined)
      const chosen = verified.find((e) => field(e, "primary") === true) ?? verified[0]
      const email = text(field(chosen, "email"))
      return {
        subject: subjectOf("GitHub", user),
        email: email ?? text(field(user, "email")),
        emailVerified: email !== undefined,
        name: text(field(user, "name")) ?? text(field(user, "login")),
      }
    },
  },
  facebook: {
    issuer: "https://www.facebook.com",
    api: () => "https://graph.facebook.com/v19.0",
    authorization: (issuer, api) => `${trimmed(issuer)}/${/\/(v\d+\.\d+)$/.exec(trimmed(api))?.[1] ?? "v19.0"}/dialog/oauth`,
    token: (_issuer, api) => `${trimmed(api)}/oauth/access_token`,
    scopes: ["email", "public_profile"],
    person: async (api, get) => {
      const me = await get(new URL(`${trimmed(api)}/me?fields=id,name,email`))
      // Facebook gives the email only when the person confirmed it: an email it gives is verified
      const email = text(field(me, "email"))
      return { subject: subjectOf("Facebook", me), email, emailVerified: email !== undefined, name: text(field(me, "name")) }
    },
  },
}
