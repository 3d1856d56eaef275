// LogFiles without a database: new files, rename rotation (with writes after the rename), truncation, the
// unterminated tail of a finished rotated file, and read positions that move only on commit.
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeEach, expect, it } from "vitest"
import { type Batch, LogFiles, ROTATE_WAIT } from "../../src/logwatch/files.ts"

let dir = ""
let files: LogFiles
let now = 1_000_000

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "sagews-lwfiles-"))
  files = new LogFiles(dir)
  files.resetOffsets(new Map())
})
afterEach(async () => {
  await files.close()
  await fs.rm(dir, { recursive: true, force: true })
})

/** sync + read + commit; the lines read, as `component: line` */
const step = async (commit = true): Promise<ReadonlyArray<string>> => {
  await files.sync(now)
  const batch: Batch = await files.read(1000, 1 << 20, now)
  if (commit) files.committedBatch(batch)
  return batch.slices.flatMap((s) => s.lines.map((l) => `${s.component}: ${l}`)).sort()
}

it("reads complete lines of new files, and again after a failed commit", async () => {
  await fs.writeFile(path.join(dir, "a.log"), "1\n2\npartial")
  expect(await step(false)).toEqual(["a: 1", "a: 2"])
  expect(await step()).toEqual(["a: 1", "a: 2"]) // not committed: read again
  expect(await step()).toEqual([])
  await fs.appendFile(path.join(dir, "a.log"), " line\n")
  await fs.writeFile(path.join(dir, "b.log"), "b1\n")
  await fs.writeFile(path.join(dir, "notes.txt"), "not a log\n")
  expect(await step()).toEqual(["a: partial line", "b: b1"])
})

it("follows a rename rotation: the old file is read to its end, including lines written after the rename", async () => {
  const file = path.join(dir, "w.log")
  await fs.writeFile(file, "1\n")
  expect(await step()).toEqual(["w: 1"])
  await fs.appendFile(file, "2\n")
  await fs.rename(file, `${file}.1`)
  await fs.appendFile(`${file}.1`, "3\nunterminated")
  await fs.writeFile(file, "new 1\n")
  expect(await step()).toEqual(["w: 2", "w: 3", "w: new 1"])
  now += ROTATE_WAIT
  // quiet for ROTATE_WAIT: the unterminated tail of the rotated file is a line of its own, then it is closed
  expect(await step()).toEqual(["w: unterminated"])
  expect(await step()).toEqual([])
  await fs.appendFile(file, "new 2\n")
  expect(await step()).toEqual(["w: new 2"])
})

it("starts again at 0 after a truncation, and finishes a rotated file it never saw", async () => {
  const file = path.join(dir, "t.log")
  await fs.writeFile(file, "1\n2\n")
  expect(await step()).toEqual(["t: 1", "t: 2"])
  await fs.truncate(file, 0)
  await fs.appendFile(file, "3\n")
  expect(await step()).toEqual(["t: 3"])
  await fs.writeFile(path.join(dir, "old.log.1"), "o1\no2\n") // rotated while logwatch was down
  expect(await step()).toEqual(["old: o1", "old: o2"])
})

it("resumes from committed offsets loaded from the database", async () => {
  const file = path.join(dir, "r.log")
  await fs.writeFile(file, "1\n2\n3\n")
  const ino = (await fs.stat(file)).ino
  files.resetOffsets(new Map([[ino, 2]]))
  expect(await step()).toEqual(["r: 2", "r: 3"])
  // an offset past the end: the inode was reused by a new file
  await files.close()
  files = new LogFiles(dir)
  files.resetOffsets(new Map([[ino, 1_000]]))
  expect(await step()).toEqual(["r: 1", "r: 2", "r: 3"])
})

it("forgets the offset of a file once it is gone, so that a reused inode starts at 0", async () => {
  const file = path.join(dir, "gone.log")
  await fs.writeFile(file, "1\n")
  const ino = (await fs.stat(file)).ino
  expect(await step()).toEqual(["gone: 1"])
  await fs.rm(file)
  await files.sync(now)
  now += ROTATE_WAIT
  await files.sync(now)
  // read to its end and quiet: closed, and its offset row goes with the next commit
  const batch = await files.read(1000, 1 << 20, now)
  expect(batch.forget).toEqual([ino])
  files.committedBatch(batch)
  expect((await files.read(1000, 1 << 20, now)).forget).toEqual([])
})
