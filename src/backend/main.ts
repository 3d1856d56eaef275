// The backend program: `node src/backend/main.ts --data DIR --port N --id backend:K --workers H:P,... [--db URL]
// [--cache H:P] [--cache-ttl S]`. Composes its services under the HTTP + SockJS server and runs until SIGTERM or
// SIGINT, which close the server, then the worker links, then the registry and the cache, and exit 0.
// Deep import: the @effect/platform-node barrel costs start-up time, and a restarted backend's is its downtime.
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import { Accounts } from "../accounts/service.ts"
import { OidcClients } from "../accounts/oidc.ts"
import { LinkedAccounts } from "../accounts/oidc-identities.ts"
import { Admission } from "./admission.ts"
import { Auth } from "./auth.ts"
import { ResultCache } from "./cache.ts"
import { Identities } from "./identity.ts"
import { WorkerLinks } from "./links.ts"
import { BackendLog, logFailure, teardown } from "./log.ts"
import { Options } from "./options.ts"
import { Registry } from "./registry.ts"
import { Router } from "./router.ts"
import { Server } from "./server.ts"
import { Worksheets } from "../worksheets/service.ts"

/** independent of one another; what uses them is built after them and released before them */
const Services = Layer.mergeAll(Router.layer, Registry.layer, ResultCache.layer, Admission.layer, Identities.layer, Auth.layer.pipe(Layer.provide(Accounts.layer)), Worksheets.layer, OidcClients.layer, LinkedAccounts.layer)

const Backend = Server.layer.pipe(Layer.provideMerge(WorkerLinks.layer), Layer.provideMerge(Services))

// Runs until interrupted; ends by itself only if the links supervisor gave up.
const program = WorkerLinks.use((links) => links.await).pipe(
  Effect.provide(Backend),
  logFailure,
  Effect.provide(BackendLog.layer),
  Effect.provide(Options.fromArgv(process.argv.slice(2))),
)

NodeRuntime.runMain(program, { disableErrorReporting: true, teardown })
