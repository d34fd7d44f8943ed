"""Linked CRLs as MQTT retained messages (a real Mosquitto, 127.0.0.1:1883): a receiver that
connects after both were published gets the full CRL and the delta, and refuses the vehicles."""

from __future__ import annotations

import os
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from tests.butterfly_fixtures import new_batch_pki
from tests.optional import require_tcp

from fleetid.errors import CertificateRevokedError
from fleetid.formats.ieee1609 import decode_certificate
from fleetid.revocation.channels import LINKED_CRL_TOPIC_PREFIX, MqttFilterPublisher
from fleetid.revocation.linked_crl_channel import (
    LinkedCrlPublisher,
    LinkedCrlReceiver,
    linked_crl_kind,
)

_HOST, _, _PORT = os.environ.get("FLEETID_TEST_MQTT", "127.0.0.1:1883").rpartition(":")
BROKER = (_HOST, int(_PORT))
WAIT = 10.0


def test_retained_full_and_delta_reach_a_late_receiver() -> None:
    require_tcp(*BROKER, what="MQTT broker (Debian package mosquitto)")
    batch = new_batch_pki("nist", per_period=3)
    vehicles = [batch.vehicle(f"VIN-Q{n}".encode()) for n in range(2)]
    weeks = [batch.week(v) for v in vehicles]
    craca = decode_certificate(batch.authorities.ca.certificate)
    crls = LinkedCrlPublisher(
        signer=batch.authorities.ca.keys.signer,
        craca_certificate=craca,
    )
    a = batch.authorities
    prefix = f"{LINKED_CRL_TOPIC_PREFIX}-test/{uuid.uuid4().hex}"
    publisher = MqttFilterPublisher(*BROKER, topic_prefix=prefix, kind_of=linked_crl_kind)
    try:
        for week in weeks:
            chain = a.ca.record_for(week[0].certificate.encoded)
            crls.revoke(
                i=0,
                la1_id=a.la1.la_id,
                la2_id=a.la2.la_id,
                seed1=a.la1.reveal(a.la2.peel(chain.chain_references[0]), 0)[0],
                seed2=a.la2.reveal(a.la1.peel(chain.chain_references[1]), 0)[0],
                j_max=3,
                i_max=9,
            )
            publisher.publish(crls.publish(batch.pki.clock.now(), 0))
        received: list[bytes] = []
        both = threading.Event()

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            if message.payload:
                received.append(bytes(message.payload))
            if len(received) == 2:
                both.set()

        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.connect(*BROKER)
        client.subscribe([(f"{prefix}/full", 1), (f"{prefix}/delta", 1)])
        client.loop_start()
        try:
            assert both.wait(WAIT), f"got {len(received)} retained messages"
        finally:
            client.disconnect()
            client.loop_stop()
        receiver = LinkedCrlReceiver(craca)
        for data in sorted(received, key=lambda d: linked_crl_kind(d).name != "FULL"):
            receiver.load(data)
        for week in weeks:
            for pseudonym in week:
                try:
                    receiver.check(0, 0, pseudonym.linkage_value)
                except CertificateRevokedError:
                    continue
                raise AssertionError("a revoked vehicle's pseudonym passed")
    finally:
        publisher.clear()
        publisher.close()
