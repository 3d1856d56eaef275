// Runs a tutorial file's examples through one sagews sage session, in order, and reads of each what a doctest would
// have seen; an example past its timeout is interrupted, and one that does not stop then costs the session.
import type { OutputMessage } from "../../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../../src/wire/client.ts"
import type { Example, Seen, TutorialFile } from "./cases.ts"

/** how long an interrupted example may take to stop before its session is given up and a new one opened */
export const INTERRUPT_GRACE_MS = 10_000
/** MIME types of a picture: a doctest prints nothing of a shown picture, only the text of one that is a value */
const PICTURE = /^(image|video|model)\//

/**
 * The text a doctest would see: stdout and stderr as written, a display's text/plain (Sage's doctest backend prints
 * the plain text of what it displays), but nothing of a picture that `show(...)` displayed. The wire does not say
 * whether a display is the cell's value or a show(), so the example's source does (examples.py: ends_in_show).
 */
export const seenOf = (example: Example, messages: ReadonlyArray<OutputMessage>, timedOut: boolean, seconds: number): Seen => {
  let got = ""
  let raised: string | null = null
  for (const m of messages) {
    if (m.kind === "stdout" || m.kind === "stderr") got += m.text
    else if (m.kind === "display") {
      const picture = Object.keys(m.data).some((mime) => PICTURE.test(mime))
      const text = m.data["text/plain"]
      if (text !== undefined && !(picture && example.ends_in_show)) got += `${text}\n`
    } else if (m.kind === "error") raised = m.evalue === "" ? m.ename : `${m.ename}: ${m.evalue}`
    else if (m.kind === "done" && m.status === "limit") raised = `SessionLimit: the session's ${m.limit} limit ended it`
  }
  return { got, raised, timedOut, seconds }
}

interface Executed {
  readonly messages: ReadonlyArray<OutputMessage>
  readonly timedOut: boolean
  /** the session is no use any more: it ended, or it did not stop when interrupted */
  readonly lost: boolean
}

const executeWithin = (session: ClientSession, code: string, timeoutMs: number): Promise<Executed> =>
  new Promise((resolve) => {
    let timedOut = false
    const messages: Array<OutputMessage> = []
    const interrupt = setTimeout(() => {
      timedOut = true
      session.interrupt()
    }, timeoutMs)
    const giveUp = setTimeout(() => finish(true), timeoutMs + INTERRUPT_GRACE_MS)
    const finish = (lost: boolean): void => {
      clearTimeout(interrupt)
      clearTimeout(giveUp)
      resolve({ messages, timedOut, lost })
    }
    session.execute(code, (m) => messages.push(m)).then(
      () => finish(false),
      () => finish(true), // the session ended while it ran (a limit, a crash): its messages are in `messages`
    )
  })

/** Runs `file`'s examples in order in one fresh session (a new one after a lost session); one Seen per example. */
export const runOnSagews = async (client: WorkerClient, file: TutorialFile, timeoutMs: number): Promise<Array<Seen>> => {
  const seen: Array<Seen> = []
  let session = await client.open("sage")
  try {
    for (const example of file.examples) {
      const started = performance.now()
      const run = await executeWithin(session, example.source, timeoutMs)
      seen.push(seenOf(example, run.messages, run.timedOut, (performance.now() - started) / 1000))
      if (run.lost) {
        await session.close()
        session = await client.open("sage")
      }
    }
  } finally {
    await session.close()
  }
  return seen
}
