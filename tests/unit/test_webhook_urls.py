"""Where a webhook may go (SSRF), the signature, and the README's receiver example."""

from __future__ import annotations

import ipaddress

import pytest

from harness.servers import ROOT
from shared import webhook_urls
from shared.webhook_urls import UnsafeUrl


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address checked, not bound)
        ("::ffff:10.0.0.1", "private"),
        ("93.184.215.14", None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
    ],
)
def test_only_public_addresses_are_allowed(address: str, reason: str | None) -> None:
    assert webhook_urls.refused_because(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "javascript:alert(1)", "http:///nohost", "https://u:p@example.com/"],
)
def test_only_plain_http_urls_parse(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        webhook_urls.parse(url)


def test_a_url_parses_into_host_port_and_request_target() -> None:
    assert webhook_urls.parse("https://Example.com/a/b?c=1") == (
        "https",
        "example.com",
        443,
        "/a/b?c=1",
    )
    assert webhook_urls.parse("http://example.com:8080") == ("http", "example.com", 8080, "/")


def test_resolve_refuses_a_name_for_loopback_unless_allowed() -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        webhook_urls.resolve("http://localhost:9/hook", allow_private=False)
    target = webhook_urls.resolve("http://localhost:9/hook", allow_private=True)
    assert target.host == "localhost" and target.port == 9 and target.path == "/hook"
    assert ipaddress.ip_address(target.address).is_loopback


def test_the_readme_shows_the_receiver_example_the_tests_run() -> None:
    example = (ROOT / "docs" / "verify_webhook.py").read_text()
    assert f"```python\n{example}```" in (ROOT / "README.md").read_text()
    assert len(example.strip().splitlines()) <= 12
