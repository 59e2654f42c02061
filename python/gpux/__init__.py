"""gpux — ONNX models on WebGPU or the CPU from Python, over libgpux (ctypes, no compiled code).

    import gpux, numpy as np
    m = gpux.load("model.onnx", backend="cpu")      # or "webgpu", "auto"
    m.inputs        # [ValueInfo(name='x', dtype=dtype('float32'), shape=('batch', 3, 224, 224))]
    y = m.run({"x": np.zeros((1, 3, 224, 224), np.float32)})   # {"logits": ndarray, ...}
    gpux.App("ocr").run("line.png")                  # a built image: the parsed JSON result

Errors are gpux.Error subclasses (gpux.ShapeError, gpux.DtypeError, ...) whose str() is gpux's
one-line message and whose .code is gpux's negative error code. The library is $GPUX_LIBRARY,
else the libgpux.so.0 installed next to this package, else the build tree's, else the library
path."""

import ctypes
import io
import json
import os
import threading
from collections import namedtuple

import numpy as np

from . import _capi
from ._capi import lib

__all__ = ["load", "Model", "App", "ValueInfo", "version", "set_log_handler", "Error"]

__version__ = "0.1.0"


def version():
    """The version of the libgpux that is loaded ("0.1.0")."""
    return lib.gpux_version().decode()


# ---- errors: one class per gpux error code (GPUX_ERRNO_MAP in gpux.h) ----

class Error(Exception):
    """A gpux failure: str(e) is the library's one-line message, e.code its error code (negative),
    e.name the code's name ("SHAPE")."""

    code = None

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def name(self):
        return lib.gpux_err_name(self.code).decode() if self.code is not None else None


class OutOfMemoryError(Error): code = -1
class InputOutputError(Error): code = -2
class NotFoundError(Error): code = -3
class ParseError(Error): code = -4
class InvalidArgumentError(Error, ValueError): code = -5
class UnsupportedOpError(Error): code = -6
class UnsupportedDtypeError(Error): code = -7
class UnsupportedError(Error): code = -8
class ShapeError(Error, ValueError): code = -9
class DtypeError(Error, ValueError): code = -10
class ModelError(Error): code = -11
class DeviceError(Error): code = -12
class InternalError(Error): code = -13
class MismatchError(Error): code = -14
class CancelledError(Error): code = -15
class HandlerError(Error): code = -16


_ERRORS = {c.code: c for c in Error.__subclasses__()}
__all__ += [c.__name__ for c in _ERRORS.values()]


def _raise(rc, message=None):
    if message is None:
        message = lib.gpux_last_error().decode("utf-8", "replace")
    cls = _ERRORS.get(rc, Error)
    raise cls(message, rc)


def _check(rc):
    if rc < 0:
        _raise(rc)
    return rc


# ---- the library's log messages ----

_log_handler = None  # the ctypes callback must outlive its use by the library


def set_log_handler(fn):
    """Sends the library's messages (CPU-fallback notes, debug output) to fn(level, message) with
    level "error", "warning", "note" or "debug"; None restores the default (stderr)."""
    global _log_handler
    if fn is None:
        lib.gpux_set_log(_capi.LOG_HANDLER(), None)
        _log_handler = None
        return

    def call(ctx, level, message):
        try:
            fn(lib.gpux_log_level_name(level).decode(), message.decode("utf-8", "replace"))
        except Exception:  # an exception must not cross back into C
            pass

    handler = _capi.LOG_HANDLER(call)
    lib.gpux_set_log(handler, None)
    _log_handler = handler


# ---- element types ----

_DT_STRING = 8
# gpux dtype -> numpy dtype; types numpy lacks are held as their raw bits (bfloat16 as uint16,
# float8/float4 as uint8; int4/uint4/int2/uint2 unpacked, one element a byte)
_NUMPY = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
    8: np.object_, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
    14: np.complex64, 15: np.complex128,
    16: np.uint16, 17: np.uint8, 18: np.uint8, 19: np.uint8, 20: np.uint8, 21: np.uint8,
    22: np.int8, 23: np.uint8, 24: np.uint8, 25: np.uint8, 26: np.int8,
}
_FROM_NUMPY = {np.dtype(v): k for k, v in _NUMPY.items() if k <= 15 and k != _DT_STRING}


