"""Which Dask clusters the coordinator talks to: a plain tcp:// scheduler off this machine is refused by its
address's text alone, before any connection (tests/test_cluster.py runs the clusters themselves)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        ("tcp://scheduler.invalid:8786", False),
        ("tcp://192.0.2.7:8786", False),
        ("ucx://scheduler.invalid:8786", False),
        ("tcp://127.0.0.1:8786", True),
        ("tcp://localhost:8786", True),
        ("tcp://[::1]:8786", True),
        ("tls://scheduler.invalid:8786", True),
        ("local:2", True),
    ],
)
def test_a_plain_tcp_address_off_this_machine_is_refused_unless_insecure_is_asked(address: str, accepted: bool) -> None:
    """A tcp:// scheduler off this machine (no encryption, no authentication) is refused, by the address's text
    alone (no name is looked up), unless --cluster-insecure is given; loopback and tls:// are taken."""
    from grader.errors import GraderError
    from grader.evaluation.cluster import check_address

    if accepted:
        assert check_address(address)
        return
    with pytest.raises(GraderError, match="no encryption and no authentication"):
        check_address(address)
    assert check_address(address, insecure=True).startswith("insecure")
