"""Admission scanning: every stored file is routed by its content (not its name) to the checks for its format, and
the worst verdict of every engine wins. A file the scanners cannot read is not clean; one in a format they do not
inspect is `unscanned`, which the mirror's policy admits or quarantines."""

from hubmirror.scanning.file_verdict import SCANNER_VERSION, Verdict, scan_file

__all__ = ["SCANNER_VERSION", "Verdict", "scan_file"]
