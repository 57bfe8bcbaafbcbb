"""Give every figure of the chapters alt text, without executing anything.

    python tools/figure_alt_text.py            # write the alt text below into the notebooks' cell metadata
    python tools/figure_alt_text.py --check    # list figure cells that have none; exit status 1 if any

myst-nb (1.4) reads a code cell's metadata `{"mystnb": {"image": {"alt": "..."}}}` and puts that text on
the <img> of every image the cell outputs; without it the website's alt text is the image's file name.
The same key takes `width` or `classes`, and `"figure": {"caption": ..., "name": ...}` would turn the image
into a numbered figure. Only cell metadata changes here: outputs, execution counts and the execution
cache stay as they are.

ALT_TEXT names each figure cell by a piece of its source that no other cell of that notebook contains,
so the mapping survives edits elsewhere in the notebook. A new figure cell needs a line here; `--check`
(and tests/system/test_book.py) find the ones that lack it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# Alt text says what the figure shows and what to see in it, for a reader who cannot see it.
ALT_TEXT = {
    "chapters/00_formulaic_writing.ipynb": {
        "plots.plot_slop_leaderboard(": (
            "Dot-and-interval chart of slop-list words per 1,000 words, one row per model in leaderboard order, "
            "lowest at the top, with a dashed vertical line for the published human baseline. gemma-3-27b-it-antislop "
            "sits just below the line and SmolLM2 at T = 1 on it; claude-sonnet-4-5, SmolLM2 at T = 0.7 with min-p "
            "0.1 and gpt-5-mini come next, at about one and a half to two and a quarter times the baseline, SmolLM2's "
            "interval the widest; qwen3-4b, llama-4-maverick, mistral-nemo, gemma-3-27b-it and deepseek-r1 lie far to "
            "the right, deepseek-r1 about six times the baseline."),
        "plots.plot_next_token_comparison(": (
            "Two bar charts, one above the other, of SmolLM2-135M-Instruct's eight most probable next tokens in plain "
            "text. After 'The old market town has a rich' (top), ' history' leads with most of the probability and "
            "' tapestry' is a minor option; after 'The old market town is a rich' (bottom), ' tapestry' takes about "
            "three quarters of the probability and ' history' is small."),
    },
    "chapters/01_token_distributions.ipynb": {
        "plots.plot_top_tokens(": (
            "Horizontal bar chart of the ten most probable next tokens of tiny-gpt2 after the prompt "
            "'And God said', one bar per token, longest bar first."),
        "plots.plot_entropy_by_temperature(": (
            "Line chart of the entropy of the next-token distribution against the sampling temperature. "
            "Entropy grows with temperature towards a dashed line at log V, the entropy of a uniform choice; "
            "a dotted line marks T = 1, the model's own distribution."),
        "plots.plot_decoding_distribution(logits": (
            "Paired bar chart of the 15 most probable next tokens: each token's probability under the model "
            "at T = 1 beside its probability after temperature 0.7 and top-p 0.9. The title gives the entropy "
            "before and after decoding."),
        "plots.plot_zipf(": (
            "Log-log plot of word frequency against rank, one line for the King James Bible and one for "
            "tiny-gpt2 samples at T = 1; a straight line would be Zipf's law."),
        'fig.suptitle("which tokens each rule keeps': (
            "Eight bar charts in two rows, each showing the same twelve-token next-token distribution, with kept "
            "tokens in blue and dropped ones in grey. Top row, a confident distribution (0.70 on the first token): "
            "top-k 3 keeps three tokens, top-p 0.9 five, min-p 0.1 two and typical sampling only the top token. "
            "Bottom row, an open distribution (0.22 on the first token): top-k keeps three, top-p ten, min-p all "
            "twelve, and typical sampling keeps six middle-ranked tokens but drops the most likely one."),
        "kept_table.plot(": (
            "Line chart, log vertical axis, of the median number of tokens kept over 512 contexts of the Bible "
            "against the temperature from 0.7 to 3, for top-p 0.9 and min-p 0.1, with a dashed line at the whole "
            "vocabulary of 4,096. Top-p jumps to over a thousand tokens at T = 1 and approaches the vocabulary; "
            "min-p stays below a hundred up to T = 2 and reaches about a thousand only at T = 3."),
    },
    "chapters/02_maximum_likelihood.ipynb": {
        "plots.plot_score_curves(": (
            "Line chart of the expected log, Brier and linear scores, rescaled to 0 to 1, against the forecast "
            "probability p of outcome 1 when the truth is q = 0.7. The log and Brier curves peak at p = 0.7; "
            "the linear score rises in a straight line to its maximum at p = 1."),
        "plots.plot_simplex_trajectories(paths, target)": (
            "Triangle whose corners are the three one-hot distributions over tokens 0, 1 and 2. A line shows "
            "gradient descent on cross-entropy walking from the uniform distribution at the centre to the data "
            "distribution q = (0.6, 0.3, 0.1), marked by a star."),
        "fit_unimodal(two_modes": (
            "A grey target distribution on a grid from -6 to 6 with two bumps, a taller one at -2.5 (weight 0.6) "
            "and a smaller one at 2.5 (weight 0.4). The forward-KL fit is one wide, low bump centred between them "
            "that covers both and the valley; the reverse-KL fit is a tall, narrow bump on the left mode that "
            "ignores the right one."),
        "loglog=True": (
            "Log-log plot of the median KL per token between a four-token bigram language and the model counted "
            "from n of its tokens, for n from 300 to 30,000, beside a dashed theory line 6 / n. The measured points "
            "fall in a straight line of slope -1, slightly above the theory at 300 tokens and close to it from "
            "1,000 on."),
    },
    "chapters/03_sft.ipynb": {
        "plots.plot_training_history(": (
            "Line chart of the validation negative log-likelihood and the validation predictive entropy, in nats "
            "per token, against the training step of supervised fine-tuning on TinyTales."),
        "plots.plot_decoding_distribution(first_token_logits": (
            "Paired bar chart of the most probable first tokens of a story after one test prompt, for the SFT "
            "model: each token's probability at T = 1 beside its probability after temperature 0.7 and top-p 0.9. "
            "The title gives the entropy before and after decoding."),
        '"opener") for name, samples in': (
            "Horizontal bar chart of the most common TinyTales story openers: for each, its true probability "
            "beside its share of the base model's samples at T = 1 and of the SFT model's samples at T = 1 and at T = 0.7 with top-p 0.9."),
    },
    "chapters/04_dft.ipynb": {
        "plots.plot_simplex_trajectories(paths, target)": (
            "Triangle whose corners are the three one-hot distributions over tokens 0, 1 and 2, with the data "
            "distribution q = (0.6, 0.3, 0.1) marked by a star. From the uniform centre, cross-entropy walks to the "
            "star, Dynamic Fine-Tuning runs on to the corner of token 0, and the power loss with alpha = 0.5 stops "
            "between the star and that corner. The title gives each path's final probability of token 0."),
        "plots.plot_training_history(result.history)": (
            "Line chart of the validation negative log-likelihood and the validation predictive entropy, in nats "
            "per token, against the training step of Dynamic Fine-Tuning on TinyTales. The NLL rises steeply in the "
            "first 50 steps and keeps rising; the entropy falls to nearly zero by step 50 and stays there."),
        "plots.plot_target_probability_histograms(": (
            "Step histogram, on a logarithmic vertical axis, of the probability each model gives the target token "
            "on validation stories, for the base model, SFT and DFT, five seeds pooled. Base and SFT keep some mass "
            "at every probability; DFT puts almost all of it in the lowest and highest bins and leaves the middle "
            "nearly empty."),
        "plots.plot_choice_frequencies(": (
            "Horizontal bar chart of the eight most common TinyTales story openers: for each, its true probability, "
            "its share of this chapter's DFT samples and its share of the study's SFT samples, both at T = 1. DFT "
            "uses 'Once upon a time,' in every sample and no other opener; SFT's shares are close to the true ones."),
        "plots.plot_calibration(": (
            "Reliability diagram: accuracy of the top prediction against its confidence on validation stories, in ten "
            "bins, with a dashed diagonal where the two are equal. The SFT model after 50 steps has points of several "
            "sizes, from a confidence near 0.2 up to a large point near 1, all close to the diagonal (ECE 0.005). The "
            "DFT model after 200 steps has a single large point at confidence 1 and accuracy 0.89, below the "
            "diagonal (ECE 0.11)."),
    },
    "chapters/05_dft_in_the_study.ipynb": {
        "plots.plot_budget_sweep(summary)": (
            "Two panels against the number of fine-tuning steps, 0 (the base model), 50, 100 and 200, for nll and dft "
            "with 95% intervals. Left: KL to the data on a log scale; nll falls with the budget while dft rises far "
            "above it. Right: the share of samples opening with 'Once upon a time,', with a dashed line at its true "
            "probability; nll moves from the base model's low share up to the line, dft is near 1 from 50 steps on."),
        "plots.plot_dft_threshold(race)": (
            "Line chart, log step axis from 1 to 10,000, of DFT on the five-token toy q = (0.40, 0.25, 0.15, 0.12, "
            "0.08): each token's probability as a coloured line, its q as a dashed line of the same colour, and the "
            "bar s, the expected probability of the data, as a thick black line. The bar starts at 0.2 and rises to "
            "0.4. Tokens 2 to 4 lose probability from the start; token 1 rises a little until the bar passes 0.25 "
            "near step 30 and then falls; token 0's probability climbs to 1."),
        "plots.plot_target_probability_by_role(": (
            "Horizontal bar chart with 95% intervals over seeds of the mean probability given to the target token, "
            "for the character's name and for every other token, one pair of bars per run: base, nll and dft from "
            "the strong prior, then from the weak prior. From the strong prior all three give the name a probability "
            "near 1. From the weak prior the base gives it almost none, nll raises it to about 0.6, and dft leaves "
            "it at almost none."),
        "plots.plot_power_family(q": (
            "Line chart of probability against the five tokens of the toy distribution q, most frequent first: one "
            "line for q itself and one for q sharpened at temperature 0.75, 0.5 and 0.25 (alpha 0.25, 0.5 and "
            "0.75). The lower the temperature, the more mass the first token gets and the less the others keep. "
            "Markers from gradient descent on the power objective sit on their lines."),
        "plots.plot_power_family_check(": (
            "Two log-log scatter plots of the 16 TinyTales openers, each point an opener's share under a fine-tuned "
            "model sampled at T = 1 (vertical), with a dashed diagonal. Left, against the closed form q to the power "
            "1/(1 - alpha) from the true opener probabilities: nll (alpha 0), power 0.25 and power 0.5 lie along "
            "the diagonal with some scatter among the rare openers. Right, against SFT sampled at T = 1 - alpha: "
            "power 0.25 and power 0.5 lie closer to the diagonal, with total variation distances near 0.02."),
        "plots.plot_study_metric(summary": (
            "Dot plot with 95% confidence intervals of the share of samples that open with 'Once upon a time,' at "
            "T = 1, one row per objective of the study from tiny-gpt2 at 200 steps, with a dashed line at its share "
            "among true stories. NLL and the three distribution-matching runs sit near the line and the base model "
            "well left of it; power 0.25 is a little above it, power 0.5, the floored DFT and ASFT well above it, "
            "and DFT is at 1."),
    },
    "chapters/06_distribution_matching.ipynb": {
        "plots.plot_embedding_clouds(": (
            "Four scatter panels in shared axes, the first two principal components of MiniLM sentence embeddings: "
            "in each, the 120 reference true stories as grey points and another set of 120 as coloured crosses, "
            "with a large dot at each cloud's mean. A second true sample for the same prompts covers the reference "
            "and the means coincide; true stories for other prompts form a cloud shifted to the right; the Zipf 0.3 "
            "stories and the base model's samples overlap the reference with their means slightly apart. Each title "
            "gives the set's MMD squared and permutation p-value."),
        "plots.plot_mmd_by_zipf_exponent(sweep": (
            "Line chart of the unbiased MMD squared between true TinyTales stories at Zipf exponent 1.1 and stories "
            "drawn at Zipf exponents from 0.3 to 1.9, one line for 25 and one for 150 stories per sample, with n-gram "
            "features. Filled markers are significant at p < 0.05, hollow ones are not; a dashed line marks 1.1. "
            "With 150 stories the far exponents on both sides are significant and the near ones are not; the "
            "25-story line is noisy and mostly hollow."),
        "plots.plot_study_metric(without_dft, \"mmd2\"": (
            "Two panels of means with 95% intervals over seeds from the cached study, at T = 1, for the base model, "
            "SFT (nll) and the distribution-matching reconstruction at lambda 0.3, 1 and 3, all from tiny-gpt2 at "
            "200 steps. Left: MMD squared to true stories for the same prompts, with a dashed line for a second true "
            "sample; SFT and the three reconstructions sit on that line, the base model well to its right. Right: "
            "the share of valid stories, with the truth at 1; SFT and the reconstructions are all near 0.96 with "
            "overlapping intervals, the base model a little lower."),
    },
    "chapters/07_back_to_mle.ipynb": {
        "temperature.plot_temperatures(": (
            "Six panels in three rows of two. The first five plot a temperature against each mechanism's knob, "
            "measured three ways (a filled circle fitted to all tokens, an open square for the top token, a "
            "triangle for the rest), with the theory as a dashed line: decoding at T and training on text sampled "
            "at T (both the diagonal), preference for the familiar (falling from 1 to 0.25 as gamma over beta goes "
            "from 0 to 3) and the power loss (1 minus alpha); in all four the three markers sit together on the "
            "line. The fifth, Dynamic FT against training steps from 0 to 10,000 on a log axis, splits them: the "
            "top-token squares fall from 1 towards the dashed line at 0, the triangles for the rest rise above 1, "
            "and the circles lie between. The sixth, on log-log axes, plots probability against rank: the four "
            "mechanisms at T = 0.5 fall on one straight dashed line, steeper than p itself, while DFT after 1,000 "
            "steps puts nearly all the mass on the top token and leaves a tail that is almost flat."),
        'plots.plot_study_grid(summary, decoding="T=1")': (
            "Six panels of dot-and-whisker plots, one row per objective (base, nll, dft, dft_floored, power_0.25, "
            "power_0.5, asft, and distribution_matching at lambda 0.3, 1 and 3), all from tiny-gpt2 at 200 steps, "
            "showing the mean and 95% interval over seeds at T = 1 of validity, KL to the data (log scale), share of "
            "stories opening 'Once upon a time,', token-L2, predictive entropy (log scale) and distinct-2, with a "
            "dashed line for the truth where there is one. nll and the three distribution-matching runs sit on the "
            "truth line for the opener share, token-L2 and distinct-2 and have the lowest KL. dft is the outlier: "
            "validity 1, the highest KL, near-zero entropy, every story opening the same way and the lowest "
            "distinct-2; the other objectives lie between. The base model opens too few stories with the top opener "
            "and is more varied than the truth."),
        'decoding="T=0.7,top-p=0.9", ncols=2': (
            "Four panels of dot-and-whisker plots, one row per objective, of validity, the share opening "
            "'Once upon a time,', token-L2 and distinct-2 when sampling at T = 0.7 with top-p 0.9. Every model is "
            "fully valid; nll and the objectives near it move right of the truth line on the opener share and well "
            "below it on distinct-2; dft, dft_floored and asft open every story the same way."),
        "plots.plot_target_probability_histograms(": (
            "Step histograms on a log scale of the probability the model gives each target token on validation "
            "stories, for the base model, nll and dft (tiny-gpt2, 200 steps, seeds pooled). dft puts nearly all "
            "tokens in the bins next to 0 and 1 and almost none in between; nll and the base model keep a spread "
            "of probabilities across the middle."),
        'plots.plot_study_metric(summary, "top_opener_share"': (
            "Four dot-and-whisker panels of the share of stories opening 'Once upon a time,' at T = 1, with the "
            "truth as a dashed line: from tiny-gpt2 at 50, 100 and 200 steps and from tiny-gpt2-english at 200 "
            "steps. nll sits on the truth line in every panel; dft opens (nearly) every story this way from "
            "tiny-gpt2 and none from tiny-gpt2-english; the base tiny-gpt2 opens too few. At 200 steps the "
            "interpolations and asft lie between nll and dft, and the distribution-matching runs sit with nll."),
        "plots.plot_quality_diversity(": (
            "Scatter plot of validity (vertical) against distinct-2 (horizontal), one point per objective and "
            "decoding for tiny-gpt2 at 200 steps, colour for the objective, a circle for T = 1 and a square for "
            "T = 0.7 with top-p 0.9, a thin line joining each objective's two points, and the truth as a black star "
            "at full validity with a dotted vertical line at its distinct-2. nll and the distribution-matching runs "
            "sit on the dotted line at T = 1, a little below full validity, and move far left at T = 0.7; dft sits "
            "in the top-left corner under both decodings; the base model at T = 0.7 lands almost on the star."),
    },
    "chapters/08_real_model_writing.ipynb": {
        'order = ["original", "original-nll-seed0"': (
            "Four dot-and-interval panels, one per measure, each with eleven rows: the original gemma teacher at the "
            "top, its four SmolLM2 students (nll and dft, two seeds), the base SmolLM2, the anti-slop teacher's four "
            "students, and the anti-slop teacher at the bottom; teachers as squares, nll students blue, dft students "
            "orange, the base grey. List words per 1,000: the original teacher near 38, the anti-slop teacher near 7, "
            "the base near 14, every nll student above 38 whichever its teacher, every dft student near 20 to 29. The "
            "original's habit words: both teachers' nll students near the original teacher's 25, the dft students "
            "near 7 to 9, the base near 4. The anti-slop teacher's habit words: that teacher near 28, every student "
            "near the base, under 6. Commonest opening: the anti-slop teacher highest, near 0.35, the students low."),
        "side = levers.levers_side_by_side()": (
            "Three dot-and-interval panels, one per measure, each with eight rows coloured by lever (data, objective, "
            "decoding). List words as a ratio after over before, on a log scale with a line at 1: anti-slop tuning of "
            "the 27B model near 0.17; the student of the original against the base near 2.9; the anti-slop teacher's "
            "student against the original's near 1.1, its interval across 1; dft against nll near 0.6 and 0.4; T = 1 "
            "near 0.45; min-p alone and the habit bias near 1. Distinct-2 change: T = 1 up by about 0.28, min-p alone "
            "by about 0.1, dft down by 0.04 and 0.07, the rest near 0. Opening share change: anti-slop tuning up by "
            "about 0.16, the other rows small and negative."),
        "change after anti-slop tuning (% of the original)": (
            "Dot-and-interval chart of the change after anti-slop tuning, in percent of gemma-3-27b-it's own value, "
            "one row per measure, with a vertical line at no change. The two targeted rows, slop-score's list words "
            "and the original's listed habit words, fall by more than 80 percent. Of the untargeted rows, the "
            "original's unlisted habit words fall by about a fifth, the tuned model's new habit words rise by about "
            "180 percent, distinct-2 barely moves, runs of three sentences that open alike rise by about 30 percent, "
            "and the share of the commonest opening rises by about 110 percent."),
        "change against T = 0.7 with min-p 0.1 (same prompts)": (
            "Five small dot-and-interval panels, one per measure, each with three rows: T = 1, T = 1 with min-p 0.1, "
            "and the leaderboard decoding with a habit bias, as changes against T = 0.7 with min-p 0.1. Habit words: "
            "T = 1 near zero, min-p alone up by about 1.3 per 1,000, the bias down to none. Other list words: T = 1 "
            "down by about 8 per 1,000, the other two near zero. Non-words: T = 1 up by about 35 per 1,000, the other "
            "two near zero. Distinct-2: T = 1 up by about 0.28, min-p alone by about 0.1, the bias near zero. Mean "
            "log-probability: T = 1 down by almost 3 nats per token, min-p alone by about 0.3, the bias near zero."),
        "from dftlab.study import learning_curve": (
            "Two line charts side by side of one SFT run of SmolLM2 measured at 64, 128, 192 and 256 steps. Left: "
            "the KL to the true stories falls from about 13 to about 4 nats per story, crossing the dashed line at a "
            "tenth of the base model's KL between 64 and 128 steps; a grey square at 64 steps, above the line, marks "
            "the study's own 64-step run. Right: the share of valid stories climbs from near 0 to about 0.36, below "
            "the dotted line at one half throughout."),
        "plots.plot_carry_over(comparison": (
            "Six small line charts, one per measure, each with three points (base model, NLL, DFT) for two studies: "
            "tiny-gpt2 (circles) and SmolLM2-135M-Instruct fine-tuned with LoRA (squares). Validity: tiny-gpt2 near "
            "1 throughout, SmolLM2 at 0 throughout. KL to the data (log scale): both fall from the base to NLL and "
            "rise far above it under DFT, SmolLM2's above its own base model. Share of 'Once upon a time,', with the "
            "truth dashed: tiny-gpt2 rises to 1 under DFT, SmolLM2's mean stays near the truth. Predictive entropy "
            "(log scale) and distinct-2 fall under DFT in both studies. Repeated 4-grams within a sample: flat near 0 "
            "for tiny-gpt2, jumping to about 0.65 under DFT for SmolLM2."),
    },
    "chapters/09_scaling_up.ipynb": {
        'losses.plot(marker="o"': (
            "Line chart, on a log scale, of the training loss at each of six optimiser steps for three TRL runs from "
            "the same model, seed and batches: dftlab's nll, dftlab's dft and TRL's loss_type='dft'. The nll line "
            "stays near 0.4, ending at about 0.34; the two dft lines lie almost on top of each other about ten times "
            "lower, falling from about 0.06 at the first step to between 0.03 and 0.04."),
    },
}

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


def alt_text_of(cell) -> str | None:
    return cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")


def find_cell(notebook, snippet: str, path: str):
    """The one code cell whose source contains `snippet`; ValueError when none or several do."""
    matches = [cell for cell in notebook.cells if cell.cell_type == "code" and snippet in cell.source]
    if len(matches) != 1:
        raise ValueError(f"{path}: {len(matches)} code cells contain {snippet!r}; ALT_TEXT needs exactly one. "
                         f"Change the snippet in tools/figure_alt_text.py to a piece of source unique to the figure cell.")
    return matches[0]


def set_alt_text(notebook, alt_texts: dict[str, str], path: str = "notebook") -> int:
    """Write each alt text into its cell's `mystnb.image.alt`, keeping other metadata; returns how many changed."""
    changed = 0
    for snippet, text in alt_texts.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}: the alt text for {snippet!r} is {text!r}; give a sentence that describes the figure.")
        cell = find_cell(notebook, snippet, path)
        if alt_text_of(cell) != text:
            cell.metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = text
            changed += 1
    return changed


