"""hubmirror.archives against hostile tar and zip archives: each is refused with a one-line error before anything is
unpacked; a normal archive round-trips."""

import io
import tarfile
import warnings
import zipfile

import pytest

from hubmirror import archives
from hubmirror.archives import chunks, open_tar, open_zip
from hubmirror.errors import IntegrityError, UnsafePathError

FILES = {"saved_model.pb": b"a graph", "variables/variables.index": b"an index", "assets/vocab.txt": b"a\nb\n"}


def _tar(entries, mode="w:gz") -> io.BytesIO:
    """A tar of (name, data, type) entries; data is a link's target for links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.linkname = data.decode()
                tar.addfile(info)
    buf.seek(0)
    return buf


def _zip(entries, compression=zipfile.ZIP_DEFLATED) -> io.BytesIO:
    """A zip of (name, data, unix mode) entries."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compression) as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests want
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = compression
            zf.writestr(info, data)
    buf.seek(0)
    return buf


def _files(entries):
    return [(name, data, tarfile.REGTYPE) for name, data in entries.items()]


def test_a_normal_tarball_round_trips():
    tar, members = open_tar(_tar([("./", b"", tarfile.DIRTYPE), ("./assets", b"", tarfile.DIRTYPE)]
                                 + _files({f"./{k}": v for k, v in FILES.items()})), "t")
    assert list(members) == list(FILES)
    assert {name: b"".join(chunks(tar.extractfile(info), "t")) for name, info in members.items()} == FILES


def test_a_normal_zip_round_trips():
    archive, members = open_zip(_zip([("top/", b"", 0o40755)] + [(f"top/{k}", v, 0o100644) for k, v in FILES.items()]
                                     + [("dos.txt", b"no unix mode", 0)]), "z")
    assert list(members) == [f"top/{k}" for k in FILES] + ["dos.txt"]
    assert archive.read(members["top/saved_model.pb"]) == FILES["saved_model.pb"]


HOSTILE_TAR = {
    "dotdot": ("../escape.txt", b"evil", tarfile.REGTYPE),
    "inner dotdot": ("a/../../escape.txt", b"evil", tarfile.REGTYPE),
    "absolute": ("/tmp/escape.txt", b"evil", tarfile.REGTYPE),
    "backslash": ("..\\escape.txt", b"evil", tarfile.REGTYPE),
    "symlink": ("link", b"/etc/passwd", tarfile.SYMTYPE),
    "hardlink": ("hard", b"saved_model.pb", tarfile.LNKTYPE),
    "char device": ("dev", b"", tarfile.CHRTYPE),
    "block device": ("blk", b"", tarfile.BLKTYPE),
    "fifo": ("fifo", b"", tarfile.FIFOTYPE),
    "duplicate": ("saved_model.pb", b"another", tarfile.REGTYPE),
    "dotdot directory": ("../outside", b"", tarfile.DIRTYPE),
}


@pytest.mark.parametrize("kind", HOSTILE_TAR)
def test_hostile_tar_members_are_refused(kind):
    with pytest.raises(UnsafePathError) as err:
        open_tar(_tar(_files(FILES) + [HOSTILE_TAR[kind]]), "evil")
    assert str(err.value).startswith("evil: ") and "\n" not in str(err.value)


HOSTILE_ZIP = {
    "dotdot": ("top/../../escape.py", b"evil", 0o100644),
    "absolute": ("/abs/escape.py", b"evil", 0o100644),
    "symlink": ("top/link.py", b"/etc/passwd", 0o120777),
    "fifo": ("top/fifo", b"", 0o10644),
    "duplicate": ("top/saved_model.pb", b"another", 0o100644),
}


@pytest.mark.parametrize("kind", HOSTILE_ZIP)
def test_hostile_zip_members_are_refused(kind):
    entries = [(f"top/{k}", v, 0o100644) for k, v in FILES.items()] + [HOSTILE_ZIP[kind]]
    with pytest.raises(UnsafePathError) as err:
        open_zip(_zip(entries), "evil")
    assert str(err.value).startswith("evil: ") and "\n" not in str(err.value)


