"""The one exception type users see, and the environment failures (a full disk, a read-only folder, ...) that are
reported like it."""

from __future__ import annotations

import errno
import re


class ZooError(Exception):
    """A user mistake or a bad file: the message is one line naming the file and the fix.

    The CLI prints it without a traceback and exits with code 2.
    """


class SettingError(ZooError):
    """A setting's value refused, named as the library names it (`setting`, e.g. a TrainConfig field); the CLI names
    its flag instead."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting, self.problem = setting, problem


class ChecksumMismatch(ZooError):
    """A download whose content is not the published file's (its sha256 differs)."""


# errno -> what went wrong and what to do; an OSError with any other errno is a bug and keeps its traceback.
ENVIRONMENT_ERRORS = {
    errno.EROFS: ("read-only file system", "write somewhere writable (another --out, or ZOO_HOME for the zoo itself)"),
    errno.EACCES: ("permission denied", "give this user access or use another location (--out, ZOO_HOME)"),
    errno.EPERM: ("operation not permitted", "give this user access or use another location (--out, ZOO_HOME)"),
    errno.ENOSPC: ("no space left on device", "free some space or write to another disk (--out, ZOO_HOME)"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write to another disk (--out, ZOO_HOME)"),
    errno.EFBIG: ("file too large for this file system", "write to another disk (--out, ZOO_HOME)"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter name or output path"),
    errno.ELOOP: ("too many levels of symbolic links", "fix the symbolic link or give the real path"),
    errno.EISDIR: ("is a directory", "give a file path"),
    errno.EEXIST: ("exists and is not a folder", "choose another output path"),
    errno.ENOTDIR: ("a part of the path is not a directory", "check the path"),
    errno.EIO: ("input/output error", "check the disk (dmesg) and retry"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or process fewer files at once"),
    errno.ENFILE: ("too many open files in the system", "close other programs or retry later"),
}
OS_ERROR_CODE = re.compile(r"(?:os error |code: )(\d+)")
TORCH_ENFORCE_PREFIX = re.compile(r"^\[enforce fail at [^\]]*\]\s*(?:err == 0\.\s*)?")


def environment_problem(error: BaseException, path=None) -> str | None:
    """One line (path, what went wrong, the fix) for a failure of the machine rather than of zoo: an OSError of a known
    errno, a safetensors I/O error, a Pillow decompression bomb or running out of memory. None for anything else (a bug).
    `path` names the file where the error itself names none."""
    import torch
    from PIL import Image
    from safetensors import SafetensorError

    if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRORS:
        return _errno_line(error.errno, error.filename or path, error.filename2)
    if isinstance(error, SafetensorError):
        detail = _first_line(error)
        code = OS_ERROR_CODE.search(detail)
        if code and int(code.group(1)) in ENVIRONMENT_ERRORS:
            return _errno_line(int(code.group(1)), path, None)
        return f"{path or 'a safetensors file'}: could not be read or written ({detail}); check the file and the disk"
    if isinstance(error, Image.DecompressionBombError):
        return f"an image was refused as a decompression bomb ({_first_line(error)}); use a smaller image"
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    ):
        detail = TORCH_ENFORCE_PREFIX.sub("", _first_line(error)) or type(error).__name__
        return f"out of memory ({detail}); lower --batch (or --styles, --n, --samples)"
    return None


def machine_failure(error: BaseException, path, outcome: str) -> ZooError:
    """The ZooError for a failure of the machine inside an operation zoo has rolled back: environment_problem's line
    (else `path` and the error's own words), then what became of the operation (e.g. 'nothing was changed')."""
    line = environment_problem(error, path)
    if line is None:
        line = f"{getattr(error, 'filename', None) or path}: {getattr(error, 'strerror', None) or _first_line(error)}"
    return ZooError(f"{line}; {outcome}")


def _errno_line(code: int, filename, filename2) -> str:
    what, fix = ENVIRONMENT_ERRORS[code]
    paths = " -> ".join(str(name) for name in (filename, filename2) if name is not None)
    return f"{paths or 'a file'}: {what}; {fix}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def check_in_range(option: str, value, minimum, maximum=None) -> None:
    """A ZooError naming `option` unless minimum <= value (<= maximum): NaN, infinities and absurd sizes are refused."""
    if not (minimum <= value and (maximum is None or value <= maximum)):  # written so that NaN fails
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ZooError(f"{option} {value}: must be {bounds}")
