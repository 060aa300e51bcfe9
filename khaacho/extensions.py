"""Unbound extension instances, bound to an app by ``create_app``."""

from __future__ import annotations

import logging

from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from huey import Huey
from sqlalchemy import MetaData

# Named constraints so Alembic can alter them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=lambda: "global")


class AppLoggingHuey(Huey):
    """Huey whose consumer logs through the app's root handler only, in the app's one format."""

    def create_consumer(self, **options):
        """``huey_consumer`` has just added its own handler to the 'huey' logger: drop it, so each
        line is written once (by the root handler, with the request id, JSON in production)."""
        logging.getLogger("huey").handlers.clear()
        return super().create_consumer(**options)


# Immediate (in memory) until ``khaacho.queue.bind_app`` points it at the configured storage: task
# decorators need the instance at import time, and nothing may connect before the app exists.
huey = AppLoggingHuey("khaacho", utc=True, immediate=True)
