"""_capi.py — libgpux through ctypes: finding and loading the shared library, the C structs of
include/gpux/gpux.h, and the prototypes of the functions the package calls. Nothing here is
public; gpux/__init__.py builds the Python API on it."""

import ctypes
import os
from pathlib import Path

MAX_DIMS = 8  # GPUX_MAX_DIMS

# gpux_kind
KIND_TENSOR, KIND_SEQUENCE, KIND_NONE = 0, 1, 2
# gpux_backend_kind
BACKENDS = {"auto": 0, "cpu": 1, "webgpu": 2}


def _candidates():
    env = os.environ.get("GPUX_LIBRARY")
    if env:
        return [env]  # when set, nothing else is tried
    here = Path(__file__).resolve().parent
    found = []
    # installed by `make install`: PREFIX/lib/python3/dist-packages/gpux -> PREFIX/lib
    found.append(here.parents[2] / "libgpux.so.0")
    # the source tree's python/gpux -> build/
    found.append(here.parents[1] / "build" / "libgpux.so.0")
    found = [str(p) for p in found if p.exists()]
    found.append("libgpux.so.0")  # the library path (ldconfig, LD_LIBRARY_PATH)
    return found


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(str(e))
    raise ImportError("gpux: libgpux.so.0 could not be loaded (%s); set GPUX_LIBRARY to its path"
                      % "; ".join(tried))


lib, path = _load()


class Tensor(ctypes.Structure):
    pass


Tensor._fields_ = [
    ("kind", ctypes.c_int),
    ("dtype", ctypes.c_int),
    ("ndim", ctypes.c_int),
    ("dims", ctypes.c_int64 * MAX_DIMS),
    ("data", ctypes.c_void_p),
    ("nbytes", ctypes.c_size_t),
    ("owns_data", ctypes.c_int),
    ("n_items", ctypes.c_int),
    ("items", ctypes.POINTER(Tensor)),
]


class ValueInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("kind", ctypes.c_int),
        ("dtype", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("dims", ctypes.c_int64 * MAX_DIMS),
        ("dim_names", ctypes.c_char_p * MAX_DIMS),
        ("optional", ctypes.c_int),
    ]


class SessionOptions(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_int), ("threads", ctypes.c_int), ("gpu_memory", ctypes.c_uint64),
                ("precision", ctypes.c_int), ("last_position", ctypes.c_char_p)]


class AppOptions(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_int), ("allow_handler", ctypes.c_int), ("full_outputs", ctypes.c_int),
                ("precision", ctypes.c_int)]


class AppInput(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("text", ctypes.c_char_p),
        ("bytes", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
    ]


LOG_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)

_P = ctypes.c_void_p
_I = ctypes.c_int
_S = ctypes.c_char_p
_PROTOTYPES = {
    # name: (restype, argtypes)
    "gpux_version": (_S, []),
    "gpux_strerror": (_S, [_I]),
    "gpux_err_name": (_S, [_I]),
    "gpux_last_error": (_S, []),
    "gpux_dtype_name": (_S, [_I]),
    "gpux_dtype_size": (ctypes.c_size_t, [_I]),
    "gpux_set_log": (None, [LOG_HANDLER, _P]),
    "gpux_log_level_name": (_S, [_I]),
    "gpux_tensor_free": (None, [ctypes.POINTER(Tensor)]),
    "gpux_model_load": (_I, [_S, ctypes.POINTER(_P)]),
    "gpux_model_free": (None, [_P]),
    "gpux_model_input_count": (_I, [_P]),
    "gpux_model_output_count": (_I, [_P]),
    "gpux_model_input_info": (_I, [_P, _I, ctypes.POINTER(ValueInfo)]),
    "gpux_model_output_info": (_I, [_P, _I, ctypes.POINTER(ValueInfo)]),
    "gpux_session_create": (_I, [_P, ctypes.POINTER(SessionOptions), ctypes.POINTER(_P)]),
    "gpux_session_free": (None, [_P]),
    "gpux_session_run": (_I, [_P, ctypes.POINTER(Tensor), _I, ctypes.POINTER(Tensor), _I]),
    "gpux_session_backend_name": (_S, [_P]),
    "gpux_store_open": (_I, [_S, ctypes.POINTER(_P)]),
    "gpux_store_close": (None, [_P]),
    "gpux_app_open": (_I, [_P, _S, ctypes.POINTER(AppOptions), ctypes.POINTER(_P)]),
    "gpux_app_close": (None, [_P]),
    "gpux_app_run": (_I, [_P, ctypes.POINTER(AppInput), _I, ctypes.POINTER(_P), ctypes.POINTER(_P)]),
    "gpux_app_describe": (_S, [_P]),
    "gpux_free": (None, [_P]),
}

for _name, (_res, _args) in _PROTOTYPES.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def take_string(p):
    """A char * the library allocated, as str, freed with gpux_free."""
    if not p:
        return None
    try:
        return ctypes.string_at(p).decode("utf-8", "replace")
    finally:
        lib.gpux_free(p)
