"""deploy/web.config, the IIS sample: well-formed XML (IIS refuses the whole site otherwise),
the forwarded client address, scheme and host, WebSockets, limits and ARR settings it
documents, and what the server makes of the headers IIS then sends."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import httpx
import pytest

from tornado_wsgi_server.options import ServerOptions

from .conftest import PROJECT_DIR

WEB_CONFIG = PROJECT_DIR / "deploy" / "web.config"
PORT = "{{ cookiecutter.port }}"


@pytest.fixture(scope="module")
def config() -> ET.Element:
    return ET.parse(WEB_CONFIG).getroot()


@pytest.fixture(scope="module")
def comments() -> str:
    return "\n".join(re.findall(r"<!--(.*?)-->", WEB_CONFIG.read_text(encoding="utf-8"), re.S))


def test_proxy_rule_forwards_client_scheme_and_host(config):
    rule = config.find("system.webServer/rewrite/rules/rule")
    assert rule.find("action").get("url") == "http://127.0.0.1:" + PORT + "/{R:1}"
    variables = {s.get("name"): s.get("value") for s in rule.find("serverVariables")}
    assert variables == {
        "HTTP_X_FORWARDED_PROTO": "{HttpsScheme:{HTTPS}}",
        # Set, not appended to: a client's own X-Forwarded-For is dropped here.
        "HTTP_X_FORWARDED_FOR": "{REMOTE_ADDR}",
        "HTTP_X_FORWARDED_HOST": "{HTTP_HOST}",
    }
    scheme_map = config.find("system.webServer/rewrite/rewriteMaps/rewriteMap[@name='HttpsScheme']")
    assert {a.get("key"): a.get("value") for a in scheme_map} == {"on": "https", "off": "http"}


def test_websockets_and_limits_match_the_server(config):
    assert config.find("system.webServer/webSocket").get("enabled") == "true"
    limits = config.find("system.webServer/security/requestFiltering/requestLimits")
    assert int(limits.get("maxAllowedContentLength")) == ServerOptions.max_body_size
    assert int(limits.get("maxUrl")) >= 32768 and int(limits.get("maxQueryString")) >= 32768
    assert config.find("system.webServer/security/requestFiltering/hiddenSegments/clear") is not None


def test_documents_the_iis_modules_and_arr_settings(comments):
    for module in ("URL Rewrite", "Application Request Routing", "WebSocket Protocol", "Web-WebSockets"):
        assert module in comments
    appcmd = next(line for line in comments.splitlines() if "system.webServer/proxy" in line)
    assert '/preserveHostHeader:"True"' in appcmd and '/responseBufferLimit:"0"' in appcmd
    hours, minutes, seconds = map(int, re.search(r'/timeout:"(\d+):(\d+):(\d+)"', appcmd).groups())
    assert hours * 3600 + minutes * 60 + seconds > ServerOptions.body_timeout
    allowed = next(line for line in comments.splitlines() if "allowedServerVariables" in line)
    for name in ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_FOR"):
        assert f"[name='{name}']" in allowed


def test_server_takes_client_and_host_from_what_iis_sends(start_server):
    server = start_server("--trusted-proxies", "127.0.0.1",
                          env={"DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,www.example.com"})
    # The rule's X-Forwarded-For, then ARR's own "address:port" after it (its default).
    headers = {"X-Forwarded-For": "203.0.113.5, 203.0.113.5:51234", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "www.example.com"}
    info = httpx.get(f"{server.url}/__test__/whoami", headers=headers).json()
    assert info["remote_addr"] == "203.0.113.5"
    assert info["scheme"] == "https" and info["host"] == "www.example.com"
