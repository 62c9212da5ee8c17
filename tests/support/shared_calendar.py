"""One calendar reached through two of a user's accounts: the emulator shares it into a second
login when that login's calendar spec names the calendar's id."""

from __future__ import annotations

from tests.support.world import Cal, World


def shared_team(world: World, unique: str) -> tuple[Cal, Cal, Cal, Cal]:
    """Work (with Team) and home, whose login Team is shared into too: work, team, home and
    Team as home sees it (one provider calendar, two calsync calendars)."""
    first = world.account(f"work-{unique}@example.com", "Team")
    work, team = first["primary"], first["Team"]
    second = world.account(f"home-{unique}@example.com", shared={"Team": team})
    home, team_again = second["primary"], second["Team"]
    assert team_again.provider_id == team.provider_id
    assert team_again.id != team.id
    return work, team, home, team_again
