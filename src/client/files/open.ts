// How the page opens a kernel session: a signed-in account's with the workspace's files in its home (`workspace:
// true`, so load("x.sage") and open("data.csv") find them), falling back to a plain session when the connection turns
// out to be no account's (code `account`) or the files do not fit (code `file`, whose message the person is shown).
import type { SagewsClient } from "../connection.ts"
import type { ClientSession } from "../session.ts"
import type { KernelKind, Limits } from "../types.ts"
import type { Notify } from "../worksheets/editor.ts"

const codeOf = (error: unknown): string | undefined => {
  const reply = (error as { reply?: { code?: unknown } } | undefined)?.reply
  return typeof reply?.code === "string" ? reply.code : undefined
}

export const openKernel = async (
  client: SagewsClient,
  kernel: KernelKind,
  options: { limits?: Limits },
  signedIn: boolean,
  notify: Notify,
): Promise<ClientSession> => {
  if (!signedIn) return client.open(kernel, options)
  try {
    return await client.open(kernel, { ...options, workspace: true })
  } catch (error) {
    const code = codeOf(error)
    if (code === "file") {
      notify(`This ${kernel} session started without your files: ${error instanceof Error ? error.message : String(error)}`, "warning")
    } else if (code !== "account") throw error
    // `account`: the connection's hello carried no ticket the server took, so its sessions are no account's
    return client.open(kernel, options)
  }
}
