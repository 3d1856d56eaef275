// The share dialog's read-only share link (docs/PROTOCOL.md "Share links"): "Create read-only link" shows the
// worksheet's /?s=<token> address, the same one until "Revoke link" ends it. share.ts calls `addShareLinks` each
// time the dialog opens, with the section to fill. A cell's permalink is the cell's own button (permalink-dialog.ts).
import { button, el } from "../dom.ts"
import { copyField } from "../copy-field.ts"
import { shareWorksheet, unshareWorksheet } from "../permalink.ts"

export interface SharedWorksheet {
  readonly id: string
  readonly title: string
}

export interface ShareLinkOptions {
  /** the session's CSRF token now (it changes with each sign-in) */
  readonly csrf: () => string | undefined
}

/** Appends the read-only share link's controls to `section`. */
export const addShareLinks = (section: HTMLElement, worksheet: SharedWorksheet, options: ShareLinkOptions): void => {
  const field = copyField("share-link", "the read-only link")
  const status = el("p", { class: "publish-result", attrs: { role: "status", id: "share-link-status" } })
  const create = async (): Promise<void> => {
    status.textContent = "making the link…"
    const r = await shareWorksheet(worksheet.id, options.csrf())
    if (!r.ok) {
      field.set(undefined)
      status.textContent = `No link made: ${r.message}`
      return
    }
    field.set(new URL(r.value.url, location.origin).href)
    status.textContent = "Anyone with this link can read the latest save of this worksheet, without an account, until you revoke it."
  }
  const revoke = async (): Promise<void> => {
    const r = await unshareWorksheet(worksheet.id, options.csrf())
    if (!r.ok) {
      status.textContent = `Not revoked: ${r.message}`
      return
    }
    field.set(undefined)
    status.textContent = "Revoked: the link opens nothing from now on. A new link has a new address."
  }
  section.append(
    el("h3", { text: "Read-only link" }),
    el("p", { class: "hint", text: `A private address for “${worksheet.title}”: whoever has it sees the cells and outputs as last saved (not what was published), and can copy them, but cannot change anything.` }),
    el("div", { class: "dialog-buttons start" },
      button("Create read-only link", () => void create(), { attrs: { id: "create-share-link" } }),
      button("Revoke link", () => void revoke(), { attrs: { id: "revoke-share-link" } }),
    ),
    field.root,
    status,
  )
}
