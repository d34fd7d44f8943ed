"""Getting the offline filter to devices: MQTT retained messages, files/HTTP, in-process broadcast.

Every channel carries the same two artefacts, as ``fleetid.revocation.publish`` makes them: the
current **full** filter and the current **cumulative delta** over it. Channels move bytes; they
are never trusted. The device side (``FilterReceiver``) hands every artefact to the device's
verifier, which checks the signature, the chain and the watermark, so a replayed or older
artefact (an MQTT retained message replaced by an older one, a stale file) is refused there as a
rollback.

* **MQTT** (OASIS MQTT 5.0 §3.3.1.3, RETAIN): ``<prefix>/full`` and ``<prefix>/delta`` hold one
  retained message each, so a device that connects gets the current pair at once, then every
  update while it stays connected. Publishing a full filter clears the retained delta (an empty
  retained payload deletes it, §3.3.1.3). paho-mqtt client, QoS 1.
* **Files and HTTP**: the publisher's directory (``full.fidf``, ``delta.fidf``) is served by
  ``fleetid.api.routes.filter`` at ``/revocation/filter/{full,delta}``; ``HttpFilterSource``
  fetches the pair with ``If-None-Match`` so an unchanged artefact costs no body.
* **In-process broadcast** (the demo): retained pair plus synchronous delivery, counting bytes.

The two artefacts may arrive in either order: ``FilterReceiver`` keeps a delta whose full filter
has not arrived yet and applies it after the full filter.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleetid.errors import (
    ConfigError,
    DeltaBaseError,
    DeltaGapError,
    FleetIdError,
    VerificationError,
)
from fleetid.revocation.filter.format import FilterHeader, FilterKind, parse_filter
from fleetid.revocation.publish import DELTA_FILE, FULL_FILE

__all__ = [
    "DEFAULT_TOPIC_PREFIX",
    "FILTER_ROUTE",
    "LINKED_CRL_TOPIC_PREFIX",
    "BroadcastChannel",
    "FilterReceiver",
    "FilterSink",
    "HttpFilterSource",
    "MqttFilterPublisher",
    "MqttFilterSubscriber",
    "Refusal",
    "filter_kind",
    "read_filter_files",
]

DEFAULT_TOPIC_PREFIX: Final = "fleetid/revocation/filter"
LINKED_CRL_TOPIC_PREFIX: Final = "fleetid/revocation/linked-crl"
FILTER_ROUTE: Final = "/revocation/filter"
_QOS: Final = 1


class FilterSink(Protocol):
    """What verifies and applies filters on the device (``PeerVerifier``, ``FilterVerifier``)."""

    def load_filter(self, data: bytes) -> FilterHeader: ...


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """An artefact the device refused, and why."""

    size: int
    error: FleetIdError


class FilterReceiver:
    """The device end of any channel: applies artefacts in arrival order, counts bytes.

    ``receive`` raises what the sink raises, except for a delta that arrived before its full
    filter (``DeltaGapError``/``DeltaBaseError``): that one is kept and applied after the next
    full filter. Thread-safe (paho delivers on its network thread).
    """

    def __init__(self, sink: FilterSink) -> None:
        self._sink = sink
        self._pending: bytes | None = None
        self._lock = threading.Condition()
        self.bytes_received = 0
        self.applied: list[FilterHeader] = []
        self.refused: list[Refusal] = []

    def receive(self, data: bytes) -> FilterHeader | None:
        """Apply one artefact; ``None`` if it was kept for later (a delta ahead of its base)."""
        with self._lock:
            self.bytes_received += len(data)
            try:
                header = self._sink.load_filter(data)
            except (DeltaGapError, DeltaBaseError):
                self._pending = data
                return None
            except FleetIdError as exc:
                self.refused.append(Refusal(size=len(data), error=exc))
                self._lock.notify_all()
                raise
            self.applied.append(header)
            if header.kind is FilterKind.FULL and self._pending is not None:
                pending, self._pending = self._pending, None
                # A delta over an older full filter is superseded: dropped.
                with contextlib.suppress(DeltaGapError, DeltaBaseError):
                    self.applied.append(self._sink.load_filter(pending))
            self._lock.notify_all()
            return header

    def wait_until(self, condition: Callable[[FilterReceiver], bool], timeout: float) -> bool:
        """Block until ``condition(self)`` holds (checked on every arrival) or ``timeout`` s."""
        with self._lock:
            return self._lock.wait_for(lambda: condition(self), timeout)


# --- files and HTTP ------------------------------------------------------------------------------


def read_filter_files(directory: Path) -> list[bytes]:
    """The published pair in ``directory``, full filter first (what the HTTP route serves)."""
    out = []
    for name in (FULL_FILE, DELTA_FILE):
        path = directory / name
        if path.exists():
            out.append(path.read_bytes())
    return out


class HttpFilterSource:
    """Fetches the full filter and delta from an authority's ``/revocation/filter`` routes."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._etags: dict[str, str] = {}

    def fetch(self) -> list[bytes]:
        """The artefacts that changed since the last fetch, full filter first."""
        out: list[bytes] = []
        for name in ("full", "delta"):
            path = f"{FILTER_ROUTE}/{name}"
            headers = {"If-None-Match": self._etags[path]} if path in self._etags else {}
            response = self._client.get(path, headers=headers)
            if response.status_code in (304, 404):
                continue
            if response.status_code != 200:
                raise VerificationError(f"GET {path} answered HTTP {response.status_code}")
            if etag := response.headers.get("ETag"):
                self._etags[path] = etag
            out.append(response.content)
        return out


