// Unit tests of the line parser: every line becomes a row, and no row can make an insert fail.
import { describe, expect, it } from "vitest"
import { componentOfFile, parseLine } from "../../src/logwatch/parse.ts"

const NOW = Date.UTC(2026, 0, 1)

describe("parseLine", () => {
  it("reads our JSON log lines", () => {
    const row = parseLine(`{"ts":"2026-11-22T10:00:00.000Z","component":"worker:1","pid":42,"level":"warn","msg":"hi"}`, "x", NOW)
    expect(row).toEqual({ component: "worker:1", pid: 42, ts: "2026-11-22T10:00:00.000Z", level: "warn", msg: "hi" })
  })
  it("keeps a malformed line whole, as an error of the file's component", () => {
    for (const line of ["not json at all", `{"msg": broken`, "[1,2]", `{"no":"msg"}`]) {
      expect(parseLine(line, "nginx", NOW)).toEqual({ component: "nginx", pid: null, ts: new Date(NOW).toISOString(), level: "error", msg: line })
    }
  })
  it("sanitises what PostgreSQL would reject", () => {
    const row = parseLine(`{"ts":"+275760-09-13T00:00:00.000Z","pid":1e12,"level":"WARNING","msg":"a\\u0000b"}`, "c", NOW)
    expect(row).toEqual({ component: "c", pid: null, ts: new Date(NOW).toISOString(), level: "warn", msg: "a\\u0000b" })
    expect(parseLine(`{"msg":{"k":1}}`, "c", NOW).msg).toBe(`{"k":1}`)
    expect(parseLine("bad\u0000line", "c", NOW).msg).toBe("bad\\u0000line")
    // component is indexed: a btree entry must stay small, so a huge one is cut
    expect(parseLine(JSON.stringify({ component: "x".repeat(5000), level: "y".repeat(5000), msg: "m" }), "c", NOW))
      .toMatchObject({ component: "x".repeat(200), level: "y".repeat(200) })
  })
  it("passes a valid UTC timestamp through and replaces one PostgreSQL would reject", () => {
    const ts = (value: string) => parseLine(JSON.stringify({ ts: value, msg: "m" }), "c", NOW).ts
    expect(ts("2024-02-29T23:59:59.123456Z")).toBe("2024-02-29T23:59:59.123456Z")
    // No such day: PostgreSQL would reject it as is; Date rolls it over to a day it accepts.
    expect(ts("2026-02-29T00:00:00Z")).toBe("2026-03-01T00:00:00.000Z")
    expect(ts("2026-11-22T10:00:00+01:00")).toBe("2026-11-22T09:00:00.000Z")
    expect(ts("yesterday")).toBe(new Date(NOW).toISOString())
  })
  it("names the component after the file, rotated or not", () => {
    expect(componentOfFile("worker:1.log")).toBe("worker:1")
    expect(componentOfFile("backend:2.log.1")).toBe("backend:2")
  })
})
