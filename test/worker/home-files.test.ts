// Files in a session's home on a real worker: files staged before an open are in the home, owned by the session's
// uid, before the first execute; what code writes is listed as new or changed; a file is read back byte for byte;
// symlinks (out of the home, or on the way), directories, FIFOs and files over 10 MiB are refused; bad staging is
// refused before anything starts; nothing is left afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { WorkerClient } from "../../src/wire/client.ts"
import { startTestWorker, stopAndCheck, type TestWorker, text } from "./harness.ts"

describe("files in a session's home", () => {
  let worker: TestWorker
  let client: WorkerClient
  beforeAll(async () => {
    worker = await startTestWorker({ uidRange: { first: 236_000, last: 236_999 }, kernels: ["python"], pool: 1 })
    client = await worker.connect()
  })
  afterAll(async () => {
    client.close()
    await stopAndCheck(worker)
  })

  it("puts the staged files into the home, lists what code writes and reads it back", async () => {
    const big = Buffer.alloc(5 * 2 ** 20, 7) // two frames' worth of chunks
    const s = await client.open("python", {
      user: "ann",
      files: [
        { path: "data.csv", content: Buffer.from("a,b\n1,2\n3,4\n") },
        { path: "sub/dir/deep.txt", content: Buffer.from("deep") },
        { path: "empty", content: Buffer.alloc(0) },
        { path: "big.bin", content: big },
      ],
    })
    const look = await s.execute([
      "import os, csv",
      "rows = list(csv.reader(open('data.csv')))",
      "print(rows, open('sub/dir/deep.txt').read(), os.path.getsize('empty'), os.path.getsize('big.bin'))",
      "st = os.stat('data.csv'); print(st.st_uid == os.getuid(), oct(st.st_mode & 0o777), os.getcwd())",
    ].join("\n"))
    expect(text(look)).toBe("[['a', 'b'], ['1', '2'], ['3', '4']] deep 0 5242880\nTrue 0o644 /home/sagews\n")
    // nothing is new yet: the files the open wrote are not offered back
    expect(await s.listFiles()).toEqual({ files: [], truncated: false })
    expect((await s.listFiles(true)).files.map((f) => f.path)).toEqual(["big.bin", "data.csv", "empty", "sub/dir/deep.txt"])

    await s.execute("open('out.txt', 'w').write('written by code\\n')\nopen('data.csv', 'a').write('5,6\\n')\nos.makedirs('.hidden', exist_ok=True); open('.hidden/x', 'w').write('x')")
    const listed = await s.listFiles()
    expect(listed.files.map((f) => f.path)).toEqual(["data.csv", "out.txt"])
    expect(listed.files[1]).toMatchObject({ size: 16, mtime: expect.any(Number) })
    expect((await s.readFile("out.txt")).toString()).toBe("written by code\n")
    expect((await s.readFile("data.csv")).toString()).toBe("a,b\n1,2\n3,4\n5,6\n")
    expect((await s.readFile("big.bin")).equals(big)).toBe(true)
    expect((await s.readFile("empty")).length).toBe(0)
    await s.close()
  })

  it("refuses symlinks, directories, FIFOs and files over 10 MiB, with a reason", async () => {
    const s = await client.open("python", { user: "ann" })
    await s.execute([
      "import os",
      "os.symlink('/etc/passwd', 'passwd')",
      "os.makedirs('real', exist_ok=True); open('real/f', 'w').write('f')",
      "os.symlink('real', 'via')",
      "os.mkfifo('fifo')",
      "open('huge', 'wb').write(b'x' * (10 * 2**20 + 1))",
    ].join("\n"))
    await expect(s.readFile("passwd")).rejects.toThrow(/passwd is a symbolic link/)
    await expect(s.readFile("via/f")).rejects.toThrow(/symbolic link, or one is on its way/)
    await expect(s.readFile("real")).rejects.toThrow(/is a directory/)
    await expect(s.readFile("fifo")).rejects.toThrow(/not a regular file/)
    await expect(s.readFile("huge")).rejects.toThrow(/10485761 bytes, more than 10485760 bytes/)
    await expect(s.readFile("nothing")).rejects.toThrow(/no file nothing in the session's home/)
    // a listing shows regular files only, never what a symlink points to
    expect((await s.listFiles()).files.map((f) => f.path)).toEqual(["huge", "real/f"])
    // the kernel answers while a cell runs
    const running = s.execute("import time; time.sleep(3); print('slept')")
    const started = Date.now()
    expect((await s.listFiles()).files.length).toBe(2)
    expect(Date.now() - started).toBeLessThan(2_500)
    expect(text(await running)).toBe("slept\n")
    await s.close()
  })

  it("refuses an open whose files are not all there, and a terminal with files", async () => {
    client.send({ type: "file", session: "half", path: "a.txt", data: Buffer.from("a").toString("base64"), more: true })
    await expect(client.open("python", { session: "half", files: [] }).then(() => "opened")).rejects.toThrow(/open names none/)
    client.stageFiles("counted", [{ path: "a", content: Buffer.from("a") }])
    client.send({ type: "open", session: "counted", kernel: "python", files: 2 })
    const refused = await new Promise<string>((resolve) => {
      const off = client.onFrame((f) => f.type === "error" && f.session === "counted" && (off(), resolve(f.message)))
    })
    expect(refused).toMatch(/names 2 files, but 1 complete ones were sent/)
    await expect(client.open("terminal", { files: [{ path: "a", content: Buffer.from("a") }] })).rejects.toThrow(/a terminal session takes no files/)
    // the connection is fine afterwards
    const s = await client.open("python", { files: [{ path: "ok", content: Buffer.from("ok") }] })
    expect(text(await s.execute("print(open('ok').read())"))).toBe("ok\n")
    await s.close()
  })
})
