"""The Xet storage protocol of the Hugging Face Hub (hub-docs `docs/xet/`): its serialized formats (`format`), the
file reconstructions a CAS answers (`reconstruction`), a reader of files from a CAS that takes the chunks the mirror
already holds from its own store (`reader`) and the index of those chunks (`chunks`)."""
