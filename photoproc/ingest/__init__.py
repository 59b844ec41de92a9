"""Inputs, folders, uploads and ZIP archives → image sources, safely.

``iter_sources`` turns whatever a user hands over — paths, folders, uploaded
bytes or temp files, ZIP archives — into :class:`Source` values (an image, a
clean relative name, its bytes on demand) and :class:`Skipped` values (an
input that will not be processed, with the reason to show). It is where every
hostile input is stopped: zip slip, symlinks, encrypted and nested archives,
zip bombs, endless archives, FIFOs and links out of a folder.

    ingest/
      sources.py    IngestLimits, Source, Skipped, UploadedFile (reading with limits)
      names.py      zip-slip rules, hidden files and OS junk (the naming rule: photoproc.naming)
      archives.py   ZIP entries → sources, bomb metering
      inputs.py     iter_sources: paths, folder walks, uploads, type sniffing
"""

from .inputs import iter_sources
from .sources import MALFORMED, NOT_IMAGE, TOO_LARGE, IngestLimits, Skipped, Source, UploadedFile

__all__ = [
    "MALFORMED",
    "NOT_IMAGE",
    "TOO_LARGE",
    "IngestLimits",
    "Skipped",
    "Source",
    "UploadedFile",
    "iter_sources",
]
