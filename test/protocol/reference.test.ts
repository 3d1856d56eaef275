// docs/PROTOCOL.md's message reference is what the zod schemas say: the committed document equals what
// `npm run docs` would write, and the tables carry the limits and codes the backend enforces.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { ClientMessage, MAX_CODE_BYTES } from "../../src/protocol/browser.ts"
import { PROTOCOL_DOC, rewrite, sections } from "../../src/protocol/reference.ts"

describe("the protocol reference", () => {
  it("docs/PROTOCOL.md is what npm run docs writes from src/protocol/browser.ts", () => {
    const doc = readFileSync(PROTOCOL_DOC, "utf8")
    // on failure: run `npm run docs` and commit docs/PROTOCOL.md with the schema change
    expect(rewrite(doc)).toBe(doc)
  })

  it("a document without a section's markers, or with markers no schema writes, is refused by name", () => {
    expect(() => rewrite("no markers here")).toThrow(/no section browser-client-messages/)
    const doc = readFileSync(PROTOCOL_DOC, "utf8")
    expect(() => rewrite(`${doc}\n<!-- generated:nonsense begin -->\n<!-- generated:nonsense end -->\n`)).toThrow(/nonsense/)
  })

  it("the tables say what the schemas enforce: byte limits, fromSeq ≥ 1, every error code", () => {
    const s = sections()
    expect(s["browser-client-messages"]).toMatch(/\| `code` \| string \| required \| at most 262,144 bytes of UTF-8 \|/)
    expect(s["browser-client-messages"]).toMatch(/\| `fromSeq` \| integer \| required \| ≥ 1 \|/)
    for (const code of ["unknown_session", "not_attached", "session_ended", "wrong_kind"]) expect(s["browser-error-codes"]).toContain(`| \`${code}\` |`)
    expect(s["browser-server-messages"]).toContain("**`detached`**")
    // and the schema does count bytes: 140,000 two-byte characters are over the limit
    const code = "é".repeat(MAX_CODE_BYTES / 2 + 1)
    expect(ClientMessage.safeParse({ type: "execute", id: "x", session: "s", code }).success).toBe(false)
    expect(ClientMessage.safeParse({ type: "execute", id: "x", session: "s", code: "é".repeat(MAX_CODE_BYTES / 2) }).success).toBe(true)
  })
})
