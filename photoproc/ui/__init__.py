"""Notebook widgets over :class:`~photoproc.service.PhotoService` (the only ipywidgets user).

``PhotoApp`` is the whole app (what ``notebooks/photo_processor.ipynb`` shows and
Voilà publishes); its parts work alone too::

    UploadBox      FileUpload + server path → inputs          upload.py
    OptionsPanel   widgets → ProcessOptions                    options.py
    ProgressPanel  bar, counts, speed, ETA, cancel, per file   progress.py
    Gallery        original | result pairs, pages, large view  gallery.py
    DownloadLink   the job's ZIP (API route or data: URL)      download.py
    JobHistory     reopen past jobs                            history.py
    ModelComparison  images × models grid, mask agreement      compare.py
    LiveTuner      one image re-run as thresholds move         tuner.py

The measuring behind the last two is :mod:`photoproc.analysis` (no widgets).
"""

from ..analysis import compare_variants
from .app import PhotoApp
from .compare import ModelComparison
from .download import DownloadLink
from .env import api_base_url, api_url, running_in_voila
from .gallery import Gallery
from .history import JobHistory
from .options import OptionsPanel
from .progress import ProgressPanel
from .tuner import LiveTuner
from .upload import UPLOAD_MESSAGE_LIMIT, UploadBox

__all__ = [
    "UPLOAD_MESSAGE_LIMIT",
    "DownloadLink",
    "Gallery",
    "JobHistory",
    "LiveTuner",
    "ModelComparison",
    "OptionsPanel",
    "PhotoApp",
    "ProgressPanel",
    "UploadBox",
    "api_base_url",
    "api_url",
    "compare_variants",
    "running_in_voila",
]
