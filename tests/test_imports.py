"""hubmirror.imports.hiding: a module hidden in the block fails to import there and imports as usual after it."""

import importlib
import sys

import pytest

from hubmirror.imports import hiding


def test_a_hidden_module_fails_to_import_inside_the_block_and_imports_after_it():
    sys.modules.pop("colorsys", None)
    with hiding("colorsys"):
        with pytest.raises(ImportError):
            importlib.import_module("colorsys")
    assert importlib.import_module("colorsys").rgb_to_hsv(1, 0, 0) == (0.0, 1.0, 1)


def test_a_module_already_imported_is_not_hidden():
    import json

    with hiding("json"):
        assert importlib.import_module("json") is json
    assert sys.modules["json"] is json


def test_the_block_ending_in_an_error_restores_the_modules():
    sys.modules.pop("colorsys", None)
    with pytest.raises(RuntimeError), hiding("colorsys"):
        raise RuntimeError("boom")
    assert "colorsys" not in sys.modules or sys.modules["colorsys"] is not None
    importlib.import_module("colorsys")