def _dtype_name(dt):
    return lib.gpux_dtype_name(dt).decode()


ValueInfo = namedtuple("ValueInfo", "name dtype shape")
ValueInfo.__doc__ = """A model input or output: its name, its numpy dtype (the gpux type name,
such as "bfloat16", where numpy has none; None when the model does not say), and its shape: a
tuple with an int for a fixed dimension, the name for a symbolic one ("batch") and None for an
unknown one; shape is None when even the rank is unknown."""


def _value_info(vi):
    if vi.dtype == 0:
        dtype = None
    elif vi.dtype <= 15 and vi.dtype != _DT_STRING:
        dtype = np.dtype(_NUMPY[vi.dtype])
    else:
        dtype = _dtype_name(vi.dtype)
    if vi.ndim < 0:
        shape = None
    else:
        shape = tuple(int(vi.dims[i]) if vi.dims[i] >= 0
                      else (vi.dim_names[i].decode() if vi.dim_names[i] else None)
                      for i in range(vi.ndim))
    return ValueInfo(vi.name.decode(), dtype, shape)


def _to_numpy(t):
    """Copies a library tensor into a numpy array (a list for a sequence, None for an empty
    optional)."""
    if t.kind == _capi.KIND_NONE:
        return None
    if t.kind == _capi.KIND_SEQUENCE:
        return [_to_numpy(t.items[i]) for i in range(t.n_items)]
    shape = tuple(t.dims[i] for i in range(t.ndim))
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if t.dtype == _DT_STRING:
        ptrs = (ctypes.c_char_p * count).from_address(t.data) if count else []
        return np.array([(p or b"").decode("utf-8", "replace") for p in ptrs], dtype=object).reshape(shape)
    if t.dtype not in _NUMPY:
        _raise(UnsupportedDtypeError.code, "output of type %s has no numpy equivalent" % _dtype_name(t.dtype))
    arr = np.empty(shape, dtype=_NUMPY[t.dtype])
    if arr.nbytes > t.nbytes:
        _raise(InternalError.code, "output %s holds %d bytes, %d expected" % (shape, t.nbytes, arr.nbytes))
    if arr.nbytes:
        ctypes.memmove(arr.ctypes.data, t.data, arr.nbytes)
    return arr


def _from_numpy(name, value, declared, keep):
    """A library tensor viewing value's memory (kept alive through `keep`)."""
    t = _capi.Tensor()
    if value is None:
        t.kind = _capi.KIND_NONE
        return t
    arr = np.asarray(value)
    if arr.ndim > _capi.MAX_DIMS:
        _raise(ShapeError.code, "input '%s': %d dimensions, at most %d" % (name, arr.ndim, _capi.MAX_DIMS))
    if arr.dtype.kind in "USO":
        items = [(s if isinstance(s, bytes) else str(s).encode()) for s in arr.reshape(-1)]
        buf = (ctypes.c_char_p * max(len(items), 1))(*items)
        keep.append(buf)
        t.dtype, t.data, t.nbytes = _DT_STRING, ctypes.addressof(buf), len(items) * ctypes.sizeof(ctypes.c_char_p)
    else:
        arr = np.ascontiguousarray(arr)
        dt = _FROM_NUMPY.get(arr.dtype)
        # types numpy lacks are given as their raw bits, in the dtype _to_numpy returns them in
        if declared > 15 and np.dtype(_NUMPY.get(declared, np.void)) == arr.dtype:
            dt = declared
        if dt is None:
            _raise(UnsupportedDtypeError.code, "input '%s': numpy dtype %s has no gpux equivalent" % (name, arr.dtype))
        keep.append(arr)
        t.dtype, t.data, t.nbytes = dt, arr.ctypes.data, arr.nbytes
    t.kind = _capi.KIND_TENSOR
    t.ndim = arr.ndim
    for i, d in enumerate(arr.shape):
        t.dims[i] = d
    return t


# ---- models ----

