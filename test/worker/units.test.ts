// Small pure parts of the worker: the uid pool and a session's bounded output log.
import { describe, expect, it } from "vitest"
import { OutputLog } from "../../src/worker/outlog.ts"
import { UidPool } from "../../src/worker/uids.ts"

describe("UidPool", () => {
  it("never gives out a uid that is in use, and reuses a freed one as late as possible", () => {
    const pool = new UidPool(100, 102)
    expect([pool.allocate(), pool.allocate(), pool.allocate()]).toEqual([100, 101, 102])
    expect(pool.allocate()).toBeUndefined()
    pool.release(101)
    expect(pool.allocate()).toBe(101)
    pool.release(100)
    pool.release(102)
    expect(pool.allocate()).toBe(102)
    expect(pool.inUse).toBe(2)
  })
})

describe("OutputLog", () => {
  const frame = (seq: number, text: string) => ({ type: "output" as const, session: "s", seq, msg: { kind: "stdout" as const, text } })

  it("numbers frames without gaps and keeps only the most recent ones", () => {
    const log = new OutputLog(3, 1_000_000)
    for (let i = 0; i < 5; i++) log.add(frame(log.nextSeq(), `line ${i}`))
    expect(log.lastSeq).toBe(5)
    expect(log.firstKept).toBe(3)
    expect(log.since(4).map((f) => f.seq)).toEqual([4, 5])
    expect(log.since(1).map((f) => f.seq)).toEqual([3, 4, 5])
  })

  it("drops old frames past its byte budget but always keeps the last", () => {
    const log = new OutputLog(100, 200)
    log.add(frame(log.nextSeq(), "x".repeat(150)))
    log.add(frame(log.nextSeq(), "y".repeat(150)))
    expect(log.since(0).map((f) => f.seq)).toEqual([2])
  })
})
