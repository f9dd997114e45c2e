"""Engine sequencing with the fakes: decide, generate, check support, fall back, log everything."""

from __future__ import annotations

import json

import pytest

from bot.core.errors import AnswerFailed, UnknownAnswer
from bot.core.types import Answer, Chunk, Feedback, Question, Turn
from bot.engine.conversation import ConversationEngine, EngineConfig
from bot.engine.prompt import DECLINED_TEXT
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever

VPN = Chunk(id="vpn-0", source="/docs/it/vpn.md", title="VPN", heading="VPN > Connecting", scope="default",
            score=0.9, text="# Connecting\nThe VPN gateway is vpn.acme.example. "
                            "You need the Acme Connect client version 5.2 or newer.")
WIFI = Chunk(id="wifi-0", source="/docs/it/wifi.md", title="Wi-Fi", scope="default", score=0.5,
             text="The guest Wi-Fi network is AcmeGuest and its password rotates every Monday.")
SECRET = Chunk(id="board-0", source="/docs/board.md", title="Board", scope="leadership", score=0.9,
               text="Project Nightjar acquisition budget is 42 million euros.")


def make(store, reply="", **kw):
    retriever = kw.pop("retriever", FakeRetriever([VPN, WIFI, SECRET]))
    gen = FakeGenerator(reply, error=kw.pop("gen_error", None))
    return ConversationEngine(retriever, gen, store, FakeEmbedder(), EngineConfig(min_score=0.2, **kw)), gen


def test_supported_generation_is_returned_with_its_citation(store):
    engine, gen = make(store, "The VPN gateway is vpn.acme.example [1].")
    answer = engine.answer(Question("What is the VPN gateway address?"))
    assert answer.mode == "generated" and "vpn.acme.example" in answer.text
    assert [c.source for c in answer.citations] == ["/docs/it/vpn.md"]
    assert "vpn.acme.example" in answer.citations[0].text and answer.citations[0].heading == "VPN > Connecting"
    prompt = gen.prompts[0][1]["content"]
    assert "[1] (VPN)" in prompt and "Question: What is the VPN gateway address?" in prompt


def test_unsupported_generation_falls_back_to_quoting_the_source(store):
    engine, _ = make(store, "The VPN gateway is vpn.globex.example and needs version 7.")
    answer = engine.answer(Question("What is the VPN gateway address?"))
    assert answer.mode == "extractive"
    assert "vpn.acme.example" in answer.text and "globex" not in answer.text
    assert answer.citations[0].source == "/docs/it/vpn.md"


def test_i_dont_know_is_not_passed_off_as_an_answer(store):
    engine, _ = make(store, "I don't know.")
    assert engine.answer(Question("What is the VPN gateway address?")).mode == "extractive"


def test_declines_when_nothing_relevant_is_found(store):
    engine, gen = make(store, "Something invented.")
    answer = engine.answer(Question("What is the dental plan deductible?"))
    assert answer.mode == "declined" and not answer.answered and answer.text == DECLINED_TEXT
    assert gen.prompts == []  # the model is not even asked


def test_scope_is_passed_to_the_retriever_and_limits_answers(store):
    retriever = FakeRetriever([VPN, WIFI, SECRET])
    engine, _ = make(store, "Project Nightjar budget is 42 million euros [1].", retriever=retriever)
    answer = engine.answer(Question("What is the Project Nightjar acquisition budget?"))
    assert answer.mode == "declined" and "42" not in answer.text
    assert retriever.calls[-1][1] == ("default",)
    answer = engine.answer(Question("What is the Project Nightjar acquisition budget?", scopes=("leadership",)))
    assert "42 million" in answer.text


def test_follow_up_is_condensed_with_the_previous_question(store):
    engine, _ = make(store, "Version 5.2 [1].")
    q = Question("Which client version do I need for it?", history=(Turn("user", "How do I connect to the VPN?"),
                                                                   Turn("assistant", "Use the gateway.")))
    answer = engine.answer(q)
    assert answer.standalone_query.startswith("How do I connect to the VPN?")
    assert answer.citations[0].source == "/docs/it/vpn.md"
    standalone = Question("What is the guest Wi-Fi network called?", history=(Turn("user", "VPN?"),))
    assert engine.condense(standalone) == "What is the guest Wi-Fi network called?"


def test_every_answer_is_logged_with_prompt_and_retrieval(store):
    engine, _ = make(store, "The VPN gateway is vpn.acme.example [1].")
    answer = engine.answer(Question("What is the VPN gateway?", user_id="U1", platform="slack", channel_id="C1",
                                    thread_id="T1"))
    row = store.get_answer(answer.answer_id)
    assert (row.platform, row.channel_id, row.thread_id, row.user_id) == ("slack", "C1", "T1", "U1")
    assert row.mode == "generated" and row.answer == answer.text
    assert row.retrieved[0]["id"] == "vpn-0"
    assert json.loads(row.prompt)[0]["role"] == "system"
    assert row.latency["total_ms"] >= row.latency["retrieve_ms"] >= 0
    engine.record_feedback(Feedback(answer.answer_id, "U2", vote=-1, correction="Use vpn2"))
    assert store.list_feedback()[0].correction_status == "pending"
    with pytest.raises(UnknownAnswer):
        engine.record_feedback(Feedback("missing", "U2", vote=1))


