// Sessions belong to the account that opened them (issue 10, item 3): a connection's `hello` presents the account
// ticket of GET /api/v1/me, and from then on only connections of that account, on any backend and under any identity,
// may resume, execute in or close its sessions; another account, the same browser identity without the ticket, and
// anyone with a forged, altered or expired ticket are answered as for an id that does not exist.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { connectRaw, type Msg, type RawClient } from "../protocol/raw.ts"
import { processesOf, startWebStack, type WebStack } from "./harness.ts"
import { users, type Who } from "./users.ts"

let stack: WebStack
const open: Array<RawClient> = []
const { tokenUser, cookieUser } = users(() => stack)

beforeAll(async () => {
  stack = await startWebStack({ backends: 2, kernels: ["python"], postgres: true })
}, 120_000)

afterAll(async () => {
  for (const c of open) c.close()
  const dir = stack?.dataDir
  await stack?.stop()
  if (dir !== undefined) expect(processesOf(dir)).toEqual([])
})

let counter = 0
const id = (prefix: string): string => `${prefix}${++counter}`

/** what GET /api/v1/me answers `who` */
const me = async (who: Who): Promise<{ account: { id: string }; socket: string; socketExpiresAt: number }> => {
  const r = await fetch(`${stack.backendUrl(0)}/api/v1/me`, { headers: who.headers })
  expect(r.status).toBe(200)
  return (await r.json()) as { account: { id: string }; socket: string; socketExpiresAt: number }
}

/** a raw connection to backend `backend`, with the hello `hello` (none when undefined); the identity reply */
const connect = async (backend: number, hello?: Record<string, unknown>): Promise<{ c: RawClient; identity: Msg | undefined }> => {
  const c = await connectRaw(stack.backendUrl(backend))
  open.push(c)
  const identity = hello === undefined ? undefined : await c.request({ type: "hello", id: id("h"), ...hello })
  return { c, identity }
}

const refusedAsUnknown = async (c: RawClient, session: string): Promise<void> => {
  const resume = await c.request({ type: "resume", id: id("s"), session, fromSeq: 1 })
  expect(resume).toMatchObject({ type: "error", code: "unknown_session", session })
  expect(resume.message).toBe(`no session ${session} exists: the session registry has no record of that id; check it, or open a new session`)
  const execute = await c.request({ type: "execute", id: id("x"), session, code: "print('stolen')" })
  expect(execute).toMatchObject({ type: "error", code: "unknown_session", session })
  expect(await c.request({ type: "close", id: id("c"), session })).toMatchObject({ type: "error", code: "unknown_session" })
}

const run = async (c: RawClient, session: string, code: string): Promise<string> => {
  const x = id("x")
  expect(await c.request({ type: "execute", id: x, session, code })).toMatchObject({ type: "ack" })
  let text = ""
  for (;;) {
    const m = await c.next((o) => o.type === "output" && o.id === x)
    const msg = m.msg as { kind: string; text?: string }
    if (msg.kind === "done") return text
    if (msg.kind === "stdout") text += msg.text ?? ""
  }
}

describe("sessions belong to their account", () => {
  it("only the account's connections, on any backend and under any identity, reach its session; everyone else hears of no such session", async () => {
    const ada = await me(await cookieUser("ada@example.org"))
    const bob = await me(await tokenUser("bob@example.org"))
    const first = await connect(0, { account: ada.socket })
    expect(first.identity).toMatchObject({ type: "identity", account: ada.account.id })
    const opened = await first.c.request({ type: "open", id: id("o"), kernel: "python" })
    expect(opened).toMatchObject({ type: "opened" })
    const session = String(opened.session)
    expect(await run(first.c, session, "secret = 42; print('ada')")).toBe("ada\n")

    // Bob with his own ticket; the very browser identity Ada's connection had, without her ticket; nobody at all;
    // a ticket of Ada's with one character changed: on both backends, each is told there is no such session
    const adaIdentity = String(first.identity?.token)
    const altered = `${ada.socket.slice(0, -2)}${ada.socket.endsWith("AA") ? "BB" : "AA"}`
    for (const backend of [0, 1]) {
      const asBob = await connect(backend, { account: bob.socket })
      expect(asBob.identity).toMatchObject({ account: bob.account.id })
      await refusedAsUnknown(asBob.c, session)
      const sameBrowser = await connect(backend, { token: adaIdentity })
      expect(sameBrowser.identity).toMatchObject({ type: "identity" })
      expect(sameBrowser.identity).not.toHaveProperty("account")
      await refusedAsUnknown(sameBrowser.c, session)
      await refusedAsUnknown((await connect(backend)).c, session)
      const forged = await connect(backend, { account: altered })
      expect(forged.identity).toMatchObject({ type: "error", code: "identity", message: expect.stringContaining("signature does not match") })
      await refusedAsUnknown(forged.c, session)
    }

    // Ada on a new connection through the other backend, with a new identity and her ticket: her session, her state
    const again = await connect(1, { account: (await me(await tokenUserOf("ada@example.org"))).socket })
    expect(again.identity).toMatchObject({ account: ada.account.id })
    expect(again.identity?.client).not.toBe(first.identity?.client)
    expect(await again.c.request({ type: "resume", id: id("s"), session, fromSeq: 1 })).toMatchObject({ type: "resumed", session })
    expect(await run(again.c, session, "print(secret)")).toBe("42\n")
    expect(await first.c.next((m) => m.type === "detached")).toMatchObject({ session })
    expect(await again.c.request({ type: "close", id: id("c"), session })).toMatchObject({ type: "ack" })
    await again.c.next((m) => m.type === "ended" && m.session === session)
    // ended, it still is not Bob's to hear about
    await refusedAsUnknown((await connect(0, { account: bob.socket })).c, session)
  })

  it("a refused ticket changes nothing: the connection keeps the identity and account it had", async () => {
    const cy = await me(await tokenUser("cy@example.org"))
    const { c, identity } = await connect(0, { account: cy.socket })
    expect(identity).toMatchObject({ account: cy.account.id })
    for (const bad of ["a1.junk", `${cy.socket}x`]) {
      expect(await c.request({ type: "hello", id: id("h"), account: bad })).toMatchObject({ type: "error", code: "identity", message: expect.stringContaining("malformed") })
    }
    expect(await c.request({ type: "hello", id: id("h") })).toMatchObject({ type: "identity", client: identity?.client, account: cy.account.id })
  })
})

/** a second way in for an account made earlier: a new API token (`sagews user token`) */
const tokenUserOf = async (email: string): Promise<Who> => {
  const made = await users(() => stack).sagews(["user", "token", email])
  expect(made.code).toBe(0)
  return { headers: { authorization: `Bearer ${made.out.trim()}` } }
}
