"""Retention of audit records per processing activity, from the Selectielijst gemeenten 2020.

An activity's period is its ``retention_days`` when set, else the period of its
``retention_category``. A record is due for destruction once the period has passed since the
processing ended. An activity whose period cannot be determined keeps its records: nothing is
destroyed on a guess.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.settings import ProcessingActivity, Settings

SELECTION_LIST = "Selectielijst gemeenten en intergemeentelijke organen 2020"

UNSTATED_PURPOSE = "unstated-purpose"
"""Id of the built-in activity of requests that name no purpose, when none is configured."""
UNSTATED_PURPOSE_URI = "urn:urban-twin-hub:processing-activity:unstated-purpose"


@dataclass(frozen=True, slots=True)
class Period:
    """A retention period in calendar months and days."""

    months: int = 0
    days: int = 0

    def before(self, moment: datetime) -> datetime:
        """The instant this period before ``moment`` (month ends clamp: 31 Aug - 6 months = 28 Feb)."""
        year, month = divmod(moment.year * 12 + moment.month - 1 - self.months, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day) - timedelta(days=self.days)

    def __str__(self) -> str:
        parts = []
        years, months = divmod(self.months, 12)
        if years:
            parts.append(f"{years} year{'s' if years > 1 else ''}")
        if months:
            parts.append(f"{months} month{'s' if months > 1 else ''}")
        if self.days or not parts:
            parts.append(f"{self.days} day{'s' if self.days != 1 else ''}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Category:
    """A category of the selection list with its retention period."""

    code: str
    title: str
    period: Period


CATEGORIES: dict[str, Category] = {
    category.code: category
    for category in (
        Category("12.1.8", "records of access control (toegangsbeheer)", Period(months=6)),
        Category("19.1.24", "login data (inloggegevens)", Period(months=6)),
        Category("4.1", "internal audit (interne controle)", Period(months=120)),
        Category("20.1.7", "published open datasets, after they cease", Period(months=12)),
    )
}
"""The categories the hub knows the period of; others need ``retention_days`` on the activity."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long the records of one processing activity are kept, and on what grounds."""

    activity: ProcessingActivity
    category: str
    period: Period

    @property
    def grounds(self) -> str:
        """The legal grounds of destruction, as the declaration states them."""
        known = CATEGORIES.get(self.category)
        what = f"category {self.category}" + (f" ({known.title})" if known else "")
        how_long = f"retention {self.period}"
        if self.activity.retention_days is not None:
            how_long += " as adopted for this processing activity"
        legal_basis = self.activity.legal_basis
        basis = f"; legal basis of the activity: {legal_basis}" if legal_basis else ""
        return (
            f"Archiefwet 1995; {SELECTION_LIST}, {what}: {how_long} after the processing ended. "
            f"Processing activity {self.activity.id} <{self.activity.uri}>{basis}."
        )

    def cutoff(self, now: datetime) -> datetime:
        """Records of processings that ended before this instant are due for destruction."""
        return self.period.before(now)


def default_activity(settings: Settings) -> ProcessingActivity:
    """The activity of requests that name no purpose: ``audit.default_activity`` or the built-in one."""
    wanted = settings.audit.default_activity
    if wanted is not None:
        for activity in settings.processing_activities:
            if activity.id == wanted:
                return activity
    return ProcessingActivity(
        id=UNSTATED_PURPOSE,
        uri=UNSTATED_PURPOSE_URI,
        name="Requests that state no purpose (open data and management)",
        retention_category=settings.audit.default_retention_category,
    )


def known_activities(settings: Settings) -> dict[str, ProcessingActivity]:
    """Every activity records can name, by id: the configured ones and the default."""
    activities = {activity.id: activity for activity in settings.processing_activities}
    default = default_activity(settings)
    activities.setdefault(default.id, default)
    return activities


def policy_for(activity: ProcessingActivity) -> RetentionPolicy | None:
    """The retention of an activity's records, or None when neither its days nor its category tell."""
    category = activity.retention_category or "-"
    if activity.retention_days is not None:
        return RetentionPolicy(activity, category, Period(days=activity.retention_days))
    known = CATEGORIES.get(category)
    if known is None:
        return None
    return RetentionPolicy(activity, category, known.period)


def configuration_problems(settings: Settings) -> list[str]:
    """What in the configuration keeps the audit trail from working as intended."""
    problems = []
    wanted = settings.audit.default_activity
    if wanted is not None and wanted not in {a.id for a in settings.processing_activities}:
        problems.append(f"audit.default_activity {wanted!r} is not one of processing_activities")
    for activity in known_activities(settings).values():
        if policy_for(activity) is None:
            problems.append(
                f"processing activity {activity.id!r} has no retention: set retention_days, or a "
                f"retention_category the hub knows ({', '.join(sorted(CATEGORIES))})"
            )
    return problems
