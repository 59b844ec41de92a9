"""The SQLite job store: schema and migrations (``schema``), jobs, items and the
claim/lease queue (``jobstore``). See :class:`JobStore`."""

from .jobstore import JobStore
from .records import Claim, NewItem
from .schema import MIGRATIONS, SCHEMA_VERSION, SchemaVersionError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Claim", "JobStore", "NewItem", "SchemaVersionError"]
