"""Where a webhook may be sent (SPEC §11): SSRF defences, applied when an endpoint is registered
and again at every delivery, since what a name resolves to can change in between.

Only http and https; and every address the host resolves to must be a public one: loopback,
private, link-local (cloud metadata at 169.254.169.254), multicast, unspecified and reserved
addresses are refused, unless WEBHOOK_ALLOW_PRIVATE (development and tests). The delivery
connects to the very address checked here, so a name cannot resolve to a public address for
the check and to a private one for the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048


class UnsafeUrl(ValueError):
    """The URL is not one a webhook may be sent to; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # as written: the Host header and the TLS server name
    port: int
    path: str  # path and query, what the request line carries
    address: str  # the checked IP address to connect to


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a well-formed http(s) URL; UnsafeUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl(f"Not a valid URL: {error}.") from None
    if parts.scheme not in SCHEMES:
        raise UnsafeUrl("Only http and https URLs can receive webhooks.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not carry credentials.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or SCHEMES[parts.scheme], path


def refused_because(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not go to this address, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refused_because(address.ipv4_mapped)
    # Most specific first: 169.254.0.0/16 is "private" too, but "link-local" says more.
    for kind in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None


def resolve(url: str, *, allow_private: bool) -> Target:
    """The URL's target, its host resolved and checked. UnsafeUrl if it is malformed, does not
    resolve, or resolves to an address webhooks may not reach (any of them, not just the first:
    a name with one public and one private address is refused)."""
    scheme, host, port, path = parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeUrl(f"The host {host} does not resolve ({error}).") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            reason = refused_because(address)
            if reason is not None:
                raise UnsafeUrl(
                    f"The host {host} resolves to {address}, a {reason} address: "
                    "webhooks go to public addresses only."
                )
    return Target(scheme, host, port, path, str(addresses[0]))
