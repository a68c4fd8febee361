"""The clocks of an incident: hours since the vendor became aware, and per client the time to its first notice
against the target of that client's agreement (legal requirement 44).

A client's target is its agreement's breach-notice hours, else ``PORTAL_BREACH_TARGET_HOURS``. Until the first notice
is sent the client's clock keeps running, so a target can be breached before anything is sent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from portal.agreements.models import Agreement
from portal.breaches.models import BreachNotice, Incident


def whole_hours(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 3600)


def elapsed_hours(incident: Incident, now: dt.datetime) -> int:
    """Whole hours since awareness: at the closing time for a closed incident."""
    return whole_hours((incident.closed_at or now) - incident.aware_at)


@dataclass(frozen=True)
class ClientClock:
    target_hours: int
    first_notice_at: dt.datetime | None
    hours: int  # from awareness to the first notice, or to now while none was sent
    sla_breached: bool


def client_clock(incident: Incident, notices: list[BreachNotice], agreement: Agreement | None, *, default_hours: int,
                 now: dt.datetime) -> ClientClock:
    """Where one client stands against its target for the first notice."""
    target = agreement.breach_target_hours_or(default_hours) if agreement is not None else default_hours
    first = min((n.notified_at for n in notices), default=None)
    span = (first or incident.closed_at or now) - incident.aware_at
    return ClientClock(target, first, whole_hours(span), span > dt.timedelta(hours=target))
