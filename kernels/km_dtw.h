/*
 * km_dtw.h -- dynamic time warping on the compute side (km_dtw.c): distances with a
 * Sakoe-Chiba band, the lower bound that prunes them, warping paths for DTW Barycenter
 * Averaging, and the threaded passes the PostgreSQL side (src/dtw.c) drives.  No postgres.h.
 *
 * Series are univariate: a row is a run of float32 samples, rows of any length >= 1 stored one
 * after another (KmSeries); centers are float64, all of one length.  The cost of a pair of
 * samples is their squared difference in float64, DTW^2 the least sum of costs over a warping
 * path from (0, 0) to (lx - 1, lc - 1), and DTW its square root, as tslearn defines them.
 *
 * The band is tslearn's Sakoe-Chiba mask (tslearn.metrics.sakoe_chiba_mask), so that series of
 * different lengths keep a connected band: with radius r and a row x of lx samples against a
 * center of lc, sample i of x may meet samples
 *     j in [i - r, i + (lc - lx) + r]      when lx <= lc,
 *     j in [i - (lx - lc) - r, i + r]      when lx > lc,
 * of the center (clipped to [0, lc - 1]); r < 0 means no band.  Both ends of the range rise
 * with i, which every routine below relies on.
 */
#ifndef KM_DTW_H
#define KM_DTW_H

#include "km_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows of series: row i is values[off[i] .. off[i + 1] - 1], weighing w[i] (w NULL: 1). */
typedef struct KmSeries
{
	int64_t		n;
	const float *values;
	const int64_t *off;
	const float *w;
} KmSeries;

/* The j range [*lo, *hi] that sample i of a row of lx samples may meet in a center of lc. */
static inline void
km_dtw_band(int i, int lx, int lc, int band, int *lo, int *hi)
{
	int			a,
				b;

	/* a radius of the longer length or more allows every j: no band, and no int overflow below */
	if (band < 0 || band >= (lx > lc ? lx : lc))
	{
		*lo = 0;
		*hi = lc - 1;
		return;
	}
	if (lx <= lc)
	{
		a = i - band;
		b = i + (lc - lx) + band;
	}
	else
	{
		a = i - (lx - lc) - band;
		b = i + band;
	}
	*lo = a < 0 ? 0 : a;
	*hi = b > lc - 1 ? lc - 1 : b;
}

/*
 * DTW^2 of x (lx samples) and c (lc), or INFINITY as soon as it is sure to exceed cutoff
 * (INFINITY: never abandon).  work holds 2 * (lc + 1) doubles.
 */
extern double km_dtw_sq(const float *x, int lx, const double *c, int lc, int band, double cutoff,
						double *work);

/* The same with a float64 row (two centers, or a center and a resampled row). */
extern double km_dtw_sq_d(const double *x, int lx, const double *c, int lc, int band,
						  double *work);

/*
 * DTW^2 of x and c with its warping path, as tslearn's dtw_path walks it back: from
 * (lx - 1, lc - 1), along the first edge when i or j is 0, else to the least of (i-1, j-1),
 * (i-1, j), (i, j-1), the first of them on ties.  path gets the pairs (i, j) from (0, 0) on,
 * 2 ints each, lx + lc - 1 pairs at most; *len their number.  work holds 2 * (lc + 1)
 * doubles, from lx * lc bytes.
 */
extern double km_dtw_path(const float *x, int lx, const double *c, int lc, int band,
						  double *work, uint8_t *from, int32_t *path, int *len);

/*
 * The lower bound of DTW^2(x, c) that pruning uses: the two corner costs, which every path
 * pays, and for each inner sample i the cost of its distance to [lo[i], hi[i]], the least and
 * greatest center sample it may meet (km_dtw_envelope).
 */
extern void km_dtw_envelope(const double *c, int lc, int lx, int band, double *lo, double *hi,
							int *queue);
extern double km_dtw_lower_bound(const float *x, int lx, const double *c, int lc,
								 const double *lo, const double *hi);

/* k centers of lc samples, with envelopes for rows of env_len samples (the common length). */
typedef struct KmDtwCenters
{
	int			k;
	int			lc;
	int			band;
	const double *c;			/* k x lc */
	int			env_len;		/* 0: no cached envelopes */
	const double *env_lo;		/* k x env_len */
	const double *env_hi;
} KmDtwCenters;

/*
 * Nearest center of rows [r0, r1): labels[i], DTW^2 into dist[i] (i global).  With prune, the
 * centers are tried in order of their lower bound and a DTW is abandoned once it exceeds the
 * best so far, so only the labels and distances of the full computation come out, ties to the
 * lowest index included.  *computed counts the DTWs started.  With cutoff (per row, NULL for
 * none) a center must come strictly below cutoff[i] to be taken: labels[i] is -1 and dist[i]
 * cutoff[i] when none does (k-means++ seeding lowers each row's D^2 so).
 */
extern KmStatus km_dtw_assign(const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs,
							  int prune, const double *cutoff, int nthreads, int32_t *labels,
							  double *dist, int64_t *computed, KmError *err);

/*
 * One step of DTW Barycenter Averaging (Petitjean et al. 2011) for the centers with active[j]:
 * each row of [r0, r1) labelled j is aligned with center j and every center sample j_t adds the
 * row's samples the path meets at it, weighted: sums[j * lc + t] += w x_i, counts[...] += w,
 * cost[j] += w DTW^2.  Paths are found on nthreads threads and added in row order, so the sums
 * do not depend on the thread count.
 */
extern KmStatus km_dtw_dba_pass(const KmSeries *s, int64_t r0, int64_t r1, const int32_t *labels,
								const KmDtwCenters *cs, const uint8_t *active, int nthreads,
								double *sums, double *counts, double *cost, KmError *err);

/*
 * DTW (not squared) of rows rows[a] and rows[b] for a in [a0, a1) and every b > a, into
 * out[a * m + b] of an m x m matrix, and 0 on its diagonal; the caller mirrors the lower half.
 * The silhouette's distances.
 */
extern KmStatus km_dtw_pairwise(const KmSeries *s, const int64_t *rows, int64_t m, int64_t a0,
								int64_t a1, int band, int nthreads, double *out, KmError *err);

/*
 * Every center of cs against rows [r0, r1): out[(r - r0) * k + j] = DTW^2(row r, center j), or
 * cutoff[r] where that is not below it (cutoff NULL: none), so min(DTW^2, cutoff[r]); k-means++
 * candidates' D^2 updates.  Centers go LANES at a time where the vector code exists.
 */
extern KmStatus km_dtw_cross(const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs,
							 const double *cutoff, int nthreads, double *out, KmError *err);

/* Samples of x (lx) linearly resampled to len, as tslearn's TimeSeriesResampler does. */
extern void km_dtw_resample(const float *x, int lx, double *out, int len);

#ifdef __cplusplus
}
#endif

#endif							/* KM_DTW_H */
