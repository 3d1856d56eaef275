// The code a permalink address names (docs/PROTOCOL.md "Permalinks"): a ?z= link's own, decoded in the browser, or a
// ?q= link's, asked of this server; or why it cannot be read, for the page to say.
import { decodeZ, fetchPermalink, type PageLink } from "./permalink.ts"
import type { KernelKind } from "./types.ts"

export type LinkCode =
  | { readonly ok: true; readonly code: string; readonly kernel: KernelKind }
  | { readonly ok: false; readonly message: string }

export const codeOfLink = async (link: Extract<PageLink, { type: "z" | "q" }>): Promise<LinkCode> => {
  if (link.type === "z") {
    try {
      return { ok: true, code: await decodeZ(link.z), kernel: link.kernel }
    } catch (e) {
      // decodeZ's PermalinkError says what is wrong with the link
      return { ok: false, message: e instanceof Error ? e.message : String(e) }
    }
  }
  const r = await fetchPermalink(link.q)
  if (!r.ok) return r
  return { ok: true, code: r.value.code, kernel: r.value.kernel === "python" ? "python" : "sage" }
}
