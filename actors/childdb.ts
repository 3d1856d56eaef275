// How a child of ours (a backend, logwatch) is told where PostgreSQL is: `--db URL` without the password, the
// password in PGPASSWORD (which `pg` reads when the URL has none). /proc/<pid>/cmdline is world-readable;
// /proc/<pid>/environ only to the process's own uid and root.
import { Effect } from "effect"
import { ExitReason } from "../supervisors/exit.ts"
import { type DbTarget, serviceUrl } from "../src/db/credentials.ts"
import { splitPassword } from "../src/db/url.ts"

export interface ChildDb {
  /** for the command line: no password in it */
  readonly url: string
  /** added to the child's environment */
  readonly env: Readonly<Record<string, string>>
}

/** A URL (its password moved out) as a child gets it. */
export const childDb = (url: string): ChildDb => {
  const { url: bare, password } = splitPassword(url)
  return { url: bare, env: password === undefined ? {} : { PGPASSWORD: password } }
}

/** The service's URL for `target`, read at start (the own cluster's password is in <data>/secret/). */
export const resolveChildDb = (dataDir: string, target: DbTarget): Effect.Effect<ChildDb, ExitReason> =>
  Effect.tryPromise({
    try: () => serviceUrl(dataDir, target),
    catch: (e) => ExitReason.Crash({ detail: `the database password: ${e instanceof Error ? e.message : String(e)}` }),
  }).pipe(Effect.map(childDb))
