"""hubmirror: one offline cache and one searchable catalog for pretrained models from every hub."""

__version__ = "0.1.0"
