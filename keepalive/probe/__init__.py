"""The probe: one check of one target -> a CheckResult (never raises).

Layout: ``checker`` (the Checker: deadline, latency, the probe per kind), ``http_probe``
(redirects, the monitor's own endpoint), ``transport`` (the Transport and Probe protocols),
``lean`` and ``aiohttp_transport`` (the two HTTP clients, each mapping its own errors),
``judge`` (pure verdict on an answer), ``answer`` (Answer, Failure, the shared limits),
``resolver`` (bounded, isolated name resolution for both clients).

Kinds other than HTTP (SPEC 14), one module each: ``tcp``, ``push`` (the PushBoard the /ping
routes write), ``logfile`` (tail -F reads off the loop), ``tls`` (certificate expiry and the
TLS reasons), ``conditions`` (JSONPath conditions for the judge); ``kinds`` validates their
keys at load, ``detail`` is what each learned besides the verdict.
"""

from keepalive.probe.checker import Checker, CheckResult, printable

__all__ = ["CheckResult", "Checker", "printable"]
