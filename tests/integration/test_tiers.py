"""Memory tiers through a real daemon: paging, eviction and faults, heat, purge, crashes mid-consolidation."""

from __future__ import annotations

import random
import time
import uuid

import psutil
import pytest

from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import NotFoundError

TOPICS = {
    "pottery": "clay wheel glaze kiln bowl vase",
    "hiking": "trail summit boots ridge forest map",
    "cooking": "recipe oven garlic pasta sauce bread",
    "music": "violin concert rehearsal melody choir piano",
    "garden": "tomatoes compost seeds roses soil shovel",
    "travel": "flight passport hotel museum train luggage",
}
SPEAKERS = ("Ana", "Ben")


def conversation(sessions: int = 6, turns: int = 20, seed: int = 7) -> list[m.MemoryIn]:
    """Sessions of turns that stay on one topic for a while, then move on (like a real chat)."""
    rng = random.Random(seed)
    items = []
    topics = list(TOPICS)
    for s in range(sessions):
        day = 1_684_000_000 + s * 86_400 * 3
        for t in range(turns):
            topic = topics[(s + t // 7) % len(topics)]
            words = rng.sample(TOPICS[topic].split(), 3)
            speaker = SPEAKERS[t % 2]
            items.append(m.MemoryIn(
                text=f"{speaker}: I keep thinking about {topic}, the {words[0]} and the {words[1]} "
                     f"near the {words[2]} (turn {s}-{t})",
                session=f"s{s}", event_time=float(day)))
    return items


QUERIES = [f"{topic} {words.split()[i]}" for topic, words in TOPICS.items() for i in (0, 3)] + [
    "turn 3-5", "the summit near the kiln", "Ben oven garlic", "Ana violin choir"]


def settle(daemon: DaemonProcess, timeout: float = 60.0) -> m.TiersResult:
    """Wait until the scheduler has paged and consolidated everything it will."""
    deadline = time.monotonic() + timeout
    with daemon.admin() as admin:
        while True:
            result = admin.tiers()
            if result.backlog == 0:
                return result
            assert time.monotonic() < deadline, f"scheduler backlog stuck at {result.backlog}"
            time.sleep(0.1)


def ns_tiers(daemon: DaemonProcess, namespace: str) -> m.NamespaceTiers:
    with daemon.admin() as admin:
        (found,) = admin.tiers(namespace).namespaces
    return found


def all_pages(client, count: int) -> list[m.PageResult]:
    """Every page of the client's namespace (ids are small integers from 1)."""
    pages, page_id = [], 1
    while len(pages) < count:
        try:
            pages.append(client.page(page_id))
        except NotFoundError:
            pass
        page_id += 1
        assert page_id < 100_000
    return pages


def answers(client) -> list[list[tuple[int, float]]]:
    return [[(h.memory.id, round(h.score, 5)) for h in client.recall(q, k=10)] for q in QUERIES]


def test_short_term_keeps_the_newest_turns_and_pages_the_rest(tmp_path):
    with DaemonProcess(tmp_path / "store") as daemon, daemon.client(namespace="chat") as client:
        ids = client.remember_many(conversation(sessions=2, turns=30)).ids
        settle(daemon)
        tiers = ns_tiers(daemon, "chat")
        assert tiers.stm == 2 * 8 and tiers.mtm + tiers.ltm == 2 * 22
        pages = all_pages(client, tiers.pages)
        paged = sorted(i for p in pages for i in p.members)
        assert paged == sorted(ids[:22] + ids[30:52])  # the oldest 22 of each session, each in one page
        for page in pages:
            assert 1 <= len(page.members) <= 8
            assert page.members == list(range(page.members[0], page.members[0] + len(page.members)))
            assert all(client.get(i).session == page.session for i in page.members)
        assert [mem.tier for mem in client.get_many([ids[0], ids[29]]).memories] == ["mtm", "stm"]
        holding = client.page(memory=ids[5])
        assert ids[5] in holding.members and holding == client.page(holding.id)
        with pytest.raises(NotFoundError, match="short-term"):
            client.page(memory=ids[29])
        newest = client.list(filters=m.Filters(tier="stm"), limit=100).memories
        assert sorted(mem.id for mem in newest) == sorted(ids[22:30] + ids[52:60])


def test_recall_after_eviction_returns_the_same_top_k(tmp_path):
    store = tmp_path / "store"
    fine = {"MEMOSD_TIERS_FINE_WEIGHT": "0.5"}  # text recall scores the fine vectors, so it needs the pages
    with DaemonProcess(store, env=fine) as daemon, daemon.client(namespace="chat") as client:
        client.remember_many(conversation())
        settle(daemon)
        before = answers(client)
        assert ns_tiers(daemon, "chat").faults == 0
    # The same store with a budget no page fits in: every page is evicted, every query faults.
    with DaemonProcess(store, env={**fine, "MEMOSD_TIERS_BUDGET_BYTES": "1"}) as daemon, \
            daemon.client(namespace="chat") as client:
        assert ns_tiers(daemon, "chat").resident_pages == 0
        after = answers(client)
        tiers = ns_tiers(daemon, "chat")
    assert after == before
    assert tiers.faults > 0 and tiers.evictions > 0 and tiers.resident_pages == 0


def test_the_first_hits_do_not_depend_on_k(tmp_path):
    # A small k is chosen among the candidate units' turns alone when that provably gives the top k of
    # every turn; a k past candidate_lexical takes a pass over the whole namespace. Few candidates
    # here, so most turns are outside them and the shortcut has to prove itself on every query.
    few = {"MEMOSD_TIERS_CANDIDATE_PAGES": "1", "MEMOSD_TIERS_CANDIDATE_LEXICAL": "3"}
    with DaemonProcess(tmp_path / "store", env=few) as daemon, daemon.client(namespace="chat") as client:
        client.remember_many(conversation(sessions=12, turns=30))
        settle(daemon)
        for query in QUERIES + ["kiln", "summit choir passport", "nothing matches this"]:
            for filters in (m.Filters(), m.Filters(session="s3")):
                wide = [(h.memory.id, h.score) for h in client.recall(query, k=10, filters=filters)]
                for k in (1, 3):
                    narrow = [(h.memory.id, h.score) for h in client.recall(query, k=k, filters=filters)]
                    assert narrow == wide[:k], (query, filters, k)


def test_a_turn_waiting_to_be_paged_past_the_searched_ring_is_still_found(tmp_path):
    # With the scheduler held off, a burst leaves most of a session's turns in its ring, past the part
    # that the fine stage scores (the newest ones). An old turn that holds the query's rare word must
    # still come first, through its BM25 score, even though newer turns match the query's common word.
    held = {"MEMOSD_TIERS_TICK_S": "3600"}
    with DaemonProcess(tmp_path / "store", env=held) as daemon, daemon.client(namespace="chat") as client:
        items = [m.MemoryIn(text=f"Ana: the zebrafish tank needs cleaning (turn {i})" if i == 0 else
                            f"Ben: the kiln is hot again today (turn {i})", session="s0") for i in range(400)]
        ids = client.remember_many(items).ids
        assert ns_tiers(daemon, "chat").stm == 400
        for k in (1, 3, 10):
            assert client.recall("zebrafish kiln", k=k)[0].memory.id == ids[0]


def test_text_recall_reads_no_page_vectors_by_default(tmp_path):
    store = tmp_path / "store"
    with DaemonProcess(store) as daemon, daemon.client(namespace="chat") as client:
        client.remember_many(conversation())
        settle(daemon)
        before = answers(client)
    # No page fits in the budget, yet text recall faults none in: the default scores no fine vectors.
    with DaemonProcess(store, env={"MEMOSD_TIERS_BUDGET_BYTES": "1"}) as daemon, \
            daemon.client(namespace="chat") as client:
        after = answers(client)
        tiers = ns_tiers(daemon, "chat")
    assert after == before
    assert tiers.faults == 0 and tiers.resident_pages == 0 and tiers.pages > 0


def test_a_unique_word_finds_its_memory_while_pages_form(tmp_path):
    # Batches written back to back: the scheduler pages them and re-indexes the pages' coarse documents
    # while the recalls run. A page whose document does not hold the word yet must not lose its turn to
    # pages that only match through colliding hashed n-grams.
    rng = random.Random(3)
    words = "amber anchor beacon canyon cedar comet ember harbor kettle lantern maple meteor quartz willow".split()
    texts = {}
    with DaemonProcess(tmp_path / "store") as daemon, daemon.client(namespace="chat") as client:
        for _ in range(30):
            batch = [f"note: {' '.join(rng.choices(words, k=rng.randint(3, 20)))} zq{uuid.uuid4().hex[:14]}"
                     for _ in range(rng.randint(1, 16))]
            texts.update(zip(client.remember_many(batch).ids, batch))
        missed = [i for i, text in texts.items()
                  if i not in [hit.memory.id for hit in client.recall(text.rsplit(" ", 1)[-1], k=3)]]
    assert missed == []


def test_heat_decays_while_idle_and_rises_with_hits(tmp_path):
    env = {"MEMOSD_TIERS_HEAT_HALF_LIFE_S": "2"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon, daemon.client(namespace="chat") as client:
        client.remember_many(conversation(sessions=1, turns=20))
        settle(daemon)
        first = client.page(1)
        time.sleep(2.0)
        idle = client.page(1)
        # Nobody touched the page: its heat halved in one half-life (computed from timestamps).
        assert idle.hits == first.hits and idle.touched_at == first.touched_at
        assert 0.35 < idle.heat / first.heat < 0.6
        member = client.get(first.members[0])
        assert client.recall(member.text, k=1)[0].memory.id == member.id
        hit = client.page(1)
        assert hit.hits == pytest.approx(1.0, abs=0.01) and hit.heat > first.heat


@pytest.mark.parametrize("knowledge", [{}, {"MEMOSD_TIERS_KNOWLEDGE_WEIGHT": "0.5", "MEMOSD_TIERS_KNOWLEDGE_CANDIDATES": "5"}],
                         ids=["default", "knowledge-channel"])
def test_purge_removes_a_memory_from_pages_knowledge_indexes_and_caches(tmp_path, knowledge):
    # With the knowledge channel on, recall also boosts the turns the best facts cite.
    with DaemonProcess(tmp_path / "store", env=knowledge) as daemon, daemon.client(namespace="chat") as client:
        items = conversation(sessions=1, turns=20)
        items[3] = m.MemoryIn(text="Ana: I met Quorvathine at the pottery studio yesterday", session="s0",
                              event_time=items[3].event_time)
        ids = client.remember_many(items).ids
        settle(daemon)
        secret = ids[3]
        page = next(p for p in all_pages(client, ns_tiers(daemon, "chat").pages) if secret in p.members)
        assert page.consolidated and any("Quorvathine" in f.text for f in page.facts)
        assert any(e.name == "Quorvathine" for e in page.entities)
        profile = client.entity("quorvathine")  # the entity index of long-term memory, case-insensitive
        assert profile.mentions == [secret] and profile.pages == [page.id]
        assert profile.facts and all(secret in f.sources for f in profile.facts)
        assert client.recall("Quorvathine", k=3)[0].memory.id == secret
        # The facts column counts the stored facts, whether or not they are indexed in RAM.
        tiers = ns_tiers(daemon, "chat")
        assert tiers.facts == sum(len(p.facts) for p in all_pages(client, tiers.pages)) > 0

        client.purge([secret])
        for check in range(2):  # right after the purge, then after a restart on the same store
            settle(daemon)
            again = client.page(page.id)
            assert secret not in again.members
            assert again.consolidated  # consolidated again without the purged turn
            assert all(secret not in f.sources and "Quorvathine" not in f.text for f in again.facts)
            assert all(e.name != "Quorvathine" and secret not in e.sources for e in again.entities)
            assert "Quorvathine" not in again.summary
            assert client.recall("Quorvathine", k=3) == []
            with pytest.raises(NotFoundError):
                client.entity("Quorvathine")
            assert all(h.memory.id != secret for h in client.recall("pottery studio yesterday", k=20))
            tiers = ns_tiers(daemon, "chat")
            assert tiers.facts == sum(len(p.facts) for p in all_pages(client, tiers.pages)) > 0
            if check == 0:
                daemon.restart()


def test_kill_during_consolidation_leaves_a_consistent_complete_store(tmp_path):
    # Slow consolidation to 20 pages a second so the kill lands in the middle of it.
    env = {"MEMOSD_TIERS_TICK_PAGES": "2", "MEMOSD_TIERS_CONSOLIDATE_PAGES_PER_S": "20"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon, daemon.client(namespace="chat") as client:
        ids = client.remember_many(conversation(sessions=12, turns=40)).ids
        deadline = time.monotonic() + 30
        while True:
            tiers = ns_tiers(daemon, "chat")
            if tiers.consolidated_pages > 3:
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with daemon.admin() as admin:
            assert admin.tiers().backlog > 0, "the scheduler finished before the kill; slow it further"
        workers = psutil.Process(daemon.proc.pid).children(recursive=True)
        assert workers, "consolidation runs in a worker process"
        daemon.kill()
        # The consolidation process must not outlive a daemon killed with SIGKILL.
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive
        daemon.start()
        assert [mem.id for mem in client.get_many(ids).memories] == ids  # every acknowledged write
        tiers = settle(daemon).namespaces[0]
        pages = all_pages(client, tiers.pages)
        members = [i for p in pages for i in p.members]
        assert len(members) == len(set(members))  # no turn in two pages
        assert len(members) + tiers.stm == len(ids)  # and none lost between STM and pages
        for page in pages:
            sessions = {mem.session for mem in client.get_many(page.members).memories}
            assert len(sessions) == 1
            for fact in page.facts:
                assert set(fact.sources) <= set(page.members)
        assert all(p.consolidated for p in pages if p.closed)


def marker(i: int) -> str:
    """A word no other turn uses, so a query for it finds exactly one turn (and one page)."""
    return "qx" + "".join(chr(97 + (i // 26**k) % 26) for k in range(3))


@pytest.mark.parametrize("prefetch", [True, False])
def test_prefetch_warms_the_time_neighbours_of_a_hit_within_the_budget(tmp_path, prefetch):
    store = tmp_path / "store"
    items = [m.MemoryIn(text=f"Ana: today I wrote about {marker(i)} in the diary", session="diary")
             for i in range(400)]
    with DaemonProcess(store) as daemon, daemon.client(namespace="chat") as client:
        ids = client.remember_many(items).ids
        total = settle(daemon).resident_bytes  # every page's vectors: no budget yet
        pages = all_pages(client, ns_tiers(daemon, "chat").pages)
    assert len(pages) >= 40
    budget = int(total * 0.6)  # a restart loads about the first 60% of the pages; prefetching gets the last tenth
    # Prefetching pays only where recall reads page vectors: with the fine vectors scored.
    env = {"MEMOSD_TIERS_BUDGET_BYTES": str(budget), "MEMOSD_SLB_PREFETCH": "1" if prefetch else "0",
           "MEMOSD_TIERS_FINE_WEIGHT": "0.5"}
    with DaemonProcess(store, env=env) as daemon, daemon.client(namespace="chat") as client:
        mid = len(pages) * 3 // 4
        middle, before, after = pages[mid], pages[mid - 1].id, pages[mid + 1].id
        assert not any(client.page(p).resident for p in (middle.id, before, after))
        text = items[ids.index(middle.members[0])].text
        (hit,) = client.recall(marker(ids.index(middle.members[0])), k=1)
        assert hit.memory.text == text
        # Prefetching runs once the reply is out, between requests: give it a moment.
        deadline = time.monotonic() + 5
        with daemon.admin() as admin:
            while (result := admin.tiers()).slb.prefetched < 2 and prefetch and time.monotonic() < deadline:
                time.sleep(0.05)
        warmed = [client.page(p) for p in (before, after)]
        assert result.resident_bytes <= budget  # a guess never pushes another page out
        if not prefetch:
            assert not any(p.resident for p in warmed) and result.slb.prefetched == 0
            return
        assert all(p.resident and p.prefetched for p in warmed) and result.slb.prefetched == 2
        faults = ns_tiers(daemon, "chat").faults
        client.recall(marker(ids.index(client.page(after).members[0])), k=1)  # asks for the warmed page
        with daemon.admin() as admin:
            result = admin.tiers()
        assert result.namespaces[0].faults == faults  # no fault: it was already there
        assert result.slb.prefetch_used >= 1 and not client.page(after).prefetched


def test_show_page_and_entity_print_text_and_json(tmp_path):
    import json
    import subprocess
    import sys

    with DaemonProcess(tmp_path / "store") as daemon, daemon.client(namespace="chat") as client:
        client.remember_many([f"Ana: Paris trip number {i} with Ben" for i in range(30)])
        settle(daemon)

        def show(*args):
            done = subprocess.run([sys.executable, "-m", "memosd", "show", *args, "-n", "chat", "--endpoint",
                                   daemon.endpoint, "--admin-endpoint", daemon.admin_endpoint],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        assert show("page", "1").startswith("page 1 of session None: 8 turns")
        assert json.loads(show("page", "1", "--json"))["members"] == client.page(1).members
        assert show("entity", "Ana").startswith("Ana: named in")
        assert json.loads(show("entity", "Ana", "--json"))["name"] == "Ana"


def test_the_scheduler_works_in_short_steps_and_reports_them(tmp_path):
    # A backlog of 40 sessions' turns to page, index and consolidate, in steps of at most 1 ms (the
    # default): each step ends at its deadline or after one piece of work sized from measured costs.
    with DaemonProcess(tmp_path / "store") as daemon, daemon.client(namespace="chat") as client:
        client.remember_many(conversation(sessions=40, turns=40))
        scheduler = settle(daemon).scheduler
        assert ns_tiers(daemon, "chat").consolidated_pages > 40
    assert scheduler.step_s == pytest.approx(0.001)
    assert scheduler.steps > 10 and scheduler.busy_s > 0
    assert sum(n for _, n in scheduler.step_histogram) == scheduler.steps
    # Wall time on a shared machine includes preemption, so the bound is loose; without time slicing
    # the paging of this backlog ran as a handful of long steps.
    within = sum(n for bound, n in scheduler.step_histogram if bound is not None and bound <= 0.01)
    assert within >= 0.8 * scheduler.steps


def test_pages_over_the_budget_are_evicted_at_once_not_a_few_per_tick(tmp_path):
    # Under memory pressure eviction targets half the budget. The scheduler's step is cut to its
    # smallest and its idle wait made long: eviction that went a step per idle wait (a few pages each)
    # would need minutes here, as it needed minutes for 200 MiB of page vectors at 1M memories.
    store = tmp_path / "store"
    items = [m.MemoryIn(text=f"Ana: today I wrote about {marker(i)} in the diary", session=f"s{i % 4}")
             for i in range(1600)]
    with DaemonProcess(store) as daemon, daemon.client(namespace="chat") as client:
        client.remember_many(items)
        total = settle(daemon).resident_bytes  # every page's vectors: no budget yet
        pages = ns_tiers(daemon, "chat").pages
    assert pages >= 150
    # A start that rebuilds (not one from an index snapshot) makes pages resident up to the budget.
    (store / "indexes" / "snapshot.pickle").unlink(missing_ok=True)
    budget = int(total * 0.9)
    env = {"MEMOSD_TIERS_BUDGET_BYTES": str(budget), "MEMOSD_TIERS_MIN_AVAILABLE_BYTES": str(2**60),
           "MEMOSD_TIERS_STEP_MS": "0.05", "MEMOSD_TIERS_TICK_S": "5"}
    with DaemonProcess(store, env=env) as daemon:
        deadline = time.monotonic() + 3
        with daemon.admin() as admin:
            while (result := admin.tiers()).resident_bytes > budget // 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert result.resident_bytes <= budget // 2
        assert ns_tiers(daemon, "chat").evictions >= pages // 3
