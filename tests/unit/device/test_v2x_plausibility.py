"""Receiver plausibility checks: one pseudonym in two places, or too many messages, is flagged;
a vehicle driving at highway speed at 10 Hz is not."""

from __future__ import annotations

import pytest

from fleetid.device.v2x_plausibility import PlausibilityMonitor, PositionReport
from fleetid.errors import EncodingError

MS = 1_000  # Time64 counts microseconds
HOME = PositionReport(latitude=48.1, longitude=11.5)


def test_a_position_report_round_trips_in_tenths_of_a_microdegree() -> None:
    report = PositionReport(latitude=-33.8568, longitude=151.2153, hazard=3)
    data = report.encode()
    assert len(data) == 12
    assert data[:4] == (-338568000).to_bytes(4, "big", signed=True)
    assert PositionReport.decode(data) == report


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 11, PositionReport(latitude=0, longitude=0).encode() + b"\x00"],
)
def test_a_report_of_the_wrong_size_is_refused(data: bytes) -> None:
    with pytest.raises(EncodingError, match="12 bytes"):
        PositionReport.decode(data)


def test_coordinates_out_of_range_are_refused() -> None:
    bad = (91 * 10_000_000).to_bytes(4, "big", signed=True) + bytes(8)
    with pytest.raises(EncodingError, match="out of range"):
        PositionReport.decode(bad)


def test_the_distance_is_a_great_circle_one() -> None:
    # One hundredth of a degree of latitude is 1.112 km on the mean sphere.
    north = PositionReport(latitude=48.11, longitude=11.5)
    assert HOME.distance_to(north) == pytest.approx(1112, abs=1)
    assert HOME.distance_to(HOME) == 0


def test_a_vehicle_at_highway_speed_is_plausible() -> None:
    monitor = PlausibilityMonitor()
    # 36 m/s (130 km/h) northwards, one CAM every 100 ms, for three seconds.
    for step in range(30):
        report = PositionReport(latitude=48.1 + step * 3.6 / 111_195, longitude=11.5)
        assert monitor.observe(b"pseudo-1", report, step * 100 * MS) is None


def test_one_pseudonym_in_two_places_is_a_position_jump() -> None:
    monitor = PlausibilityMonitor()
    elsewhere = PositionReport(latitude=48.127, longitude=11.5)  # 3 km north
    assert monitor.observe(b"pseudo-1", HOME, 0) is None
    flag = monitor.observe(b"pseudo-1", elsewhere, 50 * MS)
    assert flag is not None and flag.reason == "position-jump"
    assert flag.signer_id == b"pseudo-1"
    # Another pseudonym at that place is a different vehicle: nothing to flag.
    assert monitor.observe(b"pseudo-2", elsewhere, 60 * MS) is None


def test_more_than_ten_messages_a_second_is_a_rate_flag() -> None:
    monitor = PlausibilityMonitor()
    flags = [monitor.observe(b"pseudo-1", HOME, n * 50 * MS) for n in range(11)]
    assert flags[:10] == [None] * 10
    assert flags[10] is not None and flags[10].reason == "message-rate"


def test_bounds_are_positive() -> None:
    with pytest.raises(ValueError):
        PlausibilityMonitor(max_speed=0)
    with pytest.raises(ValueError):
        PlausibilityMonitor(max_rate=0)
