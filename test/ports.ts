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

/** `count` consecutive free ports; returns the first (the harness's own search, src/chaos/ports.ts) */
export { freePorts } from "../src/chaos/ports.ts"
