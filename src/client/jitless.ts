// Imported first by each client entry: zod compiles its parsers with `new Function` unless told not to, and under a
// CSP without 'unsafe-eval' (sagews's page, many embedding sites) even its probe for that is reported as a violation.
import { z } from "zod"

z.config({ jitless: true })
