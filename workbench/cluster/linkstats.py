"""Byte counters of namespaced hosts' links, split by traffic class.

:class:`LinkCounters` is one snapshot of the kernel's counters of every host link of a
:class:`~workbench.cluster.netns.HostNetwork`: the root side of each veth pair
(``/sys/class/net/<link>/statistics``: bytes the host received and sent) and the bytes of each
``htb`` class of both directions (``tc -s class show``). Subtracting two snapshots gives a
phase's bytes. The ``htb`` counters include the headers of each segment of a GSO packet, so
their sum runs a few percent above the interface counters; shares between classes are what
they are for.

Examples
--------
>>> z = {"rx": 0, "tx": 0}
>>> c = LinkCounters({"host-0": {"rx": 10, "tx": 4, "classes": {k: z for k in TRAFFIC_CLASSES}}},
...                  {"rx": 0, "tx": 0})
>>> c.bytes_on_links
14
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TRAFFIC_CLASSES", "CLASSID", "LinkCounters", "class_bytes"]

#: Traffic classes counted on every link (see :mod:`workbench.cluster.netns`).
TRAFFIC_CLASSES = ("data", "control", "training", "other")
#: The ``htb`` class id of each traffic class.
CLASSID = {"data": "1:10", "control": "1:20", "training": "1:30", "other": "1:40"}


@dataclass(frozen=True)
class LinkCounters:
    """Byte counters of every host link at one moment (kernel counters).

    ``hosts[name]`` holds ``rx``/``tx`` (bytes the host received / sent, from the root side of
    its veth pair) and ``classes[kind] = {"rx": ..., "tx": ...}`` (the ``htb`` classes);
    ``controller`` the bridge's own counters (the controller's link).
    """

    hosts: Mapping[str, Mapping[str, Any]]
    controller: Mapping[str, int]
    t: float = field(default_factory=time.monotonic)

    def __sub__(self, other: LinkCounters) -> LinkCounters:
        def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
            return {k: diff(v, b[k]) if isinstance(v, Mapping) else v - b[k] for k, v in a.items()}

        return LinkCounters(
            {h: diff(v, other.hosts[h]) for h, v in self.hosts.items()},
            diff(self.controller, other.controller),
            self.t - other.t,
        )

    @property
    def bytes_on_links(self) -> int:
        """Bytes sent plus received, summed over the hosts' interfaces.

        What each machine's NIC counters show, added up: a byte between two hosts counts at
        both (sent by one, received by the other); a byte from the controller counts once.
        """
        return sum(int(v["rx"]) + int(v["tx"]) for v in self.hosts.values())

    def by_class(self) -> dict[str, int]:
        """Bytes sent plus received on the hosts' links per traffic class."""
        return {
            kind: sum(int(v["classes"][kind]["rx"]) + int(v["classes"][kind]["tx"])
                      for v in self.hosts.values())
            for kind in TRAFFIC_CLASSES
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: totals, per class, per host, the controller link."""
        return {
            "bytes_on_links": self.bytes_on_links,
            "by_class": self.by_class(),
            "hosts": {h: dict(v) for h, v in self.hosts.items()},
            "controller_link": dict(self.controller),
        }


def class_bytes(text: str) -> dict[str, int]:
    """``{"1:10": bytes, ...}`` from ``tc -s class show`` output."""
    out: dict[str, int] = {}
    for m in re.finditer(r"class htb (\d+:\d+) .*?\n\s*Sent (\d+) bytes", text):
        out[m.group(1)] = int(m.group(2))
    return out
