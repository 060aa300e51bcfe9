"""Khaacho: WhatsApp orders from kirana shops, received, verified and turned into orders."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import INSTANCE_DIR, Config, config_from_env


def create_app(config: Config | None = None) -> Flask:
    """Build the app: extensions, blueprints and CLI commands for the given configuration."""
    config = config or config_from_env()
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_object(config)
    app.config["ENV_NAME"] = config.ENV_NAME

    from khaacho import logs

    logs.configure_logging(app.config["JSON_LOGS"])
    logs.init_app(app)
    if app.config["TWILIO_SKIP_VALIDATION"]:
        logging.getLogger(__name__).warning(
            "TWILIO_SKIP_VALIDATION=true: Twilio signatures are NOT checked (sandbox only)"
        )

    from khaacho.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from khaacho import auth, demo, health, queue, security
    from khaacho.orders import cli as orders_cli

    queue.bind_app(app)
    security.init_app(app)
    auth.init_app(app)
    orders_cli.init_app(app)
    demo.init_app(app)
    app.register_blueprint(health.bp)

    from khaacho import webhooks as webhook_intake
    from khaacho.commands import webhooks

    webhook_intake.init_app(app)
    app.cli.add_command(webhooks)

    from khaacho.processing import cli as processing_cli

    processing_cli.init_app(app)

    from khaacho import dashboard, desk

    dashboard.init_app(app)
    desk.init_app(app)

    from khaacho import ops

    ops.init_app(app)

    # Outermost, around the webhook fast path too: every layer sees the client's address and scheme.
    proxies = app.config["TRUSTED_PROXY_COUNT"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies)
    return app
