import numpy as np

from synthmix.quality.diversity import (
    compression_ratio,
    count_openings,
    describe_clusters,
    distinct_ngrams,
    measure_diversity,
    opening,
    sample_texts,
)

# One template, as the quickstart's 0.5B model wrote twenty of them (issue #30).
TEMPLATED = [f"What is the purpose of the {name} function in Python?" for name in ("len", "zip", "map", "sorted", "enumerate", "filter", "print", "open")]
VARIED = [
    "Write a Python function that merges two sorted lists into one sorted list.",
    "Compare threads and processes for CPU-bound work, with one example each.",
    "How do I profile a slow script from the command line?",
    "Fix the bug: def mean(xs): return sum(xs) / len(xs) + 1",
    "Calculate the interest on 1000 dollars at 5% a year for 3 years, compounded yearly.",
    "Draft a short email that invites the team to a code review on Friday.",
    "Analyze why the global interpreter lock limits multithreaded programs.",
    "Which keyword starts a generator function's output?",
]


def test_the_opening_is_two_words_or_three_han_characters():
    assert opening("What is the GIL?") == "what is"
    assert opening("什么是光合作用？") == "什么是"
    assert count_openings(["What is a?", "What is b?", "How do I c?"]).most_common(1) == [("what is", 2)]


def test_a_templated_set_repeats_more_than_a_varied_one_on_every_measure():
    templated, varied = measure_diversity(TEMPLATED), measure_diversity(VARIED)
    assert templated.top_opening_share == 1.0 and varied.top_opening_share == 1 / 8
    assert templated.distinct_2 < varied.distinct_2 and templated.distinct_1 < varied.distinct_1
    assert templated.compression_ratio > varied.compression_ratio
    assert templated.clusters.clusters == 1 and varied.clusters.clusters == len(VARIED)
    assert templated.task_types == {"explain": 8} and len(varied.task_types) == 8


def test_distinct_ngrams_and_compression_of_plain_sets():
    assert distinct_ngrams(["a b a b"], 1) == 0.5 and distinct_ngrams(["a b a b"], 2) == 2 / 3
    assert distinct_ngrams([], 2) == 0.0
    assert compression_ratio([]) == 0.0
    assert compression_ratio(["abc " * 200]) > 20


def test_clusters_report_count_effective_number_and_evenness():
    even = describe_clusters(np.array([0, 0, 1, 1, 2, 2]))
    assert (even.clusters, round(even.effective, 6), round(even.evenness, 6), even.largest_share) == (3, 3.0, 1.0, 1 / 3)
    skewed = describe_clusters(np.array([0, 0, 0, 0, 0, 1]))
    assert skewed.clusters == 2 and skewed.effective < 2 and skewed.evenness < 1 and skewed.largest_share == 5 / 6


def test_large_sets_are_clustered_on_a_stable_sample():
    texts = [f"text number {i}" for i in range(50)]
    assert sample_texts(texts, 10, seed=1) == sample_texts(list(reversed(texts)), 10, seed=1)
    assert len(sample_texts(texts, 10)) == 10 and sample_texts(texts, 100) == texts
    assert measure_diversity(texts, max_clustered=10).clusters.clustered == 10


def test_blank_texts_are_left_out_and_an_empty_set_has_no_clusters():
    assert measure_diversity(["", "  "]).rows == 0 and measure_diversity([]).clusters is None
