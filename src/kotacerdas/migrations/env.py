"""Alembic environment: the engine comes from the caller (kotacerdas.migrate), never from a file."""

from alembic import context

import kotacerdas.models  # noqa: F401  (registers every table on the metadata)
from kotacerdas.db import Base
from kotacerdas.sensors.store import is_store_object

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The observation store's tables are written in SQL per database, not ORM models (sensors/store.py).
        include_object=is_store_object,
    )
    context.run_migrations()
