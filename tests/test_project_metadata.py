"""The conventions of Dutch government open source: publiccode.yml (standard 0.4), the EUPL-1.2
licence text and a changelog in the Keep a Changelog format. Checked offline."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

import hub

REPO = Path(__file__).resolve().parents[1]

# The standard's controlled vocabularies (publiccode.yml 0.4, categories and scope lists).
CATEGORIES = frozenset(
    [
        "accounting",
        "agile-project-management",
        "applicant-tracking",
        "application-development",
        "appointment-scheduling",
        "backup",
        "billing-and-invoicing",
        "blog",
        "budgeting",
        "business-intelligence",
        "business-process-management",
        "cad",
        "call-center-management",
        "cloud-management",
        "collaboration",
        "communications",
        "compliance-management",
        "contact-management",
        "content-management",
        "crm",
        "customer-service-and-support",
        "data-analytics",
        "data-collection",
        "data-visualization",
        "design",
        "design-system",
        "digital-asset-management",
        "digital-citizenship",
        "document-management",
        "donor-management",
        "e-commerce",
        "e-signature",
        "educational-content",
        "email-management",
        "email-marketing",
        "employee-management",
        "enterprise-project-management",
        "enterprise-social-networking",
        "erp",
        "event-management",
        "facility-management",
        "feedback-and-reviews-management",
        "financial-reporting",
        "fleet-management",
        "fundraising",
        "gamification",
        "geographic-information-systems",
        "grant-management",
        "graphic-design",
        "help-desk",
        "hr",
        "ide",
        "identity-management",
        "instant-messaging",
        "inventory-management",
        "it-asset-management",
        "it-development",
        "it-management",
        "it-security",
        "it-service-management",
        "knowledge-management",
        "learning-management-system",
        "marketing",
        "mind-mapping",
        "mobile-marketing",
        "mobile-payment",
        "network-management",
        "office",
        "online-booking",
        "online-community",
        "payment-gateway",
        "payroll",
        "predictive-analysis",
        "procurement",
        "productivity-suite",
        "project-collaboration",
        "project-management",
        "property-management",
        "real-estate-management",
        "remote-support",
        "resource-management",
        "sales-management",
        "seo",
        "service-desk",
        "social-media-management",
        "survey",
        "talent-management",
        "task-management",
        "taxes-management",
        "test-management",
        "time-management",
        "time-tracking",
        "translation",
        "video-conferencing",
        "video-editing",
        "visitor-management",
        "voip",
        "warehouse-management",
        "web-collaboration",
        "web-conferencing",
        "website-builder",
        "whistleblowing",
        "workflow-management",
    ]
)
SCOPES = frozenset(
    [
        "agriculture",
        "culture",
        "defence",
        "education",
        "emergency-services",
        "employment",
        "energy",
        "environment",
        "finance-and-economic-development",
        "foreign-affairs",
        "healthcare",
        "infrastructures",
        "justice",
        "local-authorities",
        "manufacturing",
        "research",
        "science-and-technology",
        "security",
        "society",
        "sport",
        "tourism",
        "transportation",
        "welfare",
    ]
)
DEVELOPMENT_STATUS = {"concept", "development", "beta", "stable", "obsolete"}
SOFTWARE_TYPES = {
    "standalone/mobile",
    "standalone/iot",
    "standalone/desktop",
    "standalone/web",
    "standalone/backend",
    "standalone/other",
    "addon",
    "library",
    "configurationFiles",
}
MAINTENANCE_TYPES = {"internal", "contract", "community", "none"}
TOP_LEVEL_KEYS = {
    "publiccodeYmlVersion",
    "name",
    "applicationSuite",
    "url",
    "landingURL",
    "isBasedOn",
    "organizationUri",
    "softwareVersion",
    "releaseDate",
    "logo",
    "platforms",
    "categories",
    "usedBy",
    "roadmap",
    "developmentStatus",
    "softwareType",
    "intendedAudience",
    "description",
    "legal",
    "maintenance",
    "localisation",
    "dependsOn",
    "it",
}
DESCRIPTION_KEYS = {
    "localisedName",
    "shortDescription",
    "longDescription",
    "documentation",
    "apiDocumentation",
    "features",
    "screenshots",
    "videos",
    "awards",
}
DEPENDENCY_KEYS = {"name", "versionMin", "versionMax", "version", "optional"}
URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# BCP 47: a primary language subtag, optionally followed by further subtags
LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


@pytest.fixture(scope="module")
def publiccode() -> dict[str, Any]:
    """The parsed publiccode.yml (UTF-8, as the standard requires)."""
    text = (REPO / "publiccode.yml").read_bytes().decode("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    """The parsed pyproject.toml."""
    with (REPO / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _date(value: Any) -> date:
    # quoted in the file: PyYAML would turn a bare date into a date object, YAML 1.2 would not
    assert isinstance(value, str) and DATE.match(value), value
    return date.fromisoformat(value)


def test_publiccode_top_level(publiccode: dict[str, Any], pyproject: dict[str, Any]) -> None:
    assert set(publiccode) <= TOP_LEVEL_KEYS, set(publiccode) - TOP_LEVEL_KEYS
    assert publiccode["publiccodeYmlVersion"] == "0.4"
    assert isinstance(publiccode["name"], str) and publiccode["name"].strip()
    assert URL.match(publiccode["url"])
    assert publiccode["softwareVersion"] == pyproject["project"]["version"] == hub.__version__
    _date(publiccode["releaseDate"])
    platforms = publiccode["platforms"]
    assert isinstance(platforms, list) and platforms and all(isinstance(p, str) for p in platforms)
    categories = publiccode["categories"]
    assert isinstance(categories, list) and categories and set(categories) <= CATEGORIES
    assert publiccode["developmentStatus"] in DEVELOPMENT_STATUS
    assert publiccode["softwareType"] in SOFTWARE_TYPES


def test_publiccode_audience(publiccode: dict[str, Any]) -> None:
    audience = publiccode.get("intendedAudience", {})
    assert set(audience) <= {"countries", "unsupportedCountries", "scope"}
    for key in ("countries", "unsupportedCountries"):
        assert all(re.fullmatch(r"[a-z]{2}", country) for country in audience.get(key, []))
    assert set(audience.get("scope", [])) <= SCOPES


@pytest.mark.parametrize("language", ["nl", "en"])
def test_publiccode_description(publiccode: dict[str, Any], language: str) -> None:
    description = publiccode["description"][language]
    assert set(description) <= DESCRIPTION_KEYS
    short = description["shortDescription"]
    assert isinstance(short, str) and 0 < len(short) <= 150 and "\n" not in short.strip()
    long = description["longDescription"]
    assert isinstance(long, str) and 150 <= len(long) <= 10_000
    features = description["features"]
    assert isinstance(features, list) and features
    assert all(isinstance(feature, str) and feature.strip() for feature in features)
    for key in ("documentation", "apiDocumentation"):
        if key in description:
            assert URL.match(description[key])


def test_publiccode_legal_and_licence(publiccode: dict[str, Any], pyproject: dict[str, Any]) -> None:
    assert publiccode["legal"]["license"] == pyproject["project"]["license"] == "EUPL-1.2"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("EUROPEAN UNION PUBLIC LICENCE v. 1.2\nEUPL © the European Union 2007, 2016\n")
    # every article of the licence and its appendix are there
    for number in range(1, 16):
        assert re.search(rf"^{number}\.\s*\S", text, re.M), f"article {number}"
    assert "Compatible Licences\u2019 according to Article 5 EUPL are:" in text
    assert text.rstrip().endswith(
        "All other changes or additions to this Appendix require the production of a new EUPL version."
    )


def test_publiccode_maintenance_localisation_dependencies(publiccode: dict[str, Any]) -> None:
    maintenance = publiccode["maintenance"]
    assert maintenance["type"] in MAINTENANCE_TYPES
    if maintenance["type"] in ("internal", "community"):
        contacts = maintenance["contacts"]
        assert contacts and all(isinstance(c.get("name"), str) and c["name"].strip() for c in contacts)
        for contact in contacts:
            assert set(contact) <= {"name", "email", "phone", "affiliation"}
    if maintenance["type"] == "contract":
        for contractor in maintenance["contractors"]:
            assert contractor["name"] and _date(contractor["until"])

    localisation = publiccode["localisation"]
    assert isinstance(localisation["localisationReady"], bool)
    languages = localisation["availableLanguages"]
    assert languages and all(LANGUAGE_TAG.match(language) for language in languages)

    depends_on = publiccode.get("dependsOn", {})
    assert set(depends_on) <= {"open", "proprietary", "hardware"}
    for dependencies in depends_on.values():
        for dependency in dependencies:
            assert set(dependency) <= DEPENDENCY_KEYS and dependency["name"]
            for key in ("versionMin", "versionMax", "version"):
                assert isinstance(dependency.get(key, ""), str), (dependency, key)
            assert isinstance(dependency.get("optional", False), bool)


def test_changelog_follows_keep_a_changelog() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    assert "https://keepachangelog.com/en/1.1.0/" in text
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\S+))?$", text, re.M)
    assert releases and releases[0][0] == "Unreleased"
    for version, released in releases[1:]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version) and _date(released)
    sections = re.findall(r"^### (.+)$", text, re.M)
    assert sections and set(sections) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
