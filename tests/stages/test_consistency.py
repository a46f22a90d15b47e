"""The consistency stage, run for real on Ray after a stand-in answer stage."""

import json

import pytest

from tests.stages.answer_rows import answer_row, run_after_answers

ROWS = [
    # 2 of 3 agree on 42 (boxed, "answer is", plain number): kept, with the first majority sample as answer.
    answer_row(
        "agree",
        "What is 6 times 7?",
        "It is 41.",
        samples=["6 x 7 = 41, so the answer is 41.", "Six sevens make \\boxed{42}.", "The answer is 42."],
        objective=True,
    ),
    # Three different answers: no majority.
    answer_row("split", "What is 2 + 2?", "4", samples=["Answer: 4", "Answer: 5", "Answer: 22"], objective=True),
    # A tie has no majority to keep, even at a low threshold.
    answer_row("tie", "Is 9 prime?", "No", samples=["No, 9 = 3 x 3.", "Yes."], objective=True),
    # Full-width digits and a Chinese numeral agree with the plain number.
    answer_row("chinese", "一周有几天？", "七天", samples=["答案是７", "一周有七天，答案是7", "答案：7"], objective=True, lang="zh"),
    # Subjective: nothing to vote on.
    answer_row("open", "Describe a sunset.", "Gold light spills over the hills.", samples=["Gold light.", "Red sky."]),
    # One sample cannot disagree with itself.
    answer_row("single", "What is 3 + 3?", "6", samples=["6"], objective=True),
    # A sample with no text (a failed request, a bad file) votes for nothing; the other two agree.
    answer_row("missing_sample", "What is 4 + 5?", "9", samples=["Answer: 9", None, "Answer: 9"], objective=True),
    # A pair with no answer at all is rejected, not kept and not a crash.
    answer_row("no_answer", "Describe the sea.", None, samples=[None]),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    result = run_after_answers(tmp_path_factory.mktemp("consistency"), ROWS, "consistency", {"min_agreement": 0.5})
    return result.manifest, result.accepted, result.rejected


def test_every_row_is_kept_or_rejected_and_counted(run):
    manifest, accepted, rejected = run
    assert manifest["rows_in"] == len(ROWS)
    assert manifest["rows_out"] == len(accepted) == 5
    assert manifest["rejected"] == {"inconsistent": 2, "empty": 1}
    assert set(accepted) | set(rejected) == {row["id"] for row in ROWS}


def test_majority_answer_replaces_the_answer_and_votes_are_recorded(run):
    _, accepted, _ = run
    row = accepted["agree"]
    assert row["answer"] == "Six sevens make \\boxed{42}."
    votes = json.loads(row["votes"])
    assert votes["answers"] == ["41", "42", "42"]
    assert votes["winner"] == "42" and votes["kept_index"] == 1 and votes["consistent"]
    assert json.loads(row["meta"])["consistency"] == {"votes": "2/3", "agreement": 0.6667}
    assert json.loads(row["meta"])["steps"] == [{"template_id": "answer/general"}]


def test_full_width_digits_and_chinese_numerals_vote_together(run):
    _, accepted, _ = run
    assert json.loads(accepted["chinese"]["votes"])["counts"] == {"7": 3}


def test_disagreement_and_ties_are_rejected_as_inconsistent_with_the_votes(run):
    _, _, rejected = run
    split = json.loads(rejected["split"]["reject_detail"])
    assert split["counts"] == {"4": 1, "5": 1, "22": 1} and not split["consistent"]
    assert rejected["split"]["votes"] == rejected["split"]["reject_detail"]
    assert rejected["tie"]["reject_reason"] == "inconsistent"
    assert json.loads(rejected["tie"]["reject_detail"])["agreement"] == 0.5


def test_subjective_and_single_sample_rows_pass_unvoted(run):
    _, accepted, _ = run
    for row_id in ("open", "single"):
        assert accepted[row_id]["votes"] is None
        assert accepted[row_id]["answer"] == next(row["answer"] for row in ROWS if row["id"] == row_id)
        assert "consistency" not in json.loads(accepted[row_id]["meta"])


def test_accepted_rows_keep_the_answer_contract_columns(run):
    _, accepted, _ = run
    row = accepted["agree"]
    assert row["samples"] == ROWS[0]["samples"] and row["objective"] is True and row["seed_id"] == "seed-agree"


def test_a_sample_without_text_counts_against_agreement_and_a_pair_without_answer_is_empty(run):
    _, accepted, rejected = run
    votes = json.loads(accepted["missing_sample"]["votes"])
    assert votes["answers"] == ["9", None, "9"] and votes["agreement"] == pytest.approx(2 / 3)
    assert rejected["no_answer"]["reject_reason"] == "empty" and rejected["no_answer"]["reject_detail"] == "the pair has no answer"
