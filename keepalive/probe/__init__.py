"""The probe: one check of one target -> a CheckResult (never raises).

Layout: ``checker`` (the Checker: deadline, latency, the probe per kind), ``http_probe``
(redirects, the monitor's own endpoint), ``transport`` (the Transport and Probe protocols),
``lean`` and ``aiohttp_transport`` (the two HTTP clients, each mapping its own errors),
``judge`` (pure verdict on an answer), ``answer`` (Answer, Failure, the shared limits),
``resolver`` (bounded, isolated name resolution for both clients).
"""

from keepalive.probe.checker import Checker, CheckResult, printable

__all__ = ["CheckResult", "Checker", "printable"]