class Model:
    """An ONNX model ready to run on one backend (gpux_model + gpux_session). Runs of one Model
    are serialized; use one Model per thread to run in parallel."""

    # kept on the class so that closing still works while the interpreter shuts down
    _session_free = staticmethod(lib.gpux_session_free)
    _model_free = staticmethod(lib.gpux_model_free)

    def __init__(self, path, backend="auto", threads=0):
        self._model = self._session = None
        if backend not in _capi.BACKENDS:
            raise InvalidArgumentError("backend '%s': use auto, cpu or webgpu" % backend, InvalidArgumentError.code)
        self._lock = threading.Lock()
        m = ctypes.c_void_p()
        _check(lib.gpux_model_load(os.fsencode(path), ctypes.byref(m)))
        self._model = m
        s = ctypes.c_void_p()
        opts = _capi.SessionOptions(_capi.BACKENDS[backend], int(threads))
        rc = lib.gpux_session_create(m, ctypes.byref(opts), ctypes.byref(s))
        if rc < 0:
            message = lib.gpux_last_error().decode("utf-8", "replace")
            self.close()
            _raise(rc, message)
        self._session = s
        self.path = os.fspath(path)
        self.inputs = self._infos(lib.gpux_model_input_count, lib.gpux_model_input_info)
        self.outputs = self._infos(lib.gpux_model_output_count, lib.gpux_model_output_info)
        self._declared = [self._declared_dtype(i) for i in range(len(self.inputs))]
        self._optional = [self._input_optional(i) for i in range(len(self.inputs))]

    def _infos(self, count, info):
        out = []
        for i in range(count(self._model)):
            vi = _capi.ValueInfo()
            _check(info(self._model, i, ctypes.byref(vi)))
            out.append(_value_info(vi))
        return out

    def _declared_dtype(self, i):
        vi = _capi.ValueInfo()
        _check(lib.gpux_model_input_info(self._model, i, ctypes.byref(vi)))
        return vi.dtype

    def _input_optional(self, i):
        vi = _capi.ValueInfo()
        _check(lib.gpux_model_input_info(self._model, i, ctypes.byref(vi)))
        return bool(vi.optional)

    @property
    def backend(self):
        """Where the model runs: "cpu" or "webgpu"."""
        return lib.gpux_session_backend_name(self._live()).decode()

    def _live(self):
        if self._session is None:
            raise InvalidArgumentError("the model is closed", InvalidArgumentError.code)
        return self._session

    def run(self, feeds):
        """Runs one inference. feeds maps input names to arrays (anything np.asarray takes; a
        single-input model also takes the array itself); optional inputs may be left out.
        Returns {output name: ndarray} in the model's output order."""
        session = self._live()
        names = [v.name for v in self.inputs]
        if not isinstance(feeds, dict):
            if len(names) != 1:
                raise InvalidArgumentError("run() takes a dict of inputs: %s" % ", ".join(names), InvalidArgumentError.code)
            feeds = {names[0]: feeds}
        unknown = [k for k in feeds if k not in names]
        if unknown:
            raise InvalidArgumentError("no input named '%s' (inputs: %s)" % (unknown[0], ", ".join(names)),
                                       InvalidArgumentError.code)
        n_in = max([names.index(k) + 1 for k in feeds] + [0])
        for i, name in enumerate(names):
            if name not in feeds and not self._optional[i]:
                raise InvalidArgumentError("input '%s' is missing" % name, InvalidArgumentError.code)
        keep = []
        ins = (_capi.Tensor * max(n_in, 1))()
        for i in range(n_in):
            ins[i] = _from_numpy(names[i], feeds.get(names[i]), self._declared[i], keep)
        n_out = len(self.outputs)
        outs = (_capi.Tensor * max(n_out, 1))()
        with self._lock:
            rc = lib.gpux_session_run(session, ins, n_in, outs, n_out)
            if rc < 0:
                _raise(rc)
        try:
            return {self.outputs[i].name: _to_numpy(outs[i]) for i in range(n_out)}
        finally:
            for i in range(n_out):
                lib.gpux_tensor_free(ctypes.byref(outs[i]))

    def close(self):
        """Frees the session and the model (also done when the Model is collected)."""
        if self._session is not None:
            self._session_free(self._session)
            self._session = None
        if self._model is not None:
            self._model_free(self._model)
            self._model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        return "<gpux.Model %r on %s>" % (getattr(self, "path", "?"), self.backend if self._session else "nothing")


