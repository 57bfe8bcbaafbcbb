"""Measuring formulaic text and model fit (chapter 1, "Measuring formulaic text", and the study).

Six families of numbers, each a plain function, one submodule each (every name is importable from
`dftlab.metrics` itself):

1. `dftlab.metrics.text`, text statistics on lists of strings: n-gram counts, token L2 (Rosmine),
   distinct-n (Li et al. 2016), self-BLEU (Zhu et al. 2018), the Zipf coefficient and its rank-frequency table
   (Holtzman et al. 2019), seq-rep-n (Welleck et al. 2019), an overuse table (slop-forensics, Antislop) and the
   mean length in words.
2. `dftlab.metrics.model_stats`, model statistics: mean predictive entropy, the log-probability of a
   completion given its prompt, exact option probabilities, target probabilities by role, and calibration
   (confidence against accuracy, expected calibration error; Guo et al. 2017).
3. `dftlab.metrics.two_sample`, MMD: a kernel two-sample test over sentence embeddings (Gretton et al. 2012),
   the chapter-6 comparisons built on it, and precision and recall by k-nearest-neighbour coverage.
4. `dftlab.metrics.formulaic`, formulaic writing in free text where no truth is known (a real chat model's
   answers): word overuse against modern English (wordfreq), phrases shared across prompts, repeated openings.
5. `dftlab.metrics.exact`, exact-truth metrics for a generator whose probabilities we know (TinyTales):
   validity, choice frequencies with a chi-square test, and the sequence-level cross-entropy and KL.
6. `dftlab.metrics.slop_score`, slop-score's list rates (Paech 2025): slop words and slop trigrams per 1,000 words,
   computed by slop-score's own rules (its tokens, its joining of texts) so that they match its published
   leaderboard; the data it needs (lists, outputs, published figures) is loaded by `dftlab.slop_score_data`.

Conventions (except in `slop_score`, which follows slop-score's). A word is `dftlab.metrics.words.words(text)`,
one definition for every metric and plot: wordfreq's English words, lower case, punctuation dropped ("The" and
"the." are one word), the words wordfreq's frequency lists count. The text statistics take `split_words` to count in
another unit (the study passes `dftlab.metrics.words.whitespace_tokens`, the unit its cached results were measured
in), and, where they accept one, a `tokenizer`: then the tokens are the ids of `tokenizer.encode(text)`. N-grams
never cross from one text into the next. Entropies and log-probabilities are in nats.
"""
from dftlab.metrics.text import (distinct_n, mean_word_count, ngram_counts, overuse_table, rank_frequency,
                                 repetition_rate, self_bleu, token_l2_distance, zipf_coefficient)
from dftlab.metrics.model_stats import (calibration_bins, calibration_table, completion_log_probs,
                                        expected_calibration_error, option_probabilities, predictive_entropy,
                                        target_probabilities_by_role, top_predictions)
from dftlab.metrics.exact import (ABSENT, choice_chi_square, choice_frequency_table, sequence_cross_entropy,
                                  validity_rate)
from dftlab.metrics.formulaic import (formulaic_words, opening_table, phrase_spread, same_opener_run_rate,
                                      word_overuse)
from dftlab.metrics.two_sample import (MMDResult, embedding_projection, knn_coverage, knn_precision_recall, mmd,
                                       mmd_by_zipf_exponent, mmd_comparison_table, paired_mmd, sentence_embeddings)
from dftlab.metrics.slop_score import slop_list_rate, slop_list_word_hits, slop_score_tokens

__all__ = [
    "ngram_counts", "token_l2_distance", "distinct_n", "self_bleu", "zipf_coefficient", "rank_frequency",
    "repetition_rate", "overuse_table", "mean_word_count", "word_overuse", "formulaic_words", "phrase_spread", "opening_table", "same_opener_run_rate",
    "predictive_entropy", "completion_log_probs", "option_probabilities", "target_probabilities_by_role",
    "top_predictions", "calibration_bins", "calibration_table", "expected_calibration_error",
    "MMDResult", "mmd", "paired_mmd", "sentence_embeddings", "mmd_comparison_table", "mmd_by_zipf_exponent",
    "embedding_projection",
    "knn_coverage", "knn_precision_recall",
    "ABSENT", "validity_rate", "choice_frequency_table", "choice_chi_square", "sequence_cross_entropy",
    "slop_list_rate", "slop_list_word_hits", "slop_score_tokens",
]
