"""Feedback -> datasets: thresholds, de-duplication, scrubbing, vote caps, private scopes, splits,
replay, and corrections written into the knowledge base. Answers are logged by the real engine
(with the fakes), so the prompts are exactly what serving logs."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest

from bot.core.text import strip_citations
from bot.core.types import Chunk, Question
from bot.engine.conversation import ConversationEngine, EngineConfig
from knowledge.store import Store
from tests.fakes import VPN_CHUNK, FakeEmbedder, FakeGenerator, FakeIngestor, FakeRetriever
from training.corrections import approve_correction, correction_scope, reject_correction
from training.dataset import DatasetPolicy, build_datasets, is_validation, with_distractors
from training.scrub import ScrubReport, scrub

CHUNKS = [
    VPN_CHUNK,
    Chunk(
        id="help",
        source="/docs/helpdesk.md",
        title="Helpdesk",
        scope="default",
        score=0.9,
        text="Call the helpdesk on +49 89 5550 4357 or write to helpdesk@acme.example.",
    ),
    Chunk(
        id="wifi",
        source="/docs/wifi.md",
        title="Wi-Fi",
        scope="default",
        score=0.9,
        text="The guest Wi-Fi network is AcmeGuest. Its password rotates every Monday.",
    ),
    Chunk(
        id="board",
        source="/docs/board.md",
        title="Board",
        scope="leadership",
        score=0.9,
        text="The Nightjar acquisition budget is 42 million euros.",
    ),
]
POLICY = DatasetPolicy(
    min_upvotes=1, max_votes_per_user=20, private_scopes=frozenset({"leadership"}), validation_share=0.0
)


class Users:
    """Asks through the real engine (fake retriever and generator) and records feedback."""

    def __init__(self, store: Store):
        self.store = store
        self.gen = FakeGenerator()
        self.engine = ConversationEngine(
            FakeRetriever(CHUNKS), self.gen, store, FakeEmbedder(), EngineConfig(min_score=0.1)
        )

    def ask(self, question: str, reply: str, scopes: tuple[str, ...] = ("default",), mode="generated") -> str:
        self.gen.reply = reply
        answer = self.engine.answer(Question(question, user_id="asker", scopes=scopes))
        assert answer.mode == mode, (question, reply)  # served as generated: the votes rate the model
        return answer.answer_id

    def vote(self, answer_id: str, user: str, vote: int, correction: str | None = None, *,
             verified: bool = True, platform: str = "slack"):
        """A vote of a platform user whose identity the platform vouched for (a Slack user id)."""
        return self.store.record_feedback(answer_id, user, vote=vote, correction=correction, platform=platform,
                                          verified=verified)


@pytest.fixture
def users(store) -> Users:
    return Users(store)


def completions(examples) -> list[str]:
    return sorted(e.completion for e in examples)


def test_upvoted_answers_need_enough_votes_and_no_downvote(users, store):
    good = users.ask("What is the VPN portal address?", "The VPN portal is vpn.acme.example [1].")
    mixed = users.ask("Which VPN client version do I need?", "The client needs version 6.2.1 [1].")
    unrated = users.ask("What is the guest Wi-Fi network?", "The guest Wi-Fi network is AcmeGuest [1].")
    users.vote(good, "u1", 1)
    users.vote(mixed, "u1", 1)
    users.vote(mixed, "u2", -1)
    assert unrated
    data = build_datasets(store, POLICY)
    assert completions(data.sft_train) == ["The VPN portal is vpn.acme.example."]  # the engine adds citations
    assert build_datasets(store, DatasetPolicy(min_upvotes=2, validation_share=0.0)).sft_train == []
    users.vote(good, "u2", 1)
    assert len(build_datasets(store, DatasetPolicy(min_upvotes=2, validation_share=0.0)).sft_train) == 1
    # the prompt is the one logged at answer time: sources and question, exactly
    row = store.get_answer(good)
    assert data.sft_train[0].prompt == json.loads(row.prompt)
    assert data.sft_train[0].sft_record()["completion"] == [
        {"role": "assistant", "content": "The VPN portal is vpn.acme.example."}
    ]


def test_only_approved_corrections_train_and_they_win_over_votes(users, store):
    a = users.ask("Which VPN client version do I need?", "The client needs version 6.2.1 [1].")
    logged = strip_citations(store.get_answer(a).answer)
    fb = users.vote(a, "u1", -1, correction="GlobalProtect 6.2.1 or later.")
    users.vote(a, "u2", 1)
    assert build_datasets(store, POLICY).sft_train == []  # pending: not yet
    store.set_correction_status(fb.id, "approved")
    data = build_datasets(store, POLICY)
    assert [(e.origin, e.completion) for e in data.sft_train] == [
        ("correction", "GlobalProtect 6.2.1 or later.")
    ]
    # the correction against the answer it replaced is a DPO pair and two KTO examples
    assert [(p.chosen, p.rejected) for p in data.dpo_train] == [("GlobalProtect 6.2.1 or later.", logged)]
    assert sorted((e.label, e.completion) for e in data.kto_train) == [
        (False, logged),
        (True, "GlobalProtect 6.2.1 or later."),
    ]
    store.set_correction_status(fb.id, "rejected")
    assert build_datasets(store, POLICY).sft_train == []


def test_thumbs_become_unpaired_kto_examples(users, store):
    up = users.ask("What is the VPN portal address?", "The VPN portal address is vpn.acme.example [1].")
    down = users.ask("What is the guest Wi-Fi network?", "The guest password rotates every Monday [1].")
    users.vote(up, "u1", 1)
    users.vote(down, "u1", -1)
    kto = build_datasets(store, POLICY).kto_train
    assert sorted((e.label, e.origin) for e in kto) == [(False, "downvoted"), (True, "upvoted")]


def test_exact_duplicates_are_dropped(users, store):
    for user in ("u1", "u2", "u3"):  # the same question, same sources, same answer, three times
        users.vote(
            users.ask("What is the VPN portal address?", "The portal address is vpn.acme.example."), user, 1
        )
    users.vote(users.ask("What is the VPN portal address?", "The VPN portal is vpn.acme.example."), "u4", 1)
    data = build_datasets(store, POLICY)
    assert completions(data.sft_train) == [
        "The VPN portal is vpn.acme.example.",
        "The portal address is vpn.acme.example.",
    ]
    assert data.stats["duplicate_sft"] == 2


PLANTED = {
    "email": "jane.doe@gmail.com",
    "phone": "+1 415 555 0123",
    "slack": "xoxb-2234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "discord": "MTA4NzY1NDMyMTA5ODc2NTQz.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n"
    "-----END OPENSSH PRIVATE KEY-----",
    "card": "4539 1488 0343 6467",  # passes the Luhn check
    "iban": "GB82 WEST 1234 5698 7654 32",  # passes the mod-97 check
    "entropy": "Q7x9Lp2Vm4Rt8Kw3Zn6Hs1Jd5Fg0Yc",  # an unlabelled key, 4.9 bits per character
}


def test_secrets_and_pii_are_scrubbed_before_anything_is_written(users, store, tmp_path):
    question = (
        f"My VPN fails, I am {PLANTED['email']}, call {PLANTED['phone']}; my bot token is "
        f"{PLANTED['slack']} and {PLANTED['discord']}, card {PLANTED['card']}, IBAN {PLANTED['iban']}, "
        f"api key {PLANTED['entropy']} - what is the VPN portal address?"
    )
    a = users.ask(question, "The VPN portal address is vpn.acme.example [1].")
    users.vote(a, "u1", 1)
    b = users.ask("How do I reach the helpdesk?", "Call the helpdesk on +49 89 5550 4357 [1].")
    fb = users.vote(
        b,
        "u2",
        -1,
        correction=(
            f"Call +49 89 5550 4357 or helpdesk@acme.example, not {PLANTED['aws']}.\n{PLANTED['key']}"
        ),
    )
    store.set_correction_status(fb.id, "approved")

    data = build_datasets(store, POLICY)
    data.write(tmp_path / "data")
    written = "".join(p.read_text() for p in (tmp_path / "data").glob("*.jsonl"))
    for name, value in PLANTED.items():
        assert value not in written, name
        assert value.split("\n")[0] not in written, name
    assert "[EMAIL]" in written and "[PHONE]" in written and "[SLACK_TOKEN]" in written
    assert "[DISCORD_TOKEN]" in written and "[AWS_ACCESS_KEY]" in written and "[PRIVATE_KEY]" in written
    assert "[CARD_NUMBER]" in written and "[IBAN]" in written and "[HIGH_ENTROPY_SECRET]" in written
    # contact details published in the documents the answer came from are the answer, not a leak
    assert "+49 89 5550 4357" in written and "helpdesk@acme.example" in written
    assert data.scrubbed.counts["EMAIL"] >= 1 and data.scrubbed.counts["PRIVATE_KEY"] == 1


def test_one_account_cannot_steer_training(users, store):
    policy = DatasetPolicy(min_upvotes=1, max_votes_per_user=2, validation_share=0.0)
    asked = {
        "What is the VPN portal address?": "The VPN portal address is vpn.acme.example.",
        "Which VPN client version?": "The VPN client needs version 6.2.1 or later.",
        "VPN portal for Linux?": "The VPN portal is vpn.acme.example.",
        "VPN address?": "Enter vpn.acme.example as the VPN portal address.",
    }
    ids = [users.ask(q, reply) for q, reply in asked.items()]
    for answer_id in ids:
        users.vote(answer_id, "eager", 1)
    data = build_datasets(store, policy)
    assert len(data.sft_train) == 2 and data.stats["votes_capped"] == 2
    kept = {e.answer_id for e in data.sft_train}
    assert kept == set(ids[2:])  # the most recent votes count
    users.vote(ids[0], "someone-else", 1)
    assert len(build_datasets(store, policy).sft_train) == 3


def test_private_scopes_stay_out_of_adapters_served_to_other_scopes(users, store):
    secret = users.ask(
        "What is the Nightjar acquisition budget?",
        "The Nightjar budget is 42 million euros.",
        scopes=("leadership",),
    )
    public = users.ask("What is the VPN portal address?", "The VPN portal address is vpn.acme.example [1].")
    users.vote(secret, "u1", 1)
    users.vote(public, "u1", 1)
    data = build_datasets(store, POLICY)
    assert [e.answer_id for e in data.sft_train] == [public]
    assert data.stats["private_scope"] == 1
    assert "42 million" not in json.dumps([e.sft_record() for e in data.sft_train + data.kto_train])
    served_to_leadership = build_datasets(store, POLICY, serve_scopes=["leadership"])
    assert {e.answer_id for e in served_to_leadership.sft_train} == {secret, public}
    assert len(build_datasets(store, POLICY, serve_scopes=["leadership", "default"]).sft_train) == 1


def test_split_follows_the_prompt_hash_and_is_deterministic(users, store):
    questions = [f"What is the VPN portal address for office {i}?" for i in range(40)]
    for q in questions:
        users.vote(users.ask(q, "The VPN portal address is vpn.acme.example."), "u1", 1)
    policy = DatasetPolicy(min_upvotes=1, validation_share=0.25)
    first, second = build_datasets(store, policy), build_datasets(store, policy)
    assert [e.answer_id for e in first.sft_validation] == [e.answer_id for e in second.sft_validation]
    assert 3 <= len(first.sft_validation) <= 20  # about a quarter of 40
    assert all(is_validation(e.prompt_key, 0.25) for e in first.sft_validation)
    assert not {e.prompt_key for e in first.sft_train} & {e.prompt_key for e in first.sft_validation}
    assert first.data_hash == second.data_hash
    assert not {e.question for e in first.sft_validation} & first.trained_questions()


def test_replay_mixes_a_share_of_earlier_examples_with_new_ones(users, store):
    for i in range(6):
        users.vote(
            users.ask(f"What is the VPN portal address, take {i}?", "The VPN portal is vpn.acme.example."),
            "u1",
            1,
        )
    cutoff = build_datasets(store, POLICY).data_until
    for i in range(2):
        users.vote(
            users.ask(f"Which VPN client version, take {i}?", "The client needs version 6.2.1."), "u2", 1
        )
    policy = DatasetPolicy(min_upvotes=1, validation_share=0.0, replay_share=0.5)
    data = build_datasets(store, policy, since=cutoff)
    new = [e for e in data.sft_train if e.feedback_at > cutoff]
    assert len(new) == 2 and data.replayed == 1 and len(data.sft_train) == 3
    assert build_datasets(store, policy, since=cutoff).sft_train == data.sft_train  # same replay sample
    nothing_new = build_datasets(store, policy, since=data.data_until + timedelta(seconds=1))
    assert nothing_new.sft_train == []


def test_declined_answers_and_missing_prompts_are_skipped(store):
    answer_id = store.log_answer(question="Anything?", mode="declined", answer="I couldn't find this.")
    store.record_feedback(answer_id, "u1", vote=1, verified=True)
    data = build_datasets(store, POLICY)
    assert data.sft_train == [] and data.stats["no_prompt"] == 1


def test_approving_a_correction_ingests_it_into_the_channel_scope(users, store, tmp_path):
    from tests.conftest import make_settings

    runtime = SimpleNamespace(
        store=store, settings=make_settings(tmp_path, private_scopes=["leadership"]), ingestor=FakeIngestor()
    )
    a = users.ask(
        "What is the Nightjar acquisition budget?", "40 million [1].", ("default", "leadership"), "extractive"
    )  # an answer quoted after a failed generation can still be corrected
    fb = users.vote(a, "u1", -1, correction=f"42 million euros; ask {PLANTED['email']}.")
    row, _ = approve_correction(runtime.store, runtime.ingestor, runtime.settings, fb.id)
    assert row.correction_status == "approved" == store.list_feedback()[0].correction_status
    name, content, scope, source = runtime.ingestor.files[0]
    path = tmp_path / "corrections" / name
    assert path.exists() and scope == "leadership" and source == f"correction:{fb.id}"
    text = content.decode()
    assert "42 million euros" in text and "Nightjar" in text and PLANTED["email"] not in text
    reject_correction(runtime.store, runtime.ingestor, runtime.settings, fb.id)
    assert runtime.ingestor.forgotten == [f"correction:{fb.id}"] and not path.exists()
    assert store.list_feedback()[0].correction_status == "rejected"  # the row itself is never lost
    assert correction_scope(["hr", "default"], [], "default") == "hr"
    assert correction_scope([], [], "default") == "default"


def test_votes_on_quoted_answers_do_not_train_but_their_corrections_do(users, store):
    # the generation was unsupported, so the engine served a quote: the vote rates the quote, not the model
    quoted = users.ask("What is the VPN portal address?", "It is vpn.globex.example.", mode="extractive")
    users.vote(quoted, "u1", 1)
    assert build_datasets(store, POLICY).sft_train == []
    fb = users.vote(quoted, "u2", -1, correction="Enter vpn.acme.example as the portal address.")
    store.set_correction_status(fb.id, "approved")
    data = build_datasets(store, POLICY)
    assert [e.completion for e in data.sft_train] == ["Enter vpn.acme.example as the portal address."]
    assert data.dpo_train == [] and [e.label for e in data.kto_train] == [
        True
    ]  # the quote is not the model's


def test_raft_variants_shuffle_sources_and_add_a_distractor(users, store):
    for q, reply in [
        ("What is the VPN portal address?", "The VPN portal address is vpn.acme.example."),
        ("What is the guest Wi-Fi network?", "The guest Wi-Fi network is AcmeGuest."),
    ]:
        users.vote(users.ask(q, reply), "u1", 1)
    examples = build_datasets(store, POLICY).sft_train
    variants = with_distractors(examples, copies=2)
    assert len(variants) == 4 and variants == with_distractors(examples, copies=2)  # deterministic
    for v in variants:
        original = next(e for e in examples if e.answer_id == v.answer_id)
        assert v.completion == original.completion and v.origin == "upvoted+distractor"
        before, after = original.prompt[-1]["content"], v.prompt[-1]["content"]
        assert after.split("Question:")[1] == before.split("Question:")[1]
        lines = [line for line in after.splitlines() if line.startswith("[")]
        assert [line.split("]")[0] for line in lines] == [f"[{i}" for i in range(1, len(lines) + 1)]
        old_sources = {line.split("] ", 1)[1] for line in before.splitlines() if line.startswith("[")}
        new_sources = {line.split("] ", 1)[1] for line in lines}
        assert old_sources < new_sources and len(new_sources - old_sources) == 1  # one distractor added


def test_scrubbing_leaves_ordinary_text_alone():
    text = (
        "GlobalProtect 6.2.1 since 2025-03-04 on 10.40.0.0/16; the password policy needs 14 characters; "
        "budget 4,000 EUR; extension 4357; room B2.14."
    )
    report = ScrubReport()
    assert scrub(text, report=report) == text and report.total == 0
    assert scrub("mail me at a.b@example.org or call 0170 1234567", keep={"0170 1234567"}) == (
        "mail me at [EMAIL] or call 0170 1234567"
    )
    assert scrub("password: hunter2hunter2") == "password: [CREDENTIAL]"


def test_votes_from_invented_web_ids_do_not_count(users, store):
    """Before sign-in, the web API took any user_id: such votes (and any unverified one) never train."""
    answer = users.ask("What is the VPN portal address?", "The VPN portal is vpn.acme.example [1].")
    for i in range(5):
        users.vote(answer, f"web-{i}", 1, verified=False, platform="web")
    data = build_datasets(store, DatasetPolicy(validation_share=0.0))
    assert data.sft_train == [] and data.kto_train == [] and data.stats["votes_unverified"] == 5
    users.vote(answer, "U1", 1)
    assert build_datasets(store, DatasetPolicy(validation_share=0.0)).sft_train == []  # one voter is not enough
    users.vote(answer, "U2", 1)
    assert len(build_datasets(store, DatasetPolicy(validation_share=0.0)).sft_train) == 1


def test_defaults_need_two_voters_and_keep_every_non_default_scope_private(users, store, tmp_path):
    from tests.conftest import make_settings

    policy = DatasetPolicy.from_settings(make_settings(tmp_path), validation_share=0.0)
    assert policy.min_upvotes == 2 and policy.private_in(["default", "hr", "leadership"]) == {"hr", "leadership"}
    secret = users.ask("What is the Nightjar acquisition budget?", "The Nightjar budget is 42 million euros.",
                       scopes=("leadership",))
    down = users.ask("Which VPN client version do I need?", "The client needs version 6.2.1 [1].")
    for voter in ("U1", "U2"):
        users.vote(secret, voter, 1)
    users.vote(down, "U1", -1)
    data = build_datasets(store, policy)
    assert data.sft_train == [] and data.stats["private_scope"] == 1
    assert data.kto_train == []  # one down-vote is not enough either
    users.vote(down, "U2", -1)
    assert [e.origin for e in build_datasets(store, policy).kto_train] == ["downvoted"]