def load(path, backend="auto", threads=0):
    """Loads an ONNX model and prepares it to run on backend "auto" (WebGPU when an adapter is
    found, else the CPU), "cpu" or "webgpu". threads: the most CPU threads this model's runs use,
    the calling one included (0 = the whole process-wide pool: $GPUX_THREADS, else all cores)."""
    return Model(path, backend=backend, threads=threads)


# ---- apps: built images ----

class App:
    """An image from the local store (NAME[:TAG], sha256:DIGEST) or a folder with a GPUXfile,
    with its pre- and post-processing: what `gpux run` runs. home is the store ($GPUX_HOME, else
    ~/.gpux, when None). allow_handler: run the image's handler code even when the image was
    pulled and is not in the trust list (as `gpux run --allow-handler`)."""

    _app_close = staticmethod(lib.gpux_app_close)
    _store_close = staticmethod(lib.gpux_store_close)

    def __init__(self, ref, backend="auto", home=None, allow_handler=False):
        self._store = self._app = None
        if backend not in _capi.BACKENDS:
            raise InvalidArgumentError("backend '%s': use auto, cpu or webgpu" % backend, InvalidArgumentError.code)
        st = ctypes.c_void_p()
        _check(lib.gpux_store_open(os.fsencode(home) if home is not None else None, ctypes.byref(st)))
        self._store = st
        app = ctypes.c_void_p()
        opts = _capi.AppOptions(_capi.BACKENDS[backend], 1 if allow_handler else 0)
        rc = lib.gpux_app_open(st, os.fsencode(ref), ctypes.byref(opts), ctypes.byref(app))
        if rc < 0:
            message = lib.gpux_last_error().decode("utf-8", "replace")
            self.close()
            _raise(rc, message)
        self._app = app
        self.ref = os.fspath(ref)

    def describe(self):
        """The app's declared inputs and outputs (parsed JSON)."""
        return json.loads(lib.gpux_app_describe(self._live()).decode())

    def _live(self):
        if self._app is None:
            raise InvalidArgumentError("the app is closed", InvalidArgumentError.code)
        return self._app

    @staticmethod
    def _input(name, value, keep):
        item = _capi.AppInput()
        item.name = name.encode() if name is not None else None
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif isinstance(value, np.ndarray):
            f = io.BytesIO()
            np.save(f, value, allow_pickle=False)  # the library reads .npy
            data = f.getvalue()
        else:
            data = None
            if isinstance(value, (str, os.PathLike)):
                text = os.fspath(value)  # text, or a path the input's type reads (image, audio)
            else:
                text = json.dumps(value)  # numbers and lists as JSON
            item.text = text.encode()
        if data is not None:
            buf = ctypes.create_string_buffer(data, len(data))
            keep.append(buf)
            item.bytes, item.len = ctypes.addressof(buf), len(data)
        return item

    def run(self, *values, **named):
        """Runs the app on its inputs, in declared order (values) or by name (named): bytes are a
        file's contents (image, WAV, .npy, TensorProto), an ndarray a tensor, a str or path is
        text or, for image and audio inputs, a file path. Returns the result `gpux run --json`
        prints, parsed: outputs (name, dtype, shape, data, and labels or text where
        post-processing gives them) and timings."""
        app = self._live()
        keep = []
        items = [self._input(None, v, keep) for v in values] + [self._input(k, v, keep) for k, v in named.items()]
        arr = (_capi.AppInput * max(len(items), 1))(*items)
        result = ctypes.c_void_p()
        _check(lib.gpux_app_run(app, arr, len(items), ctypes.byref(result), None))
        return json.loads(_capi.take_string(result.value))

    def close(self):
        if self._app is not None:
            self._app_close(self._app)
            self._app = None
        if self._store is not None:
            self._store_close(self._store)
            self._store = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
