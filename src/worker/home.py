# A session's home as the kernel sees it, as the session's uid: the workspace's files written into it at the open,
# the files new or changed since, and one file's bytes for saving. Every path is walked one segment at a time from
# the home's descriptor with O_NOFOLLOW, so a symlink (whoever made it) is refused, never followed.
import base64
import errno
import os
import stat

# Entries `list` looks at, and files it reports, at most: a home with a million files answers quickly anyway.
MAX_VISITED = 20_000
MAX_LISTED = 1_000
MAX_DEPTH = 16
CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class HomeError(Exception):
    """What went wrong with a path, for the user."""


def _segments(path):
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise HomeError(f"{path!r} is not a relative path inside the home")
    return parts


def _why(path, error):
    if error.errno == errno.ELOOP:
        return f"{path} is a symbolic link, or one is on its way: only regular files inside the home are saved (copy the file into the home instead)"
    if error.errno == errno.ENOENT:
        return f"there is no file {path} in the session's home"
    if error.errno == errno.ENOTDIR:
        return f"a part of {path} is not a directory"
    if error.errno == errno.ENOSPC:
        return f"{path}: the session's home is full"
    return f"{path}: {os.strerror(error.errno)}"


class Home:
    def __init__(self, home):
        self.root = home
        self.known = {}  # path -> (size, mtime_ns) as the open left it

    def _open_dir(self, parts, create):
        """A descriptor of the directory parts[:-1] under the home (made, 0755, when `create`); the caller closes it."""
        fd = os.open(self.root, DIR_FLAGS)
        try:
            for part in parts[:-1]:
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    sub = os.open(part, DIR_FLAGS, dir_fd=fd)
                except NotADirectoryError:
                    # O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR: tell it as the symlink it is
                    if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        raise OSError(errno.ELOOP, "symbolic link") from None
                    raise
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    def put(self, count, receive):
        """Writes `count` files that arrive as {"type":"file","path","data","more"} lines (kernel-session.ts), each made
        anew (O_EXCL); their size and mtime are what `list` compares against later."""
        done = 0
        current = None  # (path, fd) of the file whose chunks are arriving
        while done < count:
            message = receive()
            if message.get("type") != "file":
                raise HomeError(f"expected a file, got {message.get('type')!r}")
            path = message["path"]
            try:
                if current is None:
                    parts = _segments(path)
                    parent = self._open_dir(parts, create=True)
                    try:
                        fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent)
                    finally:
                        os.close(parent)
                    current = (path, fd)
                view = memoryview(base64.b64decode(message["data"]))
                while view:
                    view = view[os.write(current[1], view):]
                if not message.get("more"):
                    st = os.fstat(current[1])
                    os.close(current[1])
                    self.known[path] = (st.st_size, st.st_mtime_ns)
                    current = None
                    done += 1
            except OSError as error:
                raise HomeError(_why(path, error)) from None

    def list(self, everything):
        """Regular files under the home that are new or changed since the open (every one when `everything`), by
        path; names starting with a dot (.sage, caches) are left out. (files, truncated)"""
        found = []
        visited = 0
        truncated = False

        def walk(fd, prefix, depth):
            nonlocal visited, truncated
            try:
                entries = list(os.scandir(fd))
            except OSError:
                return
            for entry in sorted(entries, key=lambda e: e.name):
                visited += 1
                if visited > MAX_VISITED or len(found) >= MAX_LISTED:
                    truncated = True
                    return
                if entry.name.startswith("."):
                    continue
                path = prefix + entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if depth >= MAX_DEPTH:
                        truncated = True
                        continue
                    try:
                        sub = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        continue
                    try:
                        walk(sub, path + "/", depth + 1)
                    finally:
                        os.close(sub)
                elif stat.S_ISREG(st.st_mode):
                    if everything or self.known.get(path) != (st.st_size, st.st_mtime_ns):
                        found.append({"path": path, "size": st.st_size, "mtime": st.st_mtime_ns // 1_000_000})

        root = os.open(self.root, DIR_FLAGS)
        try:
            walk(root, "", 0)
        finally:
            os.close(root)
        return found, truncated

    def read(self, path, limit, send):
        """Sends the regular file `path` in chunks (send(data_base64, more)); refuses symlinks, directories, devices,
        FIFOs and files over `limit` bytes."""
        parts = _segments(path)
        try:
            parent = self._open_dir(parts, create=False)
            try:
                # O_NONBLOCK: a FIFO must not hang the kernel; it is refused below as not a regular file
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
            finally:
                os.close(parent)
        except OSError as error:
            raise HomeError(_why(path, error)) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise HomeError(f"{path} is a directory: save the files in it one by one")
            if not stat.S_ISREG(st.st_mode):
                raise HomeError(f"{path} is not a regular file")
            if st.st_size > limit:
                raise HomeError(f"{path} is {st.st_size} bytes, more than {limit} bytes (10 MiB), the most a file saved from a session may have")
            chunks = []
            size = 0
            while True:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise HomeError(f"{path} grew past {limit} bytes (10 MiB) while it was read")
                chunks.append(chunk)
        except OSError as error:
            raise HomeError(_why(path, error)) from None
        finally:
            os.close(fd)
        # read whole before sending: a file past the limit is refused before any of it goes out
        if not chunks:
            return send("", False)
        for i, chunk in enumerate(chunks):
            send(base64.b64encode(chunk).decode(), i + 1 < len(chunks))