# --- in-process broadcast ------------------------------------------------------------------------


def filter_kind(data: bytes) -> FilterKind:
    """FULL or DELTA of a filter artefact (a linked CRL has ``linked_crl_kind``)."""
    return parse_filter(data).header.kind


class BroadcastChannel:
    """One-to-many delivery in this process, with MQTT's retained semantics (demo, tests).

    ``kind_of`` tells a full artefact from a delta: filters by default, linked CRLs with
    ``fleetid.revocation.linked_crl_channel.linked_crl_kind``.
    """

    def __init__(self, kind_of: Callable[[bytes], FilterKind] = filter_kind) -> None:
        self._kind_of = kind_of
        self._subscribers: list[Callable[[bytes], object]] = []
        self._retained: dict[FilterKind, bytes] = {}
        self.bytes_sent = 0

    def subscribe(self, deliver: Callable[[bytes], object]) -> None:
        """Add a receiver; it gets the retained full filter and delta at once."""
        self._subscribers.append(deliver)
        for kind in (FilterKind.FULL, FilterKind.DELTA):
            if kind in self._retained:
                self._send(deliver, self._retained[kind])

    def publish(self, data: bytes) -> None:
        kind = self._kind_of(data)
        self._retained[kind] = data
        if kind is FilterKind.FULL:
            self._retained.pop(FilterKind.DELTA, None)
        for deliver in self._subscribers:
            self._send(deliver, data)

    def _send(self, deliver: Callable[[bytes], object], data: bytes) -> None:
        self.bytes_sent += len(data)
        # The receiver recorded its refusal; a broadcast goes on to the others.
        with contextlib.suppress(FleetIdError):
            deliver(data)


# --- MQTT ----------------------------------------------------------------------------------------


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )


def _connect(client: mqtt.Client, host: str, port: int, timeout: float) -> None:
    connected = threading.Event()
    failure: list[str] = []

    def on_connect(
        _c: mqtt.Client, _u: object, _f: object, code: ReasonCode, _p: Properties | None
    ) -> None:
        if code.is_failure:
            failure.append(str(code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise ConfigError(f"no MQTT broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    if not connected.wait(timeout) or failure:
        client.loop_stop()
        raise ConfigError(f"MQTT broker {host}:{port} refused: {failure or 'timeout'}")


class MqttFilterPublisher:
    """Publishes the full filter and delta as retained messages (QoS 1)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        timeout: float = 10.0,
        kind_of: Callable[[bytes], FilterKind] = filter_kind,
    ) -> None:
        self._prefix = topic_prefix.rstrip("/")
        self._timeout = timeout
        self._kind_of = kind_of
        self._client = _client(f"fleetid-filter-publisher-{uuid.uuid4().hex[:12]}")
        _connect(self._client, host, port, timeout)

    def topic(self, kind: FilterKind) -> str:
        return f"{self._prefix}/{'full' if kind is FilterKind.FULL else 'delta'}"

    def publish(self, data: bytes) -> int:
        """Retain ``data`` on its topic (a full filter also clears the delta); bytes published."""
        kind = self._kind_of(data)
        self._send(self.topic(kind), data)
        if kind is FilterKind.FULL:
            self._send(self.topic(FilterKind.DELTA), b"")
        return len(data)

    def clear(self) -> None:
        """Delete both retained messages (an empty retained payload, MQTT 5.0 §3.3.1.3)."""
        for kind in (FilterKind.FULL, FilterKind.DELTA):
            self._send(self.topic(kind), b"")

    def _send(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=_QOS, retain=True)
        if info.rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConfigError(f"MQTT publish to {topic} failed: {info.rc}")
        info.wait_for_publish(self._timeout)
        if not info.is_published():
            raise ConfigError(f"MQTT publish to {topic} was not acknowledged")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class MqttFilterSubscriber:
    """Subscribes a ``FilterReceiver`` to the retained full filter and delta.

    Refused artefacts stay in ``receiver.refused``; an empty payload (a cleared retained
    message) is ignored. ``close`` disconnects.
    """

    def __init__(
        self,
        receiver: FilterReceiver,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        timeout: float = 10.0,
    ) -> None:
        self.receiver = receiver
        prefix = topic_prefix.rstrip("/")
        self._client = _client(f"fleetid-filter-device-{uuid.uuid4().hex[:12]}")
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_args: subscribed.set()
        _connect(self._client, host, port, timeout)
        self._client.subscribe([(f"{prefix}/full", _QOS), (f"{prefix}/delta", _QOS)])
        if not subscribed.wait(timeout):
            self.close()
            raise ConfigError("the MQTT broker did not acknowledge the subscription")

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return
        # A refusal is recorded in receiver.refused; the device keeps what it had.
        with contextlib.suppress(FleetIdError):
            self.receiver.receive(bytes(message.payload))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
