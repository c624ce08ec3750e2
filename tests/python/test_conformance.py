"""ONNX's backend node test cases through kiln.backend (see tests/conformance/node_cases.py).

Every case must pass unless tests/conformance/expected_failures.txt lists it
with a reason; a listed case that passes fails too, so the list stays true
(except cases whose reason starts with "random output", which may match by chance).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "conformance"))
import node_cases  # noqa: E402

import kiln.backend  # noqa: E402

_CASES = node_cases.load_cases()
_EXPECTED = node_cases.read_expected_failures()


def test_expected_failures_name_real_cases():
    names = {c.name for c in _CASES}
    unknown = sorted(set(_EXPECTED) - names)
    assert not unknown, f"expected_failures.txt names cases that do not exist: {unknown[:10]}"
    missing_reason = sorted(n for n, r in _EXPECTED.items() if not r)
    assert not missing_reason, f"expected failures need a reason: {missing_reason[:10]}"


@pytest.mark.parametrize("case", _CASES, ids=[c.name for c in _CASES])
def test_node_case(case):
    err = node_cases.run_case(case, kiln.backend)
    if case.name in _EXPECTED:
        # A random-output case (Bernoulli of a 0/1 probability mostly) can match
        # numpy's draws by chance: only the deterministic ones must keep failing.
        random_output = _EXPECTED[case.name].startswith("random output")
        assert err is not None or random_output, f"{case.name} passes now: remove it from expected_failures.txt"
        pytest.xfail(_EXPECTED[case.name])
    assert err is None, err
