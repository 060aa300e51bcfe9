"""``flask users``: create ops users and API tokens, change them, end their sessions."""

from __future__ import annotations

import secrets

import click
from flask.cli import AppGroup
from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import ROLES, ApiToken, User


@click.group(cls=AppGroup)
def users() -> None:
    """Manage dashboard users and API tokens."""


def create_user(email: str, password: str, role: str) -> User:
    """Add a user with a hashed password; the caller commits."""
    user = User(email=email.strip().lower(), role=role)
    user.set_password(password)
    db.session.add(user)
    return user


def find_user(email: str) -> User | None:
    """The user with this email, compared case-insensitively."""
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def _existing(email: str) -> User:
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user with email {email.lower()}")
    return user


@users.command("create")
@click.argument("email")
@click.option("--password", help="Prompted for (hidden, twice) when not given.")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
def create_command(email: str, password: str | None, role: str) -> None:
    """Create a user who can log in to the dashboard."""
    if "@" not in email:
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="EMAIL")
    if find_user(email):
        raise click.ClickException(f"a user with email {email.lower()} already exists")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    create_user(email, password, role)
    db.session.commit()
    click.echo(f"created {role} {email.lower()}")


@users.command("token")
@click.argument("email")
def token_command(email: str) -> None:
    """Create an API token for the stats API; it is printed once, alone on the last line."""
    user = _existing(email)
    token = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, token_hash=ApiToken.hash(token)))
    db.session.commit()
    click.echo(f"API token for {user.email} (shown once; only its hash is kept):")
    click.echo(token)


@users.command("password")
@click.argument("email")
@click.option("--password", help="Prompted for (hidden, twice) when not given.")
def password_command(email: str, password: str | None) -> None:
    """Set a new password; every session of the user ends."""
    user = _existing(email)
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    user.set_password(password)
    db.session.commit()
    click.echo(f"password changed for {user.email}; their sessions have ended")


@users.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
def role_command(email: str, role: str) -> None:
    """Make the user an admin or a viewer; a change ends every session of the user."""
    user = _existing(email)
    user.role = role
    db.session.commit()
    click.echo(f"{user.email} is {role}")


@users.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """Stop the user signing in or using API tokens; every session of the user ends."""
    user = _existing(email)
    user.active = False
    db.session.commit()
    click.echo(f"{user.email} deactivated; their sessions have ended")


@users.command("signout")
@click.argument("email")
def signout_command(email: str) -> None:
    """End every session of the user on every device (API tokens keep working)."""
    user = _existing(email)
    user.end_sessions()
    db.session.commit()
    click.echo(f"every session of {user.email} has ended")
