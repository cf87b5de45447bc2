"""The site as a user and a load balancer see it, through the real server."""

import json
import re
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve


def test_healthz(start_server, client):
    server = start_server()
    response = client.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.text == "ok"
    assert "no-cache" in response.headers["cache-control"]


def test_healthz_without_a_database_tells_nobody_why(start_server, client, tmp_path):
    """503 for the load balancer; the reason (paths, host and user names) only in the log."""
    missing = tmp_path / "no-such-folder" / "db.sqlite3"
    server = start_server(env={"DATABASE_URL": f"sqlite:///{missing.as_posix()}"})
    response = client.get(f"{server.url}/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error"}
    assert "Health check: the database does not answer" in server.wait_for_output("Health check")


def test_home_page_links_hashed_css(start_server, client, server_env):
    """The page links the stylesheet by its content-hashed name, which browsers may cache
    for ever; the plain /static/css/site.css would be fetched again and again."""
    server = start_server()
    response = client.get(f"{server.url}/")
    assert response.status_code == 200
    assert "<h1>" in response.text
    assert "date" in response.headers
    links = re.findall(r'href="(/static/css/site\.[^"]*)"', response.text)
    assert links == [f"/static/{hashed_css_name(server_env['DJANGO_STATIC_ROOT'])}"], links
    assert re.fullmatch(r"/static/css/site\.[0-9a-f]{12}\.css", links[0]), links
    css = client.get(f"{server.url}{links[0]}")
    assert css.status_code == 200
    assert "immutable" in css.headers["cache-control"]


def test_admin_login_page(start_server, client):
    server = start_server()
    response = client.get(f"{server.url}/admin/login/")
    assert response.status_code == 200
    assert "csrfmiddlewaretoken" in response.text
    # Django's Set-Cookie values start with a space; they must still reach the client.
    assert "csrftoken" in response.cookies


def hashed_css_name(static_root: str) -> str:
    manifest = json.loads((Path(static_root) / "staticfiles.json").read_text())
    return manifest["paths"]["css/site.css"]


def test_static_files_served_by_whitenoise(start_server, client, server_env):
    server = start_server()
    name = hashed_css_name(server_env["DJANGO_STATIC_ROOT"])
    response = client.get(f"{server.url}/static/{name}", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    cache = response.headers["cache-control"]
    assert "immutable" in cache and "max-age=315360000" in cache
    assert "--accent" in response.text

    gzipped = client.get(f"{server.url}/static/{name}", headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.text == response.text  # httpx decompresses

    plain = client.get(f"{server.url}/static/css/site.css")
    assert plain.status_code == 200
    assert "immutable" not in plain.headers["cache-control"]


def test_test_views_are_not_routed_in_production():
    with pytest.raises(Resolver404):
        resolve("/__test__/block", urlconf="{{ cookiecutter.project_slug }}.urls")


def test_production_settings_use_project_wsgi_application():
    from {{ cookiecutter.project_slug }} import settings as production

    assert production.WSGI_APPLICATION == "{{ cookiecutter.project_slug }}.wsgi.application"
    assert production.ROOT_URLCONF == "{{ cookiecutter.project_slug }}.urls"
