"""Liveness and readiness probes."""

import pytest

from khaacho import create_app
from tests.conftest import make_config


def test_healthz_answers_without_io(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_database_and_redis_separately(any_app):
    response = any_app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"]["database"] == "ok"
    expected_redis = "ok" if any_app.config["REDIS_URL"] else "not configured"
    assert response.json["checks"]["redis"] == expected_redis


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    broken = create_app(make_config(f"sqlite:///{tmp_path}/missing/dir/x.db"))
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "unavailable"


@pytest.mark.parametrize("header", ["X-Request-ID"])
def test_request_id_is_echoed_or_assigned(client, header):
    assert client.get("/healthz", headers={header: "abc-123"}).headers[header] == "abc-123"
    assert len(client.get("/healthz", headers={header: "bad id with spaces"}).headers[header]) == 16
