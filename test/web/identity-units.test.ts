// Identity tokens and source addresses without servers: a token verifies with the key that signed it and with no
// other; any altered character, an expiry or a claim from the future is refused by name; the key is created once
// however many backends start together; X-Forwarded-For counts only its last entry, and only from a local proxy.
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { normalizeAddress, sourceAddress } from "../../src/backend/address.ts"
import { ensureIdentityKey, IdentityIssuer, TICKET_LIFETIME_MS } from "../../src/backend/identity.ts"

const dir = mkdtempSync(join(tmpdir(), "sagews-identity-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const DAY = 86_400
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

describe("account tickets", () => {
  const key = Buffer.from("k".repeat(64))
  const ADA = "0b6c3f7e-5a51-4d0e-9a43-2f1c9a7d8e10"

  it("a ticket verifies on any issuer with the same key as the account it names, until it expires", () => {
    let now = 1_800_000_000_000
    const issuer = new IdentityIssuer(key, DAY, () => now)
    const { ticket, expiresAt } = issuer.ticket(ADA)
    expect(ticket).toMatch(/^a1\.0b6c3f7e-5a51-4d0e-9a43-2f1c9a7d8e10\.\d+\.[A-Za-z0-9_-]{43}$/)
    expect(expiresAt).toBe(now + TICKET_LIFETIME_MS)
    expect(new IdentityIssuer(Buffer.from(key), DAY, () => now).verifyTicket(ticket)).toEqual({ ok: true, account: ADA, expiresAt })
    expect(new IdentityIssuer(Buffer.from("j".repeat(64)), DAY, () => now).verifyTicket(ticket)).toMatchObject({ ok: false, message: expect.stringContaining("signature") })
    now = expiresAt
    expect(issuer.verifyTicket(ticket)).toMatchObject({ ok: false, message: expect.stringMatching(/expired at .*tickets last 1 hour.*GET \/api\/v1\/me/) })
  })

  it("refuses another account's id, a later expiry, an identity token and junk, naming what is wrong", () => {
    const issuer = new IdentityIssuer(key, DAY)
    const { ticket } = issuer.ticket(ADA)
    const [version, , expires, mac] = ticket.split(".")
    const other = `${version}.${ADA.replace("0b6c", "0b6d")}.${expires}.${mac}`
    expect(issuer.verifyTicket(other)).toMatchObject({ ok: false, message: expect.stringContaining("signature does not match") })
    expect(issuer.verifyTicket(`${version}.${ADA}.${Number(expires) + 1}.${mac}`)).toMatchObject({ ok: false, message: expect.stringContaining("signature") })
    // one signed with the right key but claiming a lifetime this service never issues
    const far = new IdentityIssuer(key, DAY, () => Date.now() + 10 * TICKET_LIFETIME_MS).ticket(ADA).ticket
    expect(issuer.verifyTicket(far)).toMatchObject({ ok: false, message: expect.stringContaining("later than any this service issues") })
    for (const junk of [issuer.issue().token, "", "a1.not-a-uuid.1.x", `${ticket}x`]) {
      expect(issuer.verifyTicket(junk)).toMatchObject({ ok: false, message: expect.stringContaining("malformed") })
    }
    // and a ticket is no identity token
    expect(issuer.verify(ticket)).toMatchObject({ ok: false, problem: "malformed" })
  })
})

describe("identity tokens", () => {
  const key = Buffer.from("k".repeat(64))

  it("a token verifies, on any issuer with the same key, as the client id and issue time it carries", () => {
    const issued = new IdentityIssuer(key, DAY).issue()
    expect(issued.client).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(issued.expiresAt - issued.issuedAt).toBe(DAY * 1000)
    expect(new IdentityIssuer(Buffer.from(key), DAY).verify(issued.token)).toEqual({ ok: true, identity: issued })
    expect(new IdentityIssuer(key, DAY).issue().client).not.toBe(issued.client)
  })

  it("refuses a token with any character changed, naming the signature", () => {
    const issuer = new IdentityIssuer(key, DAY)
    const { token, client } = issuer.issue()
    const [version, , issuedAt, mac] = token.split(".")
    const chosen = `${version}.${"A".repeat(22)}.${issuedAt}.${mac}`
    expect(issuer.verify(chosen)).toMatchObject({ ok: false, problem: "signature" })
    const older = `${version}.${client}.${Number(issuedAt) + 1}.${mac}`
    expect(issuer.verify(older)).toMatchObject({ ok: false, problem: "signature" })
    for (let i = 3; i < token.length; i++) {
      if (token[i] === ".") continue
      // the character one bit away: in the signature's last character that bit is a spare one, and counts too
      const c = BASE64URL[BASE64URL.indexOf(token[i] ?? "") ^ 1] ?? "0"
      const altered = token.slice(0, i) + c + token.slice(i + 1)
      expect(issuer.verify(altered).ok, `character ${i} altered to ${c}`).toBe(false)
    }
    const other = new IdentityIssuer(Buffer.from("o".repeat(64)), DAY).verify(token)
    expect(other).toMatchObject({ ok: false, problem: "signature", message: expect.stringMatching(/signature does not match.*send hello without a token/) })
  })

  it("refuses a malformed, an expired and a future token, each by name", () => {
    let now = Date.parse("2026-01-01T00:00:00Z")
    const issuer = new IdentityIssuer(key, DAY, () => now)
    for (const bad of ["", "v1", "v2.AAAAAAAAAAAAAAAAAAAAAA.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "c-chosen-by-me"]) {
      expect(issuer.verify(bad)).toMatchObject({ ok: false, problem: "malformed" })
    }
    const { token } = issuer.issue()
    now += DAY * 1000 - 1
    expect(issuer.verify(token).ok).toBe(true)
    now += 1
    expect(issuer.verify(token)).toMatchObject({ ok: false, problem: "expired", message: expect.stringContaining("expired at 2026-01-02T00:00:00.000Z (tokens last 1 day)") })
    const future = new IdentityIssuer(key, DAY, () => now + 3_600_000).issue().token
    expect(issuer.verify(future)).toMatchObject({ ok: false, problem: "future" })
  })

  it("the key is created once, 0600 in a 0700 directory, however many backends start together", async () => {
    const keys = await Promise.all(Array.from({ length: 8 }, () => ensureIdentityKey(dir)))
    expect(new Set(keys.map((k) => k.toString())).size).toBe(1)
    expect(keys[0]?.toString()).toMatch(/^[0-9a-f]{64}$/)
    expect(statSync(join(dir, "secret", "identity.key")).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, "secret")).mode & 0o777).toBe(0o700)
    expect((await ensureIdentityKey(dir)).equals(keys[0] ?? Buffer.alloc(0))).toBe(true)
  })
})

describe("source addresses", () => {
  it("behind a local proxy: the last X-Forwarded-For entry, whatever the caller wrote before it", () => {
    expect(sourceAddress("127.0.0.1", "198.51.100.9")).toBe("198.51.100.9")
    expect(sourceAddress("::ffff:127.0.0.1", "10.0.0.1, 10.0.0.2, 198.51.100.9")).toBe("198.51.100.9")
    expect(sourceAddress("::1", ["10.0.0.1", "198.51.100.9"])).toBe("198.51.100.9")
    expect(sourceAddress("127.0.0.1", "not-an-address")).toBe("127.0.0.1")
    expect(sourceAddress("127.0.0.1", undefined)).toBe("127.0.0.1")
  })

  it("from anywhere else: the peer, X-Forwarded-For ignored", () => {
    expect(sourceAddress("198.51.100.9", "10.0.0.1")).toBe("198.51.100.9")
    expect(sourceAddress("::ffff:198.51.100.9", "10.0.0.1")).toBe("198.51.100.9")
    expect(sourceAddress(undefined, "10.0.0.1")).toBe("unknown")
  })

  it("IPv6 counts by /64: one host's whole prefix is one address", () => {
    expect(normalizeAddress("2001:db8:1:2::1")).toBe("2001:0db8:0001:0002::/64")
    expect(normalizeAddress("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:0db8:0001:0002::/64")
    expect(normalizeAddress("2001:db8:1:3::1")).not.toBe(normalizeAddress("2001:db8:1:2::1"))
    expect(sourceAddress("127.0.0.1", "2001:db8:1:2::abcd")).toBe("2001:0db8:0001:0002::/64")
    expect(normalizeAddress("203.0.113.7")).toBe("203.0.113.7")
  })
})
