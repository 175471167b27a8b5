"""Files inside the sandbox root: safe path resolution, read/write/list/delete, streamed transfer, tar.

Every path is resolved against the sandbox root after following symlinks; anything that lands
outside (``..``, an absolute path elsewhere, a symlink pointing out) raises a ``Fault`` before a
byte is read or written. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from typing import Any, BinaryIO, Iterator

from .fault import Fault
from .wire import CHUNK


class Files:
    def __init__(self, root: str):
        self.root = os.path.realpath(root)

    def resolve(self, path: str, call: str) -> str:
        if not isinstance(path, str) or not path or "\x00" in path:
            raise Fault("InvalidRequestError", f"`{call}`: expected a non-empty path, got {path!r}.")
        joined = path if os.path.isabs(path) else os.path.join(self.root, path)
        real = os.path.realpath(joined)
        if real != self.root and not real.startswith(self.root.rstrip(os.sep) + os.sep):
            raise Fault(
                "PathOutsideSandboxError",
                f"`{call}`: path {path!r} resolves to {real!r}, outside the sandbox root {self.root!r}; "
                "use a path relative to the sandbox root with no `..` or symlink leading out.",
            )
        return real

    def _missing(self, call: str, path: str) -> Fault:
        return Fault("SandboxFileNotFoundError", f"`{call}`: no file or directory at {path!r} in the sandbox.")

    def read(self, path: str, offset: int = 0, length: int = -1) -> bytes:
        real = self.resolve(path, "read_file")
        try:
            with open(real, "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except FileNotFoundError:
            raise self._missing("read_file", path) from None
        except IsADirectoryError:
            raise Fault("InvalidRequestError", f"`read_file`: {path!r} is a directory; use `list_files`.") from None

    def write(self, path: str, data: bytes, mode: int | None = None) -> int:
        fh = self.open_write(path, "write_file", mode)
        with fh:
            fh.write(data)
        return len(data)

    def open_write(self, path: str, call: str, mode: int | None = None) -> BinaryIO:
        real = self.resolve(path, call)
        if os.path.isdir(real):
            raise Fault("InvalidRequestError", f"`{call}`: {path!r} is a directory.")
        os.makedirs(os.path.dirname(real), exist_ok=True)
        fh = open(real, "wb")
        if mode is not None:
            os.chmod(real, mode)
        return fh

    def iter_file(self, path: str) -> Iterator[bytes]:
        real = self.resolve(path, "download")
        try:
            fh = open(real, "rb")
        except FileNotFoundError:
            raise self._missing("download", path) from None
        except IsADirectoryError:
            raise Fault("InvalidRequestError", f"`download`: {path!r} is a directory; use `download_dir`.") from None
        with fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def listdir(self, path: str, recursive: bool = False) -> list[dict[str, Any]]:
        real = self.resolve(path, "list_files")
        if not os.path.exists(real):
            raise self._missing("list_files", path)
        if not os.path.isdir(real):
            return [self._entry(real, os.path.basename(real))]
        out = []
        if recursive:
            for dirpath, dirnames, filenames in os.walk(real):
                for name in sorted(dirnames) + sorted(filenames):
                    full = os.path.join(dirpath, name)
                    out.append(self._entry(full, os.path.relpath(full, real)))
        else:
            for name in sorted(os.listdir(real)):
                out.append(self._entry(os.path.join(real, name), name))
        return out

    @staticmethod
    def _entry(full: str, name: str) -> dict[str, Any]:
        st = os.lstat(full)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
        return {"name": name, "type": kind, "size": st.st_size, "mode": stat.S_IMODE(st.st_mode), "mtime": st.st_mtime}

    def delete(self, path: str, recursive: bool = False) -> None:
        real = self.resolve(path, "delete_file")
        if real == self.root:
            raise Fault("PathOutsideSandboxError", "`delete_file`: refusing to delete the sandbox root itself.")
        if os.path.islink(real) or os.path.isfile(real):
            os.unlink(real)
        elif os.path.isdir(real):
            if not recursive:
                raise Fault("InvalidRequestError", f"`delete_file`: {path!r} is a directory; pass recursive=True.")
            shutil.rmtree(real)
        else:
            raise self._missing("delete_file", path)

    def tar_source(self, path: str) -> str:
        real = self.resolve(path, "download_dir")
        if not os.path.isdir(real):
            raise Fault("InvalidRequestError", f"`download_dir`: {path!r} is not a directory in the sandbox.")
        return real

    def extract_tar(self, fileobj: BinaryIO, path: str) -> int:
        """Extract a tar stream under ``path``; members escaping it are refused (the ``data`` filter)."""
        dest = self.resolve(path, "upload_dir")
        os.makedirs(dest, exist_ok=True)
        count = 0
        try:
            with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
                for member in tar:
                    try:
                        if _HAS_FILTERS:
                            tar.extract(member, dest, filter="data")
                        else:  # Python < 3.11.4 (Debian bookworm's 3.11.2, in container images)
                            _check_member(member, dest)
                            tar.extract(member, dest, set_attrs=False)
                    except _FILTER_ERRORS as exc:
                        raise Fault("PathOutsideSandboxError", f"`upload_dir`: tar member refused: {exc}") from None
                    count += 1
        except tarfile.TarError as exc:  # a FilterError is handled above; this is a broken stream
            raise Fault("InvalidRequestError", f"`upload_dir`: the body is not a valid tar stream ({exc}).") from None
        return count


_HAS_FILTERS = hasattr(tarfile, "data_filter")
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if _HAS_FILTERS else (ValueError,)


def _check_member(member: tarfile.TarInfo, dest: str) -> None:
    """The core of the ``data`` filter, for Pythons without it: stay under ``dest``, no devices."""
    base = os.path.realpath(dest)
    target = os.path.realpath(os.path.join(base, member.name))
    if os.path.isabs(member.name) or os.path.commonpath([base, target]) != base:
        raise ValueError(f"{member.name!r} would be extracted outside the destination")
    if member.ischr() or member.isblk() or member.isfifo():
        raise ValueError(f"{member.name!r} is a special file")
    if member.issym() or member.islnk():
        link = member.linkname if member.islnk() else os.path.join(os.path.dirname(member.name), member.linkname)
        linked = os.path.realpath(os.path.join(base, link))
        if os.path.isabs(member.linkname) or os.path.commonpath([base, linked]) != base:
            raise ValueError(f"{member.name!r} links outside the destination")
