// Unit tests for the `{{name}}` template renderer and the shipped haproxy / nginx templates.
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { CONF_DIR, placeholders, renderTemplate, renderTemplateFile } from "../../src/config/render.ts"

describe("renderTemplate", () => {
  it.effect("substitutes every placeholder, spaces inside the braces allowed", () =>
    Effect.gen(function* () {
      const out = yield* renderTemplate("bind {{bind}}:{{ port }} # {{port}}", { bind: "127.0.0.1", port: 8080 })
      assert.strictEqual(out, "bind 127.0.0.1:8080 # 8080")
    }))

  it.effect("fails naming the placeholder without a value", () =>
    Effect.gen(function* () {
      const r = yield* Effect.result(renderTemplate("listen {{port}};\nroot {{static_root}};", { port: 1 }, "nginx.conf"))
      assert.isTrue(Result.isFailure(r))
      if (Result.isFailure(r)) {
        assert.strictEqual(r.failure._tag, "TemplateError")
        assert.deepStrictEqual(r.failure.missing, ["static_root"])
        assert.include(r.failure.message, "{{static_root}}")
        assert.include(r.failure.message, "nginx.conf")
      }
    }))

  it.effect("names every missing placeholder once, and treats an empty string as missing", () =>
    Effect.gen(function* () {
      const r = yield* Effect.result(renderTemplate("{{a}} {{b}} {{a}} {{c}}", { b: "" }))
      assert.isTrue(Result.isFailure(r))
      if (Result.isFailure(r)) assert.deepStrictEqual(r.failure.missing, ["a", "b", "c"])
    }))

  it.effect("leaves text that is not a placeholder alone", () =>
    Effect.gen(function* () {
      const out = yield* renderTemplate("return 200 \"ok\\n\"; $uri {x} {{ }}", {})
      assert.strictEqual(out, "return 200 \"ok\\n\"; $uri {x} {{ }}")
    }))
})

describe("shipped templates", () => {
  it("haproxy hard-codes no port and no path", async () => {
    const text = await readFile(join(CONF_DIR, "haproxy.cfg.template"), "utf8")
    assert.deepStrictEqual([...placeholders(text)].sort(), [
      "admin_socket", "api_timeout", "api_timeout_seconds", "backend_servers", "bind", "hard_stop_after", "nginx_port", "port",
      "server_options", "server_state_file", "tunnel_timeout",
    ])
    // a port after a colon; a JSON number of haproxy's error bodies (`\"retryAfterMs\":1000`) is not one
    assert.notMatch(text, /(?<!\\"):\d{2,5}\b/)
    assert.notMatch(text, /\s\/(?:tmp|var|work|run)\//)
  })

  it("nginx hard-codes no port and no path", async () => {
    const text = await readFile(join(CONF_DIR, "nginx.conf.template"), "utf8")
    assert.deepStrictEqual([...placeholders(text)].sort(), ["mime_types", "port", "prefix", "pub_csp", "pub_root", "static_root"])
    assert.notMatch(text, /listen\s+(?:[\d.]+:)?\d+;/)
    assert.notMatch(text, /\s\/(?:tmp|var|work|run|etc)\//)
  })

  it.effect("renderTemplateFile writes the rendered file and refuses a hole", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "sagews-render-")))
      yield* Effect.addFinalizer(() => Effect.promise(() => rm(dir, { recursive: true, force: true })))
      const out = join(dir, "nginx.conf")
      const template = join(CONF_DIR, "nginx.conf.template")
      const r = yield* Effect.result(renderTemplateFile(template, out, { port: 1, prefix: dir }))
      assert.isTrue(Result.isFailure(r))
      yield* renderTemplateFile(template, out, { port: 1, prefix: dir, static_root: dir, pub_root: join(dir, "pub"), pub_csp: "script-src 'none'", mime_types: "/m" })
      const written = yield* Effect.promise(() => readFile(out, "utf8"))
      assert.include(written, "listen 127.0.0.1:1;")
      assert.include(written, `root ${dir};`)
    }).pipe(Effect.scoped))
})
