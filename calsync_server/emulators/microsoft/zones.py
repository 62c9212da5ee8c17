"""Time zone names as Graph takes them: Windows names (Outlook's own) and IANA names, both ways."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Windows zone -> IANA zone, from CLDR's windowsZones.xml (territory "001"): the zones Outlook
# users are most often in. A small table beats a dependency; add rows as scenarios need them.
WINDOWS_TO_IANA: dict[str, str] = {
    "UTC": "Etc/UTC",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Arabian Standard Time": "Asia/Dubai",
    "India Standard Time": "Asia/Calcutta",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Central Standard Time": "America/Chicago",
    "Eastern Standard Time": "America/New_York",
    "Atlantic Standard Time": "America/Halifax",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
}
IANA_TO_WINDOWS: dict[str, str] = {iana: windows for windows, iana in WINDOWS_TO_IANA.items()}
# Other IANA spellings of the same zones, so IANA input maps back to a Windows name too.
IANA_TO_WINDOWS.update({"UTC": "UTC", "Etc/GMT": "UTC", "Asia/Kolkata": "India Standard Time"})


class UnknownZone(ValueError):
    """Neither a Windows nor an IANA zone name."""


def zone_info(name: str) -> ZoneInfo:
    """The zone a Windows or IANA name stands for; `UnknownZone` for anything else."""
    iana = WINDOWS_TO_IANA.get(name, name)
    if not iana or iana.startswith("/") or ".." in iana:
        raise UnknownZone(name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(name) from None


def windows_name(name: str) -> str:
    """The Windows name of a zone given either way; an IANA zone outside the table keeps its
    IANA name, as Graph does for zones Windows does not know."""
    if name in WINDOWS_TO_IANA:
        return name
    return IANA_TO_WINDOWS.get(name, name)
