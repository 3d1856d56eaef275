// The header's account area: "Sign in" (a dialog with a button per OpenID Connect provider, GET /api/v1/oidc, and the
// email and password form of local accounts), or the signed-in email with "Sign out".
import type { Account, Api, Provider } from "./api.ts"
import { button, el } from "./dom.ts"

export interface AccountAreaOptions {
  readonly root: HTMLElement
  readonly api: Api
  /** a local sign-in succeeded (a provider's sign-in comes back as a new page load) */
  readonly onSignedIn: (account: Account) => void
  readonly onSignOut: () => void
}

export class AccountArea {
  private readonly options: AccountAreaOptions
  private readonly dialog: HTMLDialogElement
  private readonly error: HTMLElement
  private readonly providerList: HTMLElement

  constructor(options: AccountAreaOptions) {
    this.options = options
    this.error = el("p", { class: "form-error", attrs: { role: "alert" } })
    this.providerList = el("div", { class: "providers" })
    const email = el("input", { attrs: { type: "email", name: "email", id: "sign-in-email", autocomplete: "username", required: "" } })
    const password = el("input", { attrs: { type: "password", name: "password", id: "sign-in-password", autocomplete: "current-password", required: "" } })
    const submit = el("button", { text: "Sign in", class: "primary", attrs: { type: "submit" } })
    const form = el("form", { class: "sign-in-form" },
      el("label", { attrs: { for: "sign-in-email" }, text: "Email" }), email,
      el("label", { attrs: { for: "sign-in-password" }, text: "Password" }), password,
      this.error,
      el("div", { class: "dialog-buttons" }, button("Cancel", () => this.dialog.close()), submit),
    )
    form.addEventListener("submit", (event) => {
      event.preventDefault()
      submit.disabled = true
      this.error.textContent = ""
      void options.api.login(email.value, password.value).then((r) => {
        submit.disabled = false
        if (!r.ok) {
          this.error.textContent = r.problem.message
          return
        }
        password.value = ""
        this.dialog.close()
        options.onSignedIn(r.value)
      })
    })
    this.dialog = el("dialog", { class: "sign-in", attrs: { "aria-labelledby": "sign-in-title" } },
      el("h2", { text: "Sign in", attrs: { id: "sign-in-title" } }),
      this.providerList,
      form,
    )
    document.body.append(this.dialog)
  }

  showProviders(providers: ReadonlyArray<Provider>): void {
    this.providerList.replaceChildren(...providers.map((p) =>
      button(`Sign in with ${p.name}`, () => {
        // the provider sends the browser back here, to this worksheet
        location.assign(`${p.start}?return=${encodeURIComponent(location.pathname + location.search)}`)
      }, { class: "provider" })
    ))
    if (providers.length > 0) this.providerList.append(el("p", { class: "or", text: "or with your email and password" }))
  }

  openDialog(): void {
    this.error.textContent = ""
    this.dialog.showModal()
  }

  render(account: Account | undefined): void {
    const root = this.options.root
    root.dataset["signedIn"] = String(account !== undefined)
    if (account === undefined) {
      root.replaceChildren(button("Sign in", () => this.openDialog(), { attrs: { id: "sign-in-button" } }))
      return
    }
    root.replaceChildren(
      el("span", { class: "who", text: account.email, attrs: { id: "account-email", title: account.name ?? account.email } }),
      button("Sign out", () => this.options.onSignOut(), { attrs: { id: "sign-out" } }),
    )
  }
}
