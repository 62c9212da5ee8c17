"""Provider calls are an outcome: one change costs one list and one write per target, no more."""

from __future__ import annotations

from tests.support.world import World, timed


def test_one_new_event_costs_one_list_and_k_inserts_in_one_batch(world: World, unique: str) -> None:
    cals = world.account(f"work-{unique}@example.com", "T1", "T2", "T3")
    source = cals["primary"]
    targets = [cals["T1"], cals["T2"], cals["T3"]]
    world.configure(source, *targets)
    world.sync_all(source, *targets)
    world.insert(source, **timed("Launch", 9, 10))
    world.reset_stats()

    world.sync(source)

    stats = world.stats()
    assert stats["calls"] == {"events.list": 1, "events.insert": len(targets)}
    assert stats["total_calls"] == 1 + len(targets)
    assert stats["requests"] == 2  # the list, and one batch holding every insert

    world.reset_stats()
    echoes = [world.sync(target) for target in targets]

    stats = world.stats()
    assert stats["calls"] == {"events.list": len(targets)}  # echoes cost no write
    assert all(result.log.provider_calls == 1 for result in echoes)
    assert all(result.log.blocks_created == 0 for result in echoes)


def test_a_webhook_sized_sync_of_100_events(world: World, unique: str) -> None:
    work, home = (world.account(f"{n}-{unique}@example.com")["primary"] for n in ("w", "h"))
    world.configure(work, home)
    world.sync_all(work, home)
    batch = world.service(work.email).new_batch_http_request()
    for i in range(100):
        batch.add(
            world.service(work.email)
            .events()
            .insert(
                calendarId=work.provider_id,
                body=timed(f"e{i}", 8 + (i % 10), 9 + (i % 10), days=1 + i // 10),
            )
        )
    batch.execute()

    result = world.sync(work)

    assert result.log.blocks_created == 100
    assert len(world.blocks(home)) == 100
    assert len(world.rows()) == 100


def test_two_thousand_events_in_the_window(world: World, unique: str) -> None:
    work, home = (world.account(f"{n}-{unique}@example.com")["primary"] for n in ("w", "h"))
    world.configure(work, home)
    service = world.service(work.email)
    for chunk in range(0, 2000, 500):
        batch = service.new_batch_http_request()
        for i in range(chunk, chunk + 500):
            day, slot = 1 + i // 25, i % 25
            batch.add(
                service.events().insert(
                    calendarId=work.provider_id,
                    body=timed(f"e{i}", slot * 0.5, slot * 0.5 + 0.5, days=day),
                )
            )
        batch.execute()

    world.sync_all(work, home)

    assert len(world.blocks(home)) == 2000
    assert len(world.rows()) == 2000
    reconciled = world.sync(work, full=True).log
    assert (reconciled.blocks_created, reconciled.blocks_updated, reconciled.blocks_deleted) == (
        0,
        0,
        0,
    )
