"""`calsync calendars` against a running server: list, settings changed, a refusal's sentence."""

from __future__ import annotations

from click.testing import CliRunner, Result

from calsync_server.cli import cli
from tests.server.conftest import ServerWorld
from tests.server.test_api import calendar, shown
from tests.support.shared_calendar import shared_team
from tests.support.waiting import wait_until
from tests.support.world import at, timed


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_calendars_list_and_set_against_a_running_server(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work, team, home, team_again = shared_team(world, unique)
    world.insert(work, **timed("Board", 9, 10))
    world.start(push=False)
    server = ["--server", world.url, "--token", "token-ada"]

    listed = run("calendars", "list", *server)
    assert listed.exit_code == 0, listed.output
    assert f"{team_again.id:>5}  Team  <home-{unique}@example.com>  (sync off, both;" in (
        listed.output
    )

    for cal in (work, team, home):
        done = run("calendars", "set", str(cal.id), "--sync", *server)
        assert done.exit_code == 0, done.output
        assert "(sync on, both" in done.output
    kept = run("calendars", "set", str(home.id), "--keep-blocks-when-off", *server)
    assert kept.exit_code == 0, kept.output
    assert "keeps blocks when off" in kept.output
    wait_until(lambda: shown(world, home) == [("Busy", at(9))], what="the block in home")
    with world.api() as api:
        assert calendar(api, home)["keep_blocks_when_off"] is True

    # The same calendar through the second account: refused, in the server's words.
    refused = run("calendars", "set", str(team_again.id), "--sync", *server)
    assert refused.exit_code == 1
    assert "the server answered 409" in refused.output
    assert f"already synced through work-{unique}@example.com" in refused.output

    nothing = run("calendars", "set", str(home.id), *server)
    assert nothing.exit_code == 2
    assert "say what to change" in nothing.output


def test_calendars_set_takes_the_rules(server_world: ServerWorld, unique: str) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.insert(work, **timed("Board", 9, 10))
    world.insert(work, **timed("Gym", 19, 20))
    world.start(push=False)
    server = ["--server", world.url, "--token", "token-ada"]
    for cal in (work, home):
        assert run("calendars", "set", str(cal.id), "--sync", *server).exit_code == 0
    wait_until(
        lambda: shown(world, home) == [("Busy", at(9)), ("Busy", at(19))], what="both blocks"
    )

    every_day = "mon-sun 08:00-18:00"
    done = run("calendars", "set", str(home.id), "--hours", every_day, "--merge", *server)
    assert done.exit_code == 0, done.output
    assert "hours mon,tue,wed,thu,fri,sat,sun 08:00-18:00" in done.output
    assert "merges blocks" in done.output
    wait_until(lambda: shown(world, home) == [("Busy", at(9))], what="the evening block gone")

    filters = ["--exclude", "board", "--include", "/^(board|gym)$/", "--no-tentative"]
    done = run("calendars", "set", str(work.id), *filters, *server)
    assert done.exit_code == 0, done.output
    assert "only /^(board|gym)$/, not board, tentative left out" in done.output
    wait_until(lambda: shown(world, home) == [], what="Board filtered out, Gym out of hours")

    cleared = run("calendars", "set", str(work.id), "--no-filters", *server)
    assert cleared.exit_code == 0, cleared.output
    assert "only" not in cleared.output
    assert "not board" not in cleared.output
    wait_until(lambda: shown(world, home) == [("Busy", at(9))], what="Board back")

    bad = run("calendars", "set", str(work.id), "--exclude", "/(oops/", *server)
    assert bad.exit_code == 1
    assert "not a valid regular expression" in bad.output
    unknown = run("calendars", "set", str(home.id), "--hours", "mon-funday 09:00-17:00", *server)
    assert unknown.exit_code == 1
    assert "funday" in unknown.output
    shapeless = run("calendars", "set", str(home.id), "--hours", "weekdays", *server)
    assert shapeless.exit_code == 2
    assert "mon-fri 09:00-17:00" in shapeless.output
