// Builds the browser client with esbuild: static/build/app.{js,css} (the page) and static/build/embed.{js,css}
// (behind /embed.js), KaTeX fonts beside them; writes static/build/.stamp last, so setup knows the build is complete.
import { mkdir, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { build, type BuildOptions, type Plugin } from "esbuild"

const ROOT = join(import.meta.dirname, "../..")
const OUT = join(ROOT, "static/build")

/** zod re-exports ~40 message locales that nothing here uses (~250 KiB minified): only English is kept. */
const englishOnlyZod: Plugin = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /locales\/index\.js$/ }, (args) => (args.importer.includes("/zod/") ? { path: "zod-locales", namespace: "zod-locales" } : undefined))
    b.onLoad({ filter: /.*/, namespace: "zod-locales" }, () => ({ contents: `export { default as en } from ${JSON.stringify(join(ROOT, "node_modules/zod/v4/locales/en.js"))}`, resolveDir: ROOT }))
  },
}

const main = async (): Promise<void> => {
  const started = performance.now()
  await rm(OUT, { recursive: true, force: true })
  await mkdir(OUT, { recursive: true })
  const common = {
    bundle: true,
    platform: "browser",
    target: ["es2022"],
    minify: true,
    sourcemap: true,
    legalComments: "none",
    loader: { ".woff2": "file", ".woff": "file", ".ttf": "file" },
    assetNames: "fonts/[name]-[hash]",
    // sockjs-client reads `global`; the browser's is `globalThis`
    define: { global: "globalThis", "process.env.NODE_ENV": '"production"' },
    metafile: true,
    logLevel: "warning",
    plugins: [englishOnlyZod],
    outdir: OUT,
  } as const satisfies BuildOptions
  // The page is an ES module split in chunks (the terminal loads on first use); the embed is one classic script.
  const page = await build({ ...common, entryPoints: { app: join(ROOT, "src/client/app.ts") }, format: "esm", splitting: true, chunkNames: "chunks/[name]-[hash]" })
  const embed = await build({ ...common, entryPoints: { embed: join(ROOT, "src/client/embed.ts") }, format: "iife" })
  const result = { metafile: { outputs: { ...page.metafile.outputs, ...embed.metafile.outputs } } }
  const sizes = Object.entries(result.metafile.outputs)
    .filter(([file]) => /\.(js|css)$/.test(file))
    .map(([file, info]) => `${file.replace(`${ROOT}/`, "")} ${(info.bytes / 1024).toFixed(0)} KiB`)
  await writeFile(join(OUT, ".stamp"), `${new Date().toISOString()}\n`)
  process.stdout.write(`client built in ${Math.round(performance.now() - started)} ms: ${sizes.join(", ")}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`client build failed: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