def test_retrieval_failure_still_logs_the_question(store):
    engine, _ = make(store, "x", retriever=FakeRetriever(error=RuntimeError("chroma down")))
    with pytest.raises(AnswerFailed) as info:
        engine.answer(Question("What is the VPN gateway?"))
    row = store.get_answer(info.value.answer_id)
    assert row.question == "What is the VPN gateway?" and row.mode == "error" and "chroma down" in row.error


def test_generation_failure_quotes_the_evidence(store):
    engine, _ = make(store, gen_error=RuntimeError("oom"))
    answer = engine.answer(Question("What is the VPN gateway address?"))
    assert answer.mode == "extractive" and "vpn.acme.example" in answer.text
    assert "oom" in store.get_answer(answer.answer_id).error


def test_stream_yields_tokens_then_the_answer(store):
    engine, _ = make(store, "The VPN gateway is vpn.acme.example [1].")
    items = list(engine.stream(Question("What is the VPN gateway address?")))
    assert isinstance(items[-1], Answer)
    assert "".join(i for i in items[:-1]) == "The VPN gateway is vpn.acme.example [1]."


OFFICE = Chunk(id="remote-0", source="/docs/hr/remote.md", title="Remote work", scope="default", score=0.9,
               text="Staff work from the office 2 days per week. The other days may be remote.")
LEAVE = Chunk(id="leave-0", source="/docs/hr/leave.md", title="Leave", scope="default", score=0.8,
              text="Full-time employees receive 28 days of paid annual leave per year.")


@pytest.mark.parametrize(
    ("reply", "mode"),
    [
        ("You work from the office 2 days per week [1].", "generated"),
        # every word is in the sources, but 28 is the leave policy's number, not the office rule's
        ("You work from the office 28 days per week [1].", "extractive"),
        ("Employees receive 28 days of annual leave [2].", "generated"),
    ],
)
def test_a_number_taken_from_the_wrong_sentence_is_not_passed_off(store, reply, mode):
    engine, _ = make(store, reply, retriever=FakeRetriever([OFFICE, LEAVE]))
    answer = engine.answer(Question("How many days per week do I work from the office?"))
    assert answer.mode == mode
    if mode == "extractive":
        assert "2 days per week" in answer.text and "28" not in answer.text


def test_misplaced_number_needs_a_close_paraphrase_to_judge():
    from bot.engine.grounding import misplaced_number

    evidence = ["Staff work from the office 2 days per week.", "Employees receive 28 days of leave per year."]
    assert misplaced_number("Office: 28 days per week.", evidence) == "28"
    assert misplaced_number("It is 2 days per week.", evidence) is None
    assert misplaced_number("28.", evidence) is None  # no words to locate the sentence by
    # the number is in the sentence that matches the answer best
    assert misplaced_number("Staff receive 28 days of leave.", ["Staff are welcome.", *evidence]) is None
    # the best-matching sentence states no number: nothing contradicts the answer's
    assert misplaced_number("Staff welcome 28 guests.", ["Staff welcome guests at reception.", *evidence]) is None


@pytest.mark.parametrize(("reply", "mode"), [("Version 5.2 [1].", "generated"), ("5.2 [1]", "extractive")])
def test_a_terse_answer_stands_but_a_bare_value_is_quoted_with_its_sentence(store, reply, mode):
    engine, _ = make(store, reply)
    answer = engine.answer(Question("Which client version do I need for the VPN?"))
    assert answer.mode == mode
    assert "5.2" in answer.text


LABELS = Chunk(id="labels-0", source="/docs/security/labels.md", title="Labels", scope="default", score=0.9,
               text="Strictly Confidential documents carry the red sensitivity label. "
                    "Public documents need no label at all. Visitors wear a blue badge.")


@pytest.mark.parametrize(("reply", "mode"), [
    ("Red. [1]", "generated"),  # the sentence that answers the question states it
    ("Blue. [1]", "extractive"),  # in the sources, but not in the sentence that answers the question
    ("Green.", "extractive"),  # nowhere in the sources
])
def test_a_one_word_answer_stands_when_the_best_evidence_sentence_states_it(store, reply, mode):
    engine, _ = make(store, reply, retriever=FakeRetriever([LABELS]))
    answer = engine.answer(Question("Which colour is the Strictly Confidential sensitivity label?"))
    assert answer.mode == mode
    if mode == "extractive":
        assert answer.text.startswith("Strictly Confidential documents carry the red sensitivity label.")


def test_values_without_words_are_quoted_with_their_sentence(store):
    engine, _ = make(store, "2 (28) [1]", retriever=FakeRetriever([OFFICE, LEAVE]))
    answer = engine.answer(Question("How many days per week do I work from the office?"))
    assert answer.mode == "extractive" and "2 days per week" in answer.text
