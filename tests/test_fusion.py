import numpy as np
import pytest

from tremor.errors import QueryError
from tremor.search.fusion import fuse, interpolate, normalize_scores, reciprocal_rank_fusion

NEG = -np.inf


def ranked(rows):
    """[(doc, score), ...] per query → (scores, numbers) padded to the longest row with (-inf, -1)."""
    width = max(len(r) for r in rows)
    scores = np.full((len(rows), width), NEG, dtype=np.float32)
    numbers = np.full((len(rows), width), -1, dtype=np.int64)
    for q, row in enumerate(rows):
        for i, (doc, score) in enumerate(row):
            numbers[q, i] = doc
            scores[q, i] = score
    return scores, numbers


def as_pairs(result, q=0):
    scores, numbers = result
    return [(int(d), round(float(s), 6)) for d, s in zip(numbers[q], scores[q], strict=True) if d >= 0]


# sparse: docs 10 > 11 > 12 (scores 3, 2, 1); dense: docs 12 > 13 (0.9, 0.5)
SPARSE = ranked([[(10, 3.0), (11, 2.0), (12, 1.0)]])
DENSE = ranked([[(12, 0.9), (13, 0.5)]])


def test_minmax_interpolation_by_hand():
    # min-max: sparse 10→1, 11→0.5, 12→0; dense 12→1, 13→0; missing → floor 0
    got = as_pairs(interpolate(SPARSE, DENSE, alpha=0.3, normalization="minmax"))
    expected = {10: 0.3 * 1, 11: 0.3 * 0.5, 12: 0.3 * 0 + 0.7 * 1, 13: 0.0}
    assert [d for d, _ in got] == [12, 10, 11, 13]
    assert got == [(d, round(expected[d], 6)) for d in (12, 10, 11, 13)]


def test_zscore_interpolation_by_hand_and_missing_side_gets_floor():
    # sparse mean 2, std sqrt(2/3); dense mean 0.7, std 0.2
    s_std = np.sqrt(2 / 3)
    z_sparse = {10: 1 / s_std, 11: 0.0, 12: -1 / s_std}
    z_dense = {12: 1.0, 13: -1.0}
    floor_sparse, floor_dense = -1 / s_std, -1.0
    got = dict(as_pairs(interpolate(SPARSE, DENSE, alpha=0.5, normalization="zscore")))
    for doc in (10, 11, 12, 13):
        expected = 0.5 * z_sparse.get(doc, floor_sparse) + 0.5 * z_dense.get(doc, floor_dense)
        assert got[doc] == pytest.approx(expected, abs=1e-5)


def test_raw_interpolation_uses_scores_as_given():
    got = dict(as_pairs(fuse(SPARSE, DENSE, "raw", alpha=0.5)))
    # floors: sparse 1.0 (its lowest score), dense 0.5
    assert got == pytest.approx({10: 0.5 * 3 + 0.5 * 0.5, 11: 0.5 * 2 + 0.5 * 0.5, 12: 0.5 * 1 + 0.5 * 0.9,
                                 13: 0.5 * 1 + 0.5 * 0.5})


def test_rrf_by_hand():
    got = as_pairs(reciprocal_rank_fusion(SPARSE, DENSE, rrf_k=60))
    expected = {10: 1 / 61, 11: 1 / 62, 12: 1 / 63 + 1 / 61, 13: 1 / 62}
    assert [d for d, _ in got] == [12, 10, 11, 13]  # 11 and 13 tie; the smaller number first
    assert dict(got) == pytest.approx(expected, abs=1e-6)


def test_alpha_extremes_reproduce_one_side_and_k_truncates():
    only_sparse = as_pairs(interpolate(SPARSE, DENSE, alpha=1.0))
    assert [d for d, _ in only_sparse][:3] == [10, 11, 12]
    only_dense = as_pairs(interpolate(SPARSE, DENSE, alpha=0.0))
    assert only_dense == [(12, 1.0), (10, 0.0), (11, 0.0), (13, 0.0)]  # the dense floor ties; smaller number first
    scores, numbers = interpolate(SPARSE, DENSE, alpha=0.5, k=2)
    assert numbers.shape == (1, 2) and scores.dtype == np.float32
    assert interpolate(SPARSE, DENSE)[1].shape == (1, 5)  # by default room for the whole union


