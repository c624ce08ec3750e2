"""kiln.InferenceSession: its interface against onnxruntime's, numpy conversions
of every dtype, errors and run semantics.

Tests on the _core._identity_session hook run without the ONNX importer (the
model is built as IR); the others load ONNX models.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import kiln
from kiln import _core

from conftest import EXAMPLE_MODELS, random_feeds

ml_dtypes = pytest.importorskip("ml_dtypes")

TINY_MLP = EXAMPLE_MODELS / "tiny_mlp.onnx"

# (Kiln/ONNX type name, numpy dtype): every dtype numpy can hold.
NUMPY_TYPES = [
    ("bool", np.dtype(np.bool_)),
    ("int8", np.dtype(np.int8)),
    ("int16", np.dtype(np.int16)),
    ("int32", np.dtype(np.int32)),
    ("int64", np.dtype(np.int64)),
    ("uint8", np.dtype(np.uint8)),
    ("uint16", np.dtype(np.uint16)),
    ("uint32", np.dtype(np.uint32)),
    ("uint64", np.dtype(np.uint64)),
    ("float16", np.dtype(np.float16)),
    ("float", np.dtype(np.float32)),
    ("double", np.dtype(np.float64)),
    ("complex64", np.dtype(np.complex64)),
    ("complex128", np.dtype(np.complex128)),
    ("bfloat16", np.dtype(ml_dtypes.bfloat16)),
    ("float8e4m3fn", np.dtype(ml_dtypes.float8_e4m3fn)),
    ("float8e4m3fnuz", np.dtype(ml_dtypes.float8_e4m3fnuz)),
    ("float8e5m2", np.dtype(ml_dtypes.float8_e5m2)),
    ("float8e5m2fnuz", np.dtype(ml_dtypes.float8_e5m2fnuz)),
    ("int4", np.dtype(ml_dtypes.int4)),
    ("uint4", np.dtype(ml_dtypes.uint4)),
    ("float4e2m1", np.dtype(ml_dtypes.float4_e2m1fn)),
]
if hasattr(ml_dtypes, "float8_e8m0fnu"):
    NUMPY_TYPES.append(("float8e8m0", np.dtype(ml_dtypes.float8_e8m0fnu)))
if hasattr(ml_dtypes, "int2"):
    NUMPY_TYPES += [("int2", np.dtype(ml_dtypes.int2)), ("uint2", np.dtype(ml_dtypes.uint2))]


def sample(dtype: np.dtype, shape=(2, 3)) -> np.ndarray:
    """Small values every type can represent exactly (float8e8m0 holds powers of two only)."""
    values = np.array([1, 0, 1, 1, 0, 1] if dtype.name in ("bool", "float8_e8m0fnu") else [0, 1, 2, 1, 0, 2])
    if dtype.name == "float8_e8m0fnu":
        values = np.array([1, 2, 4, 0.5, 1, 2])
    n = int(np.prod(shape))
    return np.resize(values, n).reshape(shape).astype(dtype)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---- numpy <-> tensor, through an IR-built Identity model -------------------------


@pytest.mark.parametrize("name,dtype", NUMPY_TYPES, ids=[n for n, _ in NUMPY_TYPES])
def test_every_dtype_roundtrips(name, dtype):
    sess = _core._identity_session([("x", "tensor", name, None, None)])
    assert sess.inputs[0].dtype == name
    for x in (sample(dtype), sample(dtype).T, sample(dtype, ()), sample(dtype, (0, 5))):
        (y,) = sess.run({"x": x})
        assert same(y, np.array(x, order="C")), (name, x.shape)


def test_strings_roundtrip():
    sess = _core._identity_session([("s", "tensor", "string", [None], None)])
    for x in (np.array(["a", "bé", ""]), np.array([b"raw", b"y"]), np.array(["x", b"y"], dtype=object)):
        (y,) = sess.run({"s": x})
        assert y.dtype == object
        assert [v if isinstance(v, str) else v.decode() for v in y] == [
            v if isinstance(v, str) else v.decode() for v in x.tolist()
        ]
    (y,) = sess.run({"s": np.array([b"\xff\x00"], dtype=object)})
    assert y[0] == b"\xff\x00"  # not UTF-8: handed back as bytes
    with pytest.raises(kiln.InvalidArgumentError, match="element 1 .* int"):
        sess.run({"s": np.array(["a", 3], dtype=object)})


def test_outputs_own_their_memory():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    default = np.zeros(3, np.float32)
    sess = _core._identity_session([("x", "tensor", "float", [2, 3], None), ("d", "tensor", "float", [3], default)])
    y, d = sess.run({"x": x})
    assert not np.shares_memory(x, y)
    assert y.flags.writeable and d.flags.writeable
    y[:] = -1
    d[:] = 5  # must not change the model's default value
    assert (x == np.arange(6).reshape(2, 3)).all()
    _, d2 = sess.run({"x": x})
    assert (d2 == 0).all()
    del sess  # outputs stay valid after the session is gone
    assert (y == -1).all()


def test_byteswapped_and_unaligned_inputs_are_copied():
    sess = _core._identity_session([("x", "tensor", "float", None, None)])
    big = np.arange(4, dtype=">f4")
    (y,) = sess.run({"x": big})
    assert y.dtype == np.float32 and (y == np.arange(4)).all()
    raw = np.zeros(17, np.uint8)
    unaligned = raw[1:].view(np.float32)
    unaligned[:] = [1, 2, 3, 4]
    (y,) = sess.run({"x": unaligned})
    assert (y == [1, 2, 3, 4]).all()


def test_python_scalars_and_lists_are_converted():
    sess = _core._identity_session([("x", "tensor", "double", None, None)])
    (y,) = sess.run({"x": [[1.0, 2.0]]})
    assert y.dtype == np.float64 and y.shape == (1, 2)


def test_unsupported_numpy_dtype():
    sess = _core._identity_session([("x", "tensor", "float", None, None)])
    with pytest.raises(kiln.InvalidArgumentError, match="input 'x'.*datetime64"):
        sess.run({"x": np.array(["2020-01-01"], dtype="datetime64[D]")})


def test_sequence_and_optional_io():
    sess = _core._identity_session(
        [("s", "sequence", "int64", None, None), ("o", "optional", "float", [2], None)]
    )
    assert [i.type for i in sess.inputs] == ["seq(tensor(int64))", "optional(tensor(float))"]
    a, b = np.array([1, 2]), np.array([[3]])
    s, o = sess.run({"s": [a, b], "o": None})
    assert isinstance(s, list) and same(s[0], a) and same(s[1], b) and o is None
    s, o = sess.run({"s": [], "o": np.ones(2, np.float32)})
    assert s == [] and same(o, np.ones(2, np.float32))
    s, o = sess.run({"s": ()})  # an optional input left out is empty
    assert o is None
    with pytest.raises(kiln.InvalidArgumentError, match="'s' is a sequence"):
        sess.run({"s": a})
    with pytest.raises(kiln.InvalidArgumentError, match="item 1 has type int32"):
        sess.run({"s": [a, b.astype(np.int32)]})


def test_identity_errors_name_the_input():
    sess = _core._identity_session([("image", "tensor", "float", ["batch", 3], None)])
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(kiln.InvalidArgumentError, match="'image' has type double"):
        sess.run({"image": x.astype(np.float64)})
    with pytest.raises(kiln.InvalidArgumentError, match=r"'image' has shape \[2,4\]"):
        sess.run({"image": np.zeros((2, 4), np.float32)})
    with pytest.raises(kiln.InvalidArgumentError, match="'image' has rank 1"):
        sess.run({"image": np.zeros(3, np.float32)})
    with pytest.raises(kiln.InvalidArgumentError, match="unknown input 'imagee'"):
        sess.run({"imagee": x})
    with pytest.raises(kiln.InvalidArgumentError, match="missing input 'image'"):
        sess.run({})
    with pytest.raises(kiln.InvalidArgumentError, match="unknown output 'nope'"):
        sess.run({"image": x}, ["nope"])
    with pytest.raises(kiln.InvalidArgumentError, match="input names must be str"):
        sess.run({1: x})


def test_error_classes():
    assert issubclass(kiln.KilnError, RuntimeError)
    assert issubclass(kiln.InvalidArgumentError, kiln.KilnError)
    assert issubclass(kiln.InvalidArgumentError, ValueError)
    assert issubclass(kiln.NotFoundError, LookupError)
    assert issubclass(kiln.UnimplementedError, NotImplementedError)
    sess = _core._identity_session([("x", "tensor", "float", [1], None)])
    with pytest.raises(kiln.KilnError) as info:
        sess.run({"x": np.zeros(1, np.int32)})
    assert info.value.code == "InvalidArgument"
    assert "input 'x'" in str(info.value)


def test_concurrent_runs_from_threads():
    sess = _core._identity_session([("x", "tensor", "float", None, None)], threads=2)
    errors = []

    def worker(k):
        try:
            for i in range(200):
                x = np.full((8, 8), k * 1000 + i, np.float32)
                (y,) = sess.run({"x": x})
                assert (y == x).all()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ---- ONNX models --------------------------------------------------------------


def identity_model(elem_type: int, shape=None) -> bytes:
    x = helper.make_tensor_value_info("x", elem_type, shape)
    y = helper.make_tensor_value_info("y", elem_type, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    return model.SerializeToString()


ONNX_TYPES = [(name, dt) for name, dt in NUMPY_TYPES if not name.startswith("complex")]


@pytest.mark.parametrize("name,dtype", ONNX_TYPES, ids=[n for n, _ in ONNX_TYPES])
def test_identity_onnx_model_every_dtype(name, dtype):
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    sess = kiln.InferenceSession(identity_model(elem, ["n", 3]))
    assert sess.get_inputs()[0].type == f"tensor({name})"
    x = sample(dtype)
    (y,) = sess.run(None, {"x": x})
    assert same(y, x)


def test_identity_onnx_model_strings():
    sess = kiln.InferenceSession(identity_model(TensorProto.STRING, [None]))
    assert sess.get_inputs()[0].type == "tensor(string)"
    (y,) = sess.run(None, {"x": np.array(["kiln", "ünï"])})
    assert y.dtype == object and y.tolist() == ["kiln", "ünï"]


def describe(args):
    return [(a.name, a.shape, a.type) for a in args]


def test_api_matches_onnxruntime():
    ref = ort.InferenceSession(str(TINY_MLP), providers=["CPUExecutionProvider"])
    sess = kiln.InferenceSession(str(TINY_MLP))
    assert describe(sess.get_inputs()) == describe(ref.get_inputs())
    assert describe(sess.get_outputs()) == describe(ref.get_outputs())
    assert describe(sess.get_overridable_initializers()) == describe(ref.get_overridable_initializers())
    assert sess.get_inputs()[0].shape == ["batch", 64]
    feeds = random_feeds(ref.get_inputs(), batch=3)
    got = sess.run(None, feeds)
    want = ref.run(None, feeds)
    assert isinstance(got, list) and len(got) == len(want)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
    assert got[0].dtype == want[0].dtype
    name = ref.get_outputs()[0].name
    np.testing.assert_allclose(sess.run([name], feeds)[0], want[0], rtol=1e-4, atol=1e-4)
    assert len(sess.run([], feeds)) == len(want)  # empty list: every output, as onnxruntime does


def test_one_line_switch_from_onnxruntime():
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = kiln.InferenceSession(str(TINY_MLP), sess_options=opts, providers=["CPUExecutionProvider"])
    sess.run(None, random_feeds(sess.get_inputs()), run_options=None)
    kiln.InferenceSession(TINY_MLP, threads=1)  # os.PathLike
    kiln_opts = kiln.SessionOptions()
    kiln_opts.intra_op_num_threads = 1
    kiln.InferenceSession(str(TINY_MLP), kiln_opts, ["CPUExecutionProvider"], None)


def test_bytes_input_matches_path():
    data = TINY_MLP.read_bytes()
    feeds = random_feeds(kiln.InferenceSession(data).get_inputs(), batch=2, seed=3)
    a = kiln.InferenceSession(data).run(None, feeds)
    b = kiln.InferenceSession(str(TINY_MLP)).run(None, feeds)
    c = kiln.InferenceSession(bytearray(data)).run(None, feeds)
    # Each session times its tactics, so two builds of one model may pick kernels that sum in a
    # different order: equal to float rounding, not bit for bit.
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[0], c[0], rtol=1e-5, atol=1e-6)


def test_session_errors_name_the_input():
    sess = kiln.InferenceSession(str(TINY_MLP))
    good = np.zeros((1, 64), np.float32)
    with pytest.raises(kiln.KilnError, match="'input'.*double") as info:
        sess.run(None, {"input": good.astype(np.float64)})
    assert isinstance(info.value, ValueError)
    with pytest.raises(kiln.KilnError, match=r"'input' has shape \[1,65\]"):
        sess.run(None, {"input": np.zeros((1, 65), np.float32)})
    with pytest.raises(kiln.KilnError, match="unknown input 'inptu'"):
        sess.run(None, {"inptu": good})
    with pytest.raises(kiln.KilnError, match="missing input 'input'"):
        sess.run(None, {})
    with pytest.raises(kiln.KilnError, match="unknown output 'nope'"):
        sess.run(["nope"], {"input": good})
    with pytest.raises(TypeError):
        sess.run(None, [good])


def test_bad_models_raise(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(kiln.KilnError, match="missing.onnx"):
        kiln.InferenceSession(str(missing))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(64) + b"\xff" * 64)
    with pytest.raises(kiln.KilnError, match="garbage.onnx"):
        kiln.InferenceSession(str(garbage))
    with pytest.raises(kiln.KilnError):
        kiln.InferenceSession(b"\x08\x07\x12\x00\xff\xff")
    with pytest.raises(TypeError):
        kiln.InferenceSession(42)


def test_version_and_exports():
    assert isinstance(kiln.__version__, str) and kiln.__version__.count(".") == 2
    assert kiln.backend.supports_device("CPU")
    assert not kiln.backend.supports_device("CUDA")
    assert "InferenceSession" in kiln.__all__


def test_dynamic_shapes_run_on_plans_built_per_shape():
    """A model with a dynamic batch runs each batch size on a plan built for
    it, and the sizes beyond the eight the session specializes on its generic
    plan, all with the same answers as onnxruntime; a feed of the wrong rank
    still gets the generic engine's error."""
    path = EXAMPLE_MODELS / "tiny_cnn.onnx"
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sess = kiln.InferenceSession(str(path), threads=2)
    assert sess.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3, 1, 2, 5, 4, 6, 3, 7, 8, 9, 10, 11, 1, 10):
        feeds = random_feeds(ref.get_inputs(), batch=batch, seed=batch)
        got = sess.run(None, feeds)[0]
        want = ref.run(None, feeds)[0]
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"batch {batch}")
    bad = np.zeros((2, 3, 32), dtype=np.float32)
    with pytest.raises(kiln.KilnError, match="input"):
        sess.run(None, {"input": bad})
