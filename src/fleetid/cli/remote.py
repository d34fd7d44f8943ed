"""``--ca-url``: the operator's commands through the admin API instead of the database.

``fleetid cert|device|token ... --ca-url https://HOST:PORT`` asks a running ``fleetid serve
--https`` (``fleetid.api.admin``) with the operator's credential as TLS client certificate
(``--operator-cert``, ``--operator-key``: what ``fleetid operator create`` wrote), verifying the
server against the pinned fleet root (``--root``, what ``fleetid ca bootstrap`` wrote). The
answers are the documents the local commands print, so ``--json`` and the text are the same
either way. A refusal is one line: the problem's detail under its family (401 authentication,
403 policy, 404 not found).
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

_PAGE = 1000  # the admin API's largest page
__all__ = [
    "add_remote_arguments",
    "is_remote",
    "remote_call",
    "remote_list",
    "remote_response",
]


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("remote (the admin API instead of --data-dir)")
    group.add_argument("--ca-url", metavar="URL", help="the authority's https:// base URL")
    group.add_argument(
        "--root",
        type=Path,
        default=Path("fleetid-root.pem"),
        metavar="FILE",
        help="the pinned fleet root the server's certificate chains to (fleetid-root.pem)",
    )
    group.add_argument(
        "--operator-cert", type=Path, metavar="FILE", help="the operator's certificate (PEM)"
    )
    group.add_argument("--operator-key", type=Path, metavar="FILE", help="its private key (PEM)")


def is_remote(args: argparse.Namespace) -> bool:
    """``--ca-url`` given; else ``--data-dir`` is required."""
    from fleetid.errors import ConfigError

    if getattr(args, "ca_url", None):
        if getattr(args, "data_dir", None) is not None:
            raise ConfigError("give --data-dir or --ca-url, not both")
        return True
    if getattr(args, "data_dir", None) is None:
        raise ConfigError("give --data-dir (local database) or --ca-url (admin API)")
    return False


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    from fleetid.errors import ConfigError

    if args.operator_cert is None or args.operator_key is None:
        raise ConfigError("--ca-url needs --operator-cert and --operator-key")
    if not str(args.ca_url).startswith("https://"):
        raise ConfigError("--ca-url is an https:// URL (the admin API is served over TLS only)")
    context = ssl.create_default_context(cafile=str(args.root))
    context.load_cert_chain(str(args.operator_cert), str(args.operator_key))
    return context


def remote_response(
    args: argparse.Namespace, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One request to the admin API; a problem answer raises its family, one line."""
    import httpx

    from fleetid import errors

    try:
        context = _context(args)
    except ssl.SSLError as exc:
        raise errors.ConfigError(f"the operator credential does not load: {exc.reason}") from None
    base = str(args.ca_url).rstrip("/")
    try:
        with httpx.Client(verify=context, timeout=30) as client:
            response = client.request(method, f"{base}/admin{path}", **kwargs)
    except httpx.HTTPError as exc:
        raise errors.UnreachableError(f"{base}: {exc}") from None
    if response.is_success:
        return response
    try:
        detail = str(response.json().get("detail", response.reason_phrase))
    except ValueError:
        detail = response.reason_phrase
    family: type[errors.FleetIdError] = {
        401: errors.AuthenticationError,
        403: errors.PolicyError,
        404: errors.NotFoundError,
        409: errors.StoreError,
    }.get(response.status_code, errors.FleetIdError)
    raise family(f"{detail} (HTTP {response.status_code})")


def remote_call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer of one request; a page's items when it is a ``Page`` with ``all``."""
    return remote_response(args, method, path, **kwargs).json()


def remote_list(
    args: argparse.Namespace, path: str, params: dict[str, Any], limit: int
) -> list[Any]:
    """Up to ``limit`` items of a paginated list, following its ``next`` links."""
    items: list[Any] = []
    offset = 0
    while len(items) < limit:
        size = min(_PAGE, limit - len(items))
        query = {k: v for k, v in params.items() if v is not None}
        page = remote_call(args, "GET", path, params={**query, "limit": size, "offset": offset})
        items.extend(page["items"])
        if page["next"] is None:
            break
        offset += size
    return items