def test_normalization_robust_to_one_hit_equal_scores_and_no_hits():
    scores, numbers = ranked([[(5, 7.0)], [(1, 2.0), (2, 2.0), (3, 2.0)], []])
    for method in ("minmax", "zscore", "raw"):
        values, floor = normalize_scores(scores, numbers, method)
        assert np.all(np.isfinite(values)) and np.all(np.isfinite(floor))
        valid = numbers >= 0
        # every listed document scores above the floor of a list with no spread
        assert np.all(values[0][valid[0]] > floor[0]) and np.all(values[1][valid[1]] > floor[1])
        assert np.all(values[1][valid[1]] == values[1][0])
    # fused with a dense list: the single sparse hit outranks a document the sparse side did not return
    dense = ranked([[(5, 0.5), (6, 0.5)], [(1, 0.9), (4, 0.8)], [(8, 0.3), (9, 0.2)]])
    for method in ("minmax", "zscore", "rrf", "raw"):
        fused_scores, fused_numbers = fuse((scores, numbers), dense, method, alpha=0.5)
        assert np.all(np.isfinite(fused_scores[fused_numbers >= 0]))
        assert fused_numbers[0, 0] == 5
        assert fused_numbers[1, 0] == 1
        assert list(fused_numbers[2, :2]) == [8, 9]  # no sparse hits: the dense order stands


def test_bad_arguments_rejected():
    with pytest.raises(QueryError):
        interpolate(SPARSE, DENSE, alpha=1.5)
    with pytest.raises(QueryError):
        fuse(SPARSE, DENSE, "harmonic")
    with pytest.raises(QueryError):
        fuse(SPARSE, ranked([[(1, 1.0)], [(2, 1.0)]]))


# ------------------------------------------------------------------------------------------------ three lists
def test_fuse_many_by_hand_three_lists():
    from tremor.search.fusion import fuse_many

    bm25 = ranked([[(11, 8.0), (13, 4.0)]])
    # min-max: sparse 10→1, 11→0.5, 12→0; dense 12→1, 13→0; bm25 11→1, 13→0; every floor 0
    got = as_pairs(fuse_many([SPARSE, DENSE, bm25], "minmax", weights=(0.5, 0.3, 0.2)))
    expected = {10: 0.5, 11: 0.5 * 0.5 + 0.2 * 1, 12: 0.3 * 1, 13: 0.0}
    assert [d for d, _ in got] == [10, 11, 12, 13]
    assert got == [(d, round(expected[d], 6)) for d in (10, 11, 12, 13)]
    # RRF: 1/(k + rank) summed over the lists a document appears in
    got = dict(as_pairs(fuse_many([SPARSE, DENSE, bm25], "rrf", rrf_k=1.0)))
    assert got[11] == pytest.approx(1 / 3 + 1 / 2, abs=1e-6) and got[13] == pytest.approx(1 / 3 + 1 / 3, abs=1e-6)
    # z-score: a document missing from a list gets that list's floor (its lowest z), per list
    z = dict(as_pairs(fuse_many([SPARSE, DENSE, bm25], "zscore")))
    s_vals, s_floor = normalize_scores(*SPARSE, "zscore")
    d_vals, d_floor = normalize_scores(*DENSE, "zscore")
    b_vals, b_floor = normalize_scores(*bm25, "zscore")
    assert z[10] == pytest.approx((s_vals[0, 0] + d_floor[0] + b_floor[0]) / 3, abs=1e-5)
    assert z[13] == pytest.approx((s_floor[0] + d_vals[0, 1] + b_vals[0, 1]) / 3, abs=1e-5)


@pytest.mark.parametrize("method", ["minmax", "zscore", "raw", "rrf"])
def test_fuse_many_of_two_lists_equals_fuse(method):
    from tremor.search.fusion import fuse_many

    rng = np.random.default_rng(3)
    rows_a = [[(int(d), float(s)) for d, s in zip(rng.choice(40, 12, replace=False), sorted(rng.random(12))[::-1],
                                                   strict=True)] for _ in range(5)]
    rows_b = [[(int(d), float(s)) for d, s in zip(rng.choice(40, 7, replace=False), sorted(rng.random(7))[::-1],
                                                   strict=True)] for _ in range(5)]
    a, b = ranked(rows_a), ranked(rows_b)
    two = fuse(a, b, method, alpha=0.7, k=15, rrf_k=5.0)
    many = fuse_many([a, b], method, weights=None if method == "rrf" else (0.7, 0.3), k=15, rrf_k=5.0)
    np.testing.assert_array_equal(two[1], many[1])
    np.testing.assert_allclose(two[0], many[0], rtol=1e-6, atol=1e-6)


def test_fuse_many_errors():
    from tremor.search.fusion import fuse_many

    with pytest.raises(QueryError, match="at least two"):
        fuse_many([SPARSE])
    with pytest.raises(QueryError, match="one weight"):
        fuse_many([SPARSE, DENSE, DENSE], weights=(1.0, 0.5))
    with pytest.raises(QueryError, match="unknown fusion"):
        fuse_many([SPARSE, DENSE], "median")
