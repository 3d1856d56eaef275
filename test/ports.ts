// Free TCP ports on 127.0.0.1 for tests and benchmarks: the kernel's pick (port 0), or a run of consecutive
// free ports for components that take base, base+1, ... (backends, workers).
import { createServer } from "node:net"

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port assigned"))))
    })
  })

const portFree = (port: number): Promise<boolean> =>
  new Promise((ok) => {
    const s = createServer()
    s.once("error", () => ok(false))
    s.listen(port, "127.0.0.1", () => s.close(() => ok(true)))
  })

/** `count` consecutive free ports; returns the first. */
export const freePorts = async (count: number): Promise<number> => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000)
    let all = true
    for (let i = 0; i < count && all; i++) all = await portFree(base + i)
    if (all) return base
  }
  throw new Error(`no ${count} consecutive free ports found`)
}
