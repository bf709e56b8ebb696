"""The proxy a request to KMS goes through, read from the environment as botocore reads it.

botocore takes ``urllib.request.getproxies()`` unless ``proxy_bypass(netloc)`` says no (on Linux: the
``*_proxy`` variables, lowercase winning, and ``no_proxy`` as DNS suffixes, with or without the port, or
``*``; no CIDR ranges), then the proxy of the endpoint's scheme (``https_proxy`` for KMS), ``http://`` added
when it has no scheme, and ``Proxy-Authorization: Basic`` when its URL has a user and a password.

An HTTPS endpoint is reached through an HTTP proxy with a CONNECT tunnel: TLS runs end to end to KMS and
is verified there; the proxy sees the host name and port, and bytes it cannot read. An ``https://`` proxy
(TLS to the proxy itself) is left to boto3.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from collections import namedtuple
from urllib.parse import unquote, urlsplit


class Proxy(namedtuple("Proxy", ["host", "port", "authorization"])):
    """host (str), port (int), and the Proxy-Authorization header's value, if any (str or None)."""

    __slots__ = ()

    def __repr__(self) -> str:  # never the credentials
        return f"Proxy(host={self.host!r}, port={self.port})"


class Unsupported(Exception):
    """A proxy this opener does not speak (TLS to the proxy, a port that is not a number): boto3's job."""


def environment_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """urllib.request.getproxies_environment() over ``environ``: scheme (or "no") => value."""
    proxies: dict[str, str] = {}
    found = []
    for name, value in environ.items():
        if len(name) > 5 and name[-6] == "_" and name[-5:].lower() == "proxy":
            found.append((name, value, name[:-6].lower()))
            if value:
                proxies[name[:-6].lower()] = value
    if "REQUEST_METHOD" in environ:  # CVE-2016-1000110: a CGI's HTTP_PROXY may come from a request header
        proxies.pop("http", None)
    for name, value, scheme in found:  # lowercase names win, an empty one unsets
        if name[-6:] == "_proxy":
            if value:
                proxies[scheme] = value
            else:
                proxies.pop(scheme, None)
    return proxies


def bypassed(netloc: str, proxies: Mapping[str, str]) -> bool:
    """urllib.request.proxy_bypass_environment(netloc): no_proxy's DNS suffixes, with or without the port."""
    no_proxy = proxies.get("no")
    if no_proxy is None:
        return False
    if no_proxy == "*":
        return True
    host = netloc.lower()
    port = re.fullmatch(r"(.*):([0-9]*)", host, re.DOTALL)  # urllib's _splitport
    hostonly = port.group(1) if port else host
    for name in no_proxy.split(","):
        name = name.strip().lstrip(".").lower()
        if name and (hostonly == name or host == name or hostonly.endswith("." + name) or host.endswith("." + name)):
            return True
    return False


def proxy_for(url: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for ``url``, None to go direct; ``Unsupported`` for a proxy this opener does not speak."""
    parts = urlsplit(url)
    proxies = environment_proxies(environ)
    if bypassed(parts.netloc, proxies):
        return None
    proxy_url = proxies.get(parts.scheme)
    if not proxy_url:
        return None
    if not proxy_url.startswith(("http:", "https:")):
        proxy_url = ("http:" if proxy_url.startswith("//") else "http://") + proxy_url
    try:
        proxy = urlsplit(proxy_url)
        port = proxy.port
    except ValueError:
        raise Unsupported() from None
    if proxy.scheme != "http" or not proxy.hostname:
        raise Unsupported()
    authorization = None
    if proxy.username and proxy.password:  # as botocore: both, percent-decoded
        pair = f"{unquote(proxy.username)}:{unquote(proxy.password)}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return Proxy(proxy.hostname, port or 80, authorization)