def test_the_allow_rule_is_applied_to_every_name():
    assert list(open_tar(_tar(_files(FILES)), "t", allow=lambda name: True)[1]) == list(FILES)
    with pytest.raises(UnsafePathError, match="unexpected member 'assets/vocab.txt'"):
        open_tar(_tar(_files(FILES)), "t", allow=lambda name: name != "assets/vocab.txt")


def test_member_count_cap(monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBERS", len(FILES) - 1)
    with pytest.raises(IntegrityError, match="more than 2 members"):
        open_tar(_tar(_files(FILES)), "t")
    with pytest.raises(IntegrityError, match="more than 2 members"):
        open_zip(_zip([(k, v, 0o100644) for k, v in FILES.items()]), "z")


def test_member_size_cap_stops_before_inflating(monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBER_SIZE", 1000)
    big = _tar(_files({"big.bin": bytes(5000), **FILES}), "w").getvalue()
    with pytest.raises(IntegrityError, match="'big.bin' unpacks to 5000 bytes"):
        open_tar(io.BytesIO(big[:1024]), "t")  # refused on its header: the (missing) data is never reached
    with pytest.raises(IntegrityError, match="'big.bin' unpacks to 5000 bytes"):
        open_zip(_zip([("big.bin", bytes(5000), 0o100644)]), "z")


def test_total_size_cap(monkeypatch):
    monkeypatch.setattr(archives, "MAX_TOTAL_SIZE", 15)
    with pytest.raises(IntegrityError, match="unpacks to more than 15 bytes"):
        open_tar(_tar(_files(FILES)), "t")
    with pytest.raises(IntegrityError, match="unpacks to more than 15 bytes"):
        open_zip(_zip([(k, v, 0o100644) for k, v in FILES.items()]), "z")


def test_zip_bomb_is_refused_by_its_compression_ratio():
    bomb = _zip([("top/bomb.bin", bytes(8 << 20), 0o100644)])
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(IntegrityError, match="over the 200:1 cap"):
        open_zip(bomb, "z")
    # a small member may compress better than the ratio; a stored one never inflates
    assert open_zip(_zip([("zeros.bin", bytes(100_000), 0o100644)]), "z")[1]
    assert open_zip(_zip([("zeros.bin", bytes(8 << 20), 0o100644)], zipfile.ZIP_STORED), "z")[1]


def test_encrypted_zip_member_is_refused():
    buf = _zip([("secret.txt", b"x", 0o100644)])
    data = bytearray(buf.getvalue())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        at = data.find(signature)
        data[at + flag_offset] |= 0x1
    with pytest.raises(IntegrityError, match="encrypted"):
        open_zip(io.BytesIO(bytes(data)), "z")


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_truncated_tarballs_are_refused(mode):
    whole = _tar(_files({"a.bin": bytes(range(256)) * 200, "b.bin": b"b" * 3000}), mode).getvalue()
    for cut in (len(whole) // 3, len(whole) // 2):
        with pytest.raises(IntegrityError, match="unreadable"):
            tar, members = open_tar(io.BytesIO(whole[:cut]), "t")
            for info in members.values():
                b"".join(chunks(tar.extractfile(info), "t"))


def test_truncated_and_damaged_zips_are_refused():
    whole = _zip([("a.bin", bytes(range(256)) * 200, 0o100644)], zipfile.ZIP_STORED).getvalue()
    with pytest.raises(IntegrityError, match="unreadable"):
        open_zip(io.BytesIO(whole[: len(whole) // 2]), "z")
    damaged = bytearray(whole)
    damaged[100] ^= 0xFF  # inside the stored member: its CRC no longer matches
    archive, members = open_zip(io.BytesIO(bytes(damaged)), "z")
    with pytest.raises(IntegrityError, match="unreadable"):
        b"".join(chunks(archive.open(members["a.bin"]), "z"))
    with pytest.raises(IntegrityError, match="unreadable"):
        open_zip(io.BytesIO(b"not a zip at all"), "z")


def test_in_place_reading_takes_plain_tars_only_and_needs_no_size_caps(monkeypatch):
    monkeypatch.setattr(archives, "MAX_TOTAL_SIZE", 1)
    _, members = open_tar(_tar(_files(FILES), "w"), "bundle", in_place=True)
    assert list(members) == list(FILES)
    with pytest.raises(IntegrityError, match="unreadable"):
        open_tar(_tar(_files(FILES), "w:gz"), "bundle", in_place=True)
