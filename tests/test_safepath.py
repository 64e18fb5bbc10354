import pytest

from hubmirror.errors import UnsafePathError
from hubmirror.safepath import check_relative_path


@pytest.mark.parametrize("name", ["config.json", "1_Pooling/config.json", "a/b/c.bin", "weird name (1).txt", ".gitattributes"])
def test_plain_relative_names_pass(name):
    assert check_relative_path(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "../x", "/etc/passwd", "a/../../b", "a/../b", "./a", "a//b", "a/", "C:/x", "a\\b", "x\x00y", "a/./b", "..", "new\nline"],
)
def test_hostile_names_are_refused(name):
    with pytest.raises(UnsafePathError):
        check_relative_path(name)
