// The page's CSP (conf/nginx.conf.template) allows the output frames' size reporter by hash: the two must agree,
// or on the page every HTML output would stay 150 px tall.
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { FRAME_SIZE_SCRIPT } from "../../src/client/frame.ts"

const ROOT = join(import.meta.dirname, "../..")

describe("the output frame's size script", () => {
  it("is allowed by its hash in the page's Content-Security-Policy", () => {
    const hash = createHash("sha256").update(FRAME_SIZE_SCRIPT).digest("base64")
    const template = readFileSync(join(ROOT, "conf/nginx.conf.template"), "utf8")
    // the page's: the one of `location /` (published worksheets under /pub/ have a stricter one of their own)
    const page = template.slice(template.indexOf("location / {"))
    const policy = /add_header Content-Security-Policy "([^"]*)"/.exec(page)?.[1]
    expect(policy, "conf/nginx.conf.template sets no Content-Security-Policy for location /").toBeDefined()
    expect(policy).toContain(`'sha256-${hash}'`)
    expect(policy).toMatch(/script-src 'self' /)
    expect(policy).not.toMatch(/unsafe-inline|unsafe-eval/)
  })
})
