import kiln


def test_import():
    assert kiln._core is not None