def figure_cells_without_alt_text(notebook) -> list[str]:
    """The first line of every code cell that outputs an image but has no alt text."""
    return [cell.source.splitlines()[0] if cell.source else "(empty cell)"
            for cell in notebook.cells
            if cell.cell_type == "code" and not alt_text_of(cell)
            and any(kind in output.get("data", {}) for output in cell.get("outputs", []) for kind in IMAGE_TYPES)]


def main(check: bool) -> int:
    missing = []
    for path in sorted(set(ALT_TEXT) | {p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("*.ipynb")}):
        notebook = nbformat.read(ROOT / path, as_version=4)
        if check:
            missing += [f"{path}: {line}" for line in figure_cells_without_alt_text(notebook)]
            missing += [f"{path}: no cell contains {snippet!r}" for snippet in ALT_TEXT.get(path, {})
                        if not any(snippet in cell.source for cell in notebook.cells if cell.cell_type == "code")]
        elif set_alt_text(notebook, ALT_TEXT.get(path, {}), path):
            nbformat.write(notebook, ROOT / path)
            print(f"{path}: alt text written")
    if missing:
        print("figure cells without alt text (add them to ALT_TEXT in tools/figure_alt_text.py):", *missing, sep="\n  ")
    return 1 if missing else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report figure cells without alt text")
    sys.exit(main(parser.parse_args().check))
