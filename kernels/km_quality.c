/*
 * km_quality.c -- cluster-quality scores for kmeans_elbow.
 *
 * Three scores are reported per k of an elbow:
 *
 *   - the silhouette (Rousseeuw 1987, "Silhouettes: a graphical aid to the interpretation and
 *     validation of cluster analysis", J. Comput. Appl. Math. 20:53-65), averaged over a sample
 *     of rows because it costs O(s^2) distances;
 *   - the Calinski-Harabasz index (Calinski & Harabasz 1974, "A dendrite method for cluster
 *     analysis", Commun. Stat. 3:1-27), the variance-ratio criterion;
 *   - the Davies-Bouldin index (Davies & Bouldin 1979, "A cluster separation measure", IEEE
 *     TPAMI 1:224-227).
 *
 * The last two need only per-cluster sums over all rows (km_quality_scatter, streamed with the
 * final Lloyd pass).  The elbow itself is chosen by Kneedle (Satopaa, Albrecht, Irwin & Raghavan
 * 2011, "Finding a 'kneedle' in a haystack: detecting knee points in system behavior",
 * ICDCS Workshops) on the inertia curve.
 *
 * All definitions follow scikit-learn's metrics (silhouette_samples, calinski_harabasz_score,
 * davies_bouldin_score) so results can be checked against it; the code is our own.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "km_quality.h"

#if defined(__SSE2__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

/* ---------------------------------------------------------------------------------------------
 * Calinski-Harabasz and Davies-Bouldin from streamed per-cluster sums.
 * ------------------------------------------------------------------------------------------- */

/* Adds one batch of rows into the per-cluster squared and plain distance sums. */
void
km_quality_scatter(const float *x, int64_t n, int d, const int32_t *labels, int label_stride,
				   const double *means, double *sq, double *lin)
{
	for (int64_t i = 0; i < n; i++)
	{
		const float *xi = x + i * d;
		int32_t		l = labels[i * label_stride];
		const double *mu = means + (int64_t) l * d;
		double		s2 = 0.0;

		for (int c = 0; c < d; c++)
		{
			double		diff = (double) xi[c] - mu[c];

			s2 += diff * diff;
		}
		/* one row at a time, in order: the sums are the same however rows are batched */
		sq[l] += s2;
		lin[l] += sqrt(s2);
	}
}

/* Number of clusters that hold at least one row. */
static int
occupied_clusters(int k, const int64_t *counts, int64_t *total)
{
	int			occ = 0;
	int64_t		n = 0;

	for (int l = 0; l < k; l++)
	{
		if (counts[l] > 0)
		{
			occ++;
			n += counts[l];
		}
	}
	if (total)
		*total = n;
	return occ;
}

/*
 * Calinski-Harabasz index (Calinski & Harabasz 1974):
 *   CH = [B / (q - 1)] / [W / (n - q)],
 * B = sum_l n_l |mu_l - mu|^2 (between-group dispersion), W = sum_l sum_{i in l} |x_i - mu_l|^2
 * (within-group dispersion, the sq sums), q the number of occupied clusters.
 */
double
km_calinski_harabasz(int64_t n, int k, int d, const int64_t *counts, const double *means,
					 const double *sq)
{
	int64_t		total;
	int			q = occupied_clusters(k, counts, &total);
	double		extra = 0.0;
	double		intra = 0.0;

	/*
	 * scikit-learn raises for fewer than 2 or more than n - 1 labels: the index is undefined
	 * there (q == 1 divides by q - 1 = 0), so say so with NaN rather than invent a value.
	 */
	if (q < 2 || q > n - 1 || total <= 0)
		return NAN;

	/*
	 * The overall mean is the count-weighted mean of the cluster means: it is the mean of the
	 * rows without another pass over them.  Taken one coordinate at a time, so that no scratch
	 * memory is needed.
	 */
	for (int c = 0; c < d; c++)
	{
		double		mu = 0.0;

		for (int l = 0; l < k; l++)
			if (counts[l] > 0)
				mu += (double) counts[l] * means[(int64_t) l * d + c];
		mu /= (double) total;
		for (int l = 0; l < k; l++)
		{
			if (counts[l] > 0)
			{
				double		diff = means[(int64_t) l * d + c] - mu;

				extra += (double) counts[l] * diff * diff;
			}
		}
	}

	for (int l = 0; l < k; l++)
		if (counts[l] > 0)
			intra += sq[l];

	/* scikit-learn's convention: every row sits on its centroid, call it 1.0 */
	if (intra == 0.0)
		return 1.0;
	return extra * (double) (n - q) / (intra * (double) (q - 1));
}

/* Euclidean distance between two centroids, from coordinate differences. */
static double
centroid_distance(const double *a, const double *b, int d)
{
	double		s2 = 0.0;

	for (int c = 0; c < d; c++)
	{
		double		diff = a[c] - b[c];

		s2 += diff * diff;
	}
	return sqrt(s2);
}

/*
 * Davies-Bouldin index (Davies & Bouldin 1979):
 *   DB = (1/q) sum_a max_{b != a} (S_a + S_b) / M_ab,
 * S_a the mean distance of cluster a's rows to its centroid (lin / count), M_ab the distance
 * between centroids a and b, q the number of occupied clusters.
 */
double
km_davies_bouldin(int k, int d, const int64_t *counts, const double *means, const double *lin)
{
	int64_t		total;
	int			q = occupied_clusters(k, counts, &total);
	bool		all_intra_zero = true;
	bool		all_dist_zero = true;
	double		sum = 0.0;

	/* undefined where scikit-learn raises: fewer than 2 or more than n - 1 clusters */
	if (q < 2 || q > total - 1)
		return NAN;

	/*
	 * scikit-learn returns 0.0 when np.allclose(intra, 0) or np.allclose(centroid distances, 0),
	 * i.e. when every value is within its default atol of 1e-8 of zero (not exactly zero): the
	 * index is 0/0 there.  The diagonal of the distance matrix is 0, so only pairs matter.
	 */
	for (int a = 0; a < k; a++)
	{
		if (counts[a] <= 0)
			continue;
		if (!(fabs(lin[a] / (double) counts[a]) <= 1e-8))
			all_intra_zero = false;
		for (int b = a + 1; b < k && all_dist_zero; b++)
		{
			if (counts[b] <= 0)
				continue;
			if (!(centroid_distance(means + (int64_t) a * d, means + (int64_t) b * d, d) <= 1e-8))
				all_dist_zero = false;
		}
	}
	if (all_intra_zero || all_dist_zero)
		return 0.0;

	for (int a = 0; a < k; a++)
	{
		double		sa;
		double		worst = 0.0;

		if (counts[a] <= 0)
			continue;
		sa = lin[a] / (double) counts[a];
		for (int b = 0; b < k; b++)
		{
			double		mab;
			double		r;

			if (b == a || counts[b] <= 0)
				continue;
			mab = centroid_distance(means + (int64_t) a * d, means + (int64_t) b * d, d);

			/*
			 * scikit-learn sets a zero centroid distance to infinity, so two clusters with the
			 * same centroid contribute a ratio of 0 instead of dividing by zero.
			 */
			if (mab == 0.0)
				continue;
			r = (sa + lin[b] / (double) counts[b]) / mab;
			if (r > worst)
				worst = r;
		}
		sum += worst;
	}
	return sum / (double) q;
}

/* ---------------------------------------------------------------------------------------------
 * Silhouette (Rousseeuw 1987) over a sample, for many labellings at once.
 *
 * For row i of labelling m, with C its cluster: a = sum_{j in C} D_ij / (|C| - 1) and
 * b = min_{C' != C} sum_{j in C'} D_ij / |C'|, s = (b - a) / max(a, b), 0 when |C| = 1 (and
 * when a = b = 0, where scikit-learn's 0/0 turns into 0 too).
 *
 * The work is s^2 distances plus s^2 * nlab additions of a distance into a per-labelling,
 * per-cluster sum.  The additions dominate (nlab = 47 for an elbow of k = 3..49), so the loop
 * is built around them:
 *
 *   - the rows of [row_begin, row_end) are taken SIL_B = 8 at a time, as 64 bytes of float64
 *     lanes (one AVX-512 vector, two AVX ones...): every addition then serves 8 rows;
 *   - the sample is cut in tiles of SIL_T = 255 rows; the tile's distances (16 KiB with one
 *     zero entry after them) are computed once and stay in L1;
 *   - for each tile and labelling, the tile's rows are pre-sorted by label once per call, so
 *     each cluster's share of the tile is a run of L1 loads summed in registers followed by
 *     one add into the per-cluster sum: a load per addition rather than a load and a store,
 *     and no store-to-load chains when consecutive rows share a cluster;
 *   - each run is padded with the zero entry to an even length (adding +0.0 changes nothing)
 *     and the runs of a tile are ordered by length, so the inner loop has a single exit and
 *     its trip counts come in predictable stretches.  Unpadded runs in label order cost a
 *     branch misprediction or two per run, which measured as the largest cost of all (twice
 *     the time at s = 11346).
 *
 * Every row's sums are formed in an order fixed by the sample and labels alone (tile by tile,
 * and within a tile run by run with a fixed 2-way split), so a row's value does not depend on
 * the row range, on the other rows of its block, or on the vector width.
 * ------------------------------------------------------------------------------------------- */

#define SIL_B 8					/* range rows per block */
#define SIL_T 255				/* sample rows per tile; 0..255 fit a uint8_t with the pad */
#define SIL_PAD SIL_T			/* index of the zero lanes used as padding */
#define SIL_UNROLL 2			/* runs are padded to a multiple of this */
#define SIL_ALIGN 64

/*
 * The 8 rows of a block are held in native vectors: gcc lowers wider generic vectors to
 * stack traffic (10 times slower measured on AVX2), so the width follows the target.  The
 * lanes never interact, so every width gives the same value per row.
 */
#if defined(__AVX512F__)
#define SIL_VLEN 8
#elif defined(__AVX__)
#define SIL_VLEN 4
#else
#define SIL_VLEN 2
#endif
#define SIL_NV (SIL_B / SIL_VLEN)

typedef double sil_vd __attribute__((vector_size(SIL_VLEN * sizeof(double))));
typedef int64_t sil_vl __attribute__((vector_size(SIL_VLEN * sizeof(int64_t))));

/* One float64 per row of a block: a distance, a coordinate or a per-cluster sum. */
typedef struct SilLanes
{
	sil_vd		v[SIL_NV];
} __attribute__((aligned(SIL_ALIGN))) SilLanes;

/* Lane-wise square root; IEEE sqrt is correctly rounded, so every branch gives the same bits. */
static inline sil_vd
sil_vsqrt(sil_vd v)
{
#if defined(__AVX512F__)
	return (sil_vd) _mm512_sqrt_pd((__m512d) v);
#elif defined(__AVX__)
	return (sil_vd) _mm256_sqrt_pd((__m256d) v);
#elif defined(__SSE2__)
	return (sil_vd) _mm_sqrt_pd((__m128d) v);
#elif defined(__aarch64__)
	return (sil_vd) vsqrtq_f64((float64x2_t) v);
#else
	for (int h = 0; h < SIL_VLEN; h++)
		v[h] = sqrt(v[h]);
	return v;
#endif
}

/* Distances from the block's rows (xi: one SilLanes per coordinate) to sample rows t0.. */
static void
sil_tile_distances(const float *x, int d, int64_t t0, int tn, const SilLanes *xi,
				   KmMetric metric, SilLanes *dist)
{
	int			cosine = metric == KM_METRIC_COSINE;

	if (metric == KM_METRIC_IOU)
	{
		/* 1 - IoU of boxes (w, h) at a common corner, in float64 (d = 2) */
		for (int j = 0; j < tn; j++)
		{
			double		w2 = x[(t0 + j) * 2],
						h2 = x[(t0 + j) * 2 + 1];

			for (int q = 0; q < SIL_NV; q++)
				for (int l = 0; l < SIL_VLEN; l++)
				{
					double		w1 = xi[0].v[q][l],
								h1 = xi[1].v[q][l];
					double		inter = (w1 < w2 ? w1 : w2) * (h1 < h2 ? h1 : h2);

					dist[j].v[q][l] = 1.0 - inter / (w1 * h1 + w2 * h2 - inter);
				}
		}
		return;
	}
	for (int j = 0; j < tn; j++)
	{
		const float *xj = x + (t0 + j) * d;
		sil_vd		acc[SIL_NV] = {0};

		/* differences, not |x|^2 - 2 x.y + |y|^2: no cancellation for nearby rows */
		for (int c = 0; c < d; c++)
		{
			double		xc = (double) xj[c];

			for (int q = 0; q < SIL_NV; q++)
			{
				sil_vd		diff = xi[c].v[q] - xc;

				acc[q] += diff * diff;
			}
		}
		for (int q = 0; q < SIL_NV; q++)
			dist[j].v[q] = cosine ? acc[q] * 0.5 : sil_vsqrt(acc[q]);
	}
}

/*
 * Adds a tile's distances into the per-cluster sums of one labelling, run by run; *ixp walks
 * the padded index stream and is left after this (tile, labelling).
 */
static inline void
sil_tile_sums(const SilLanes *dist, const uint8_t **ixp, const int32_t *run_lab,
			  const uint8_t *run_trips, int64_t r0, int64_t r1, SilLanes *acc)
{
	const uint8_t *ix = *ixp;

	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *stop = ix + SIL_UNROLL * (int) run_trips[r];
		sil_vd		s0[SIL_NV] = {0};
		sil_vd		s1[SIL_NV] = {0};
		SilLanes   *a = &acc[run_lab[r]];

		/* two chains per vector hide the add latency on long runs (small k) */
		do
		{
			const SilLanes *d0 = &dist[ix[0]];
			const SilLanes *d1 = &dist[ix[1]];

			for (int q = 0; q < SIL_NV; q++)
			{
				s0[q] += d0->v[q];
				s1[q] += d1->v[q];
			}
			ix += SIL_UNROLL;
		} while (ix < stop);
		for (int q = 0; q < SIL_NV; q++)
			a->v[q] += s0[q] + s1[q];
	}
	*ixp = ix;
}

/* Bytes for count items of size elem, rounded up to the vector alignment; false on overflow. */
static bool
sil_reserve(size_t *total, uint64_t count, size_t elem)
{
	size_t		bytes;

	if (count > SIZE_MAX / elem)
		return false;
	bytes = (size_t) count * elem;
	if (bytes > SIZE_MAX - SIL_ALIGN || *total > SIZE_MAX - SIL_ALIGN - bytes)
		return false;
	*total += (bytes + SIL_ALIGN - 1) & ~((size_t) SIL_ALIGN - 1);
	return true;
}

/*
 * A scratch area of bytes (sized by sil_reserve, from SIL_ALIGN up): *area to free, *cursor
 * its first aligned byte for sil_take.
 */
static KmStatus
sil_area(size_t bytes, char **area, char **cursor, KmError *err)
{
	*area = malloc(bytes);
	if (*area == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "silhouette: out of memory for %zu bytes of scratch",
					   bytes);
	*cursor = (char *) (((uintptr_t) *area + SIL_ALIGN - 1) & ~(uintptr_t) (SIL_ALIGN - 1));
	return KM_OK;
}

/* Carves the next aligned piece out of a scratch area sized by sil_reserve. */
static void *
sil_take(char **cursor, uint64_t count, size_t elem)
{
	void	   *p = *cursor;
	size_t		bytes = (size_t) count * elem;

	*cursor += (bytes + SIL_ALIGN - 1) & ~((size_t) SIL_ALIGN - 1);
	return p;
}

/*
 * A sample prepared for km_silhouette_prepared_rows: its cluster sizes and, per tile and
 * labelling, the rows sorted into padded runs of one label, built once however many row
 * ranges are asked for (each would otherwise sort the whole sample again).
 */
struct KmSilhouette
{
	const float *x;
	int64_t		s;
	int			d;
	KmMetric	metric;
	const int32_t *labels;
	int			nlab;
	const int  *ks;
	int64_t		sum_k;
	int64_t		ntiles;
	int64_t    *off;			/* nlab + 1: first cluster slot of each labelling */
	int64_t    *cnt;			/* sum_k: rows of the sample in each cluster */
	int		   *occupied;		/* nlab: clusters with at least one row */
	uint8_t    *idx;			/* per tile and labelling, the padded runs of rows */
	int32_t    *run_lab;		/* each run's label ... */
	uint8_t    *run_trips;		/* ... and its length in groups of SIL_UNROLL rows */
	int64_t    *run_off;		/* ntiles * nlab + 1: first run of each (tile, labelling) */
	char	   *area;
};

/* Prepares a sample for silhouette values of its rows; see km_quality.h. */
KmStatus
km_silhouette_prepare(const float *x, int64_t s, int d, KmMetric metric, const int32_t *labels,
					  int nlab, const int *ks, KmSilhouette **out, KmError *err)
{
	int64_t		sum_k = 0;
	int			max_k = 0;
	int64_t		ntiles;
	uint64_t	max_idx;
	size_t		bytes = SIL_ALIGN;
	char	   *area;
	char	   *cursor = NULL;	/* set by sil_area */
	KmStatus	st;
	KmSilhouette *sp;
	int64_t    *off;
	int64_t    *cnt;
	int		   *occupied;
	uint8_t    *idx;
	int32_t    *run_lab;
	uint8_t    *run_trips;
	int64_t    *run_off;
	int32_t    *pos;			/* max_k + 1: counting-sort cursor per label */
	int32_t    *by_trips;		/* labels present in the tile, ordered by run length */
	uint8_t    *sorted;			/* SIL_T: the tile's rows sorted by label */
	int64_t		nruns = 0;
	uint64_t	nidx = 0;

	*out = NULL;
	if (s < 0 || d < 1 || nlab < 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "silhouette: bad sizes (s=%lld d=%d nlab=%d)",
					   (long long) s, d, nlab);
	for (int m = 0; m < nlab; m++)
	{
		if (ks[m] < 1)
			return KM_FAIL(err, KM_ERR_ARGUMENT, "silhouette: labelling %d has k=%d", m, ks[m]);
		sum_k += ks[m];
		if (ks[m] > max_k)
			max_k = ks[m];
	}
	/* labels come from the engine; a bad one is a bug, caught here rather than by a crash */
	for (int64_t i = 0; i < s; i++)
	{
		for (int m = 0; m < nlab; m++)
		{
			int32_t		l = labels[i * nlab + m];

			if (l < 0 || l >= ks[m])
				return KM_FAIL(err, KM_ERR_ARGUMENT,
							   "silhouette: row %lld has label %d outside 0..%d in labelling %d",
							   (long long) i, (int) l, ks[m] - 1, m);
		}
	}

	/* padding adds at most SIL_UNROLL - 1 entries per run, and there are at most s * nlab runs */
	ntiles = (s + SIL_T - 1) / SIL_T;
	max_idx = (uint64_t) s * (uint64_t) nlab * SIL_UNROLL;
	if (!sil_reserve(&bytes, 1, sizeof(KmSilhouette)) ||
		!sil_reserve(&bytes, (uint64_t) nlab + 1, sizeof(int64_t)) ||
		!sil_reserve(&bytes, (uint64_t) sum_k, sizeof(int64_t)) ||
		!sil_reserve(&bytes, (uint64_t) nlab, sizeof(int)) ||
		!sil_reserve(&bytes, max_idx, sizeof(uint8_t)) ||
		!sil_reserve(&bytes, (uint64_t) s * (uint64_t) nlab, sizeof(int32_t)) ||
		!sil_reserve(&bytes, (uint64_t) s * (uint64_t) nlab, sizeof(uint8_t)) ||
		!sil_reserve(&bytes, (uint64_t) ntiles * (uint64_t) nlab + 1, sizeof(int64_t)) ||
		!sil_reserve(&bytes, (uint64_t) max_k + 1, sizeof(int32_t)) ||
		!sil_reserve(&bytes, SIL_T, sizeof(int32_t)) ||
		!sil_reserve(&bytes, SIL_T, sizeof(uint8_t)))
		return KM_FAIL(err, KM_ERR_NOMEM, "silhouette: scratch size overflows (s=%lld, nlab=%d)",
					   (long long) s, nlab);
	if ((st = sil_area(bytes, &area, &cursor, err)) != KM_OK)
		return st;
	sp = sil_take(&cursor, 1, sizeof(KmSilhouette));
	off = sil_take(&cursor, (uint64_t) nlab + 1, sizeof(int64_t));
	cnt = sil_take(&cursor, (uint64_t) sum_k, sizeof(int64_t));
	occupied = sil_take(&cursor, (uint64_t) nlab, sizeof(int));
	idx = sil_take(&cursor, max_idx, sizeof(uint8_t));
	run_lab = sil_take(&cursor, (uint64_t) s * (uint64_t) nlab, sizeof(int32_t));
	run_trips = sil_take(&cursor, (uint64_t) s * (uint64_t) nlab, sizeof(uint8_t));
	run_off = sil_take(&cursor, (uint64_t) ntiles * (uint64_t) nlab + 1, sizeof(int64_t));
	pos = sil_take(&cursor, (uint64_t) max_k + 1, sizeof(int32_t));
	by_trips = sil_take(&cursor, SIL_T, sizeof(int32_t));
	sorted = sil_take(&cursor, SIL_T, sizeof(uint8_t));

	/* cluster sizes over the whole sample, per labelling */
	off[0] = 0;
	for (int m = 0; m < nlab; m++)
		off[m + 1] = off[m] + ks[m];
	memset(cnt, 0, (size_t) sum_k * sizeof(int64_t));
	for (int64_t i = 0; i < s; i++)
		for (int m = 0; m < nlab; m++)
			cnt[off[m] + labels[i * nlab + m]]++;
	for (int m = 0; m < nlab; m++)
	{
		occupied[m] = 0;
		for (int l = 0; l < ks[m]; l++)
			if (cnt[off[m] + l] > 0)
				occupied[m]++;
	}

	/*
	 * Per tile and labelling: a stable counting sort of the tile's rows by label, then the runs
	 * of equal label ordered by padded length (a second counting sort, stable, so equal lengths
	 * stay in label order), written out padded.  O(s * nlab + ntiles * sum_k) in all, small
	 * next to the pairs.
	 */
	run_off[0] = 0;
	for (int64_t t = 0; t < ntiles; t++)
	{
		int64_t		t0 = t * SIL_T;
		int			tn = (int) (s - t0 < SIL_T ? s - t0 : SIL_T);

		for (int m = 0; m < nlab; m++)
		{
			int			k = ks[m];
			int			ntrip[SIL_T / SIL_UNROLL + 2];
			int			npresent = 0;

			memset(pos, 0, ((size_t) k + 1) * sizeof(int32_t));
			for (int j = 0; j < tn; j++)
				pos[labels[(t0 + j) * nlab + m] + 1]++;
			memset(ntrip, 0, sizeof(ntrip));
			for (int l = 0; l < k; l++)
			{
				if (pos[l + 1] > 0)
					ntrip[(pos[l + 1] + SIL_UNROLL - 1) / SIL_UNROLL]++;
				pos[l + 1] += pos[l];
			}
			for (int j = 0; j < tn; j++)
				sorted[pos[labels[(t0 + j) * nlab + m]]++] = (uint8_t) j;
			/* now pos[l] is the end of label l's rows in sorted, pos[l - 1] their start */

			for (int q = 1; q < SIL_T / SIL_UNROLL + 2; q++)
				ntrip[q] += ntrip[q - 1];
			for (int l = 0; l < k; l++)
			{
				int			len = pos[l] - (l > 0 ? pos[l - 1] : 0);

				if (len > 0)
				{
					by_trips[ntrip[(len + SIL_UNROLL - 1) / SIL_UNROLL - 1]++] = l;
					npresent++;
				}
			}

			for (int r = 0; r < npresent; r++)
			{
				int			l = by_trips[r];
				int			start = l > 0 ? pos[l - 1] : 0;
				int			len = pos[l] - start;
				int			trips = (len + SIL_UNROLL - 1) / SIL_UNROLL;

				run_lab[nruns] = l;
				run_trips[nruns] = (uint8_t) trips;
				nruns++;
				memcpy(idx + nidx, sorted + start, (size_t) len);
				memset(idx + nidx + len, SIL_PAD, (size_t) (trips * SIL_UNROLL - len));
				nidx += (uint64_t) trips * SIL_UNROLL;
			}
			run_off[t * nlab + m + 1] = nruns;
		}
	}

	sp->x = x;
	sp->s = s;
	sp->d = d;
	sp->metric = metric;
	sp->labels = labels;
	sp->nlab = nlab;
	sp->ks = ks;
	sp->sum_k = sum_k;
	sp->ntiles = ntiles;
	sp->off = off;
	sp->cnt = cnt;
	sp->occupied = occupied;
	sp->idx = idx;
	sp->run_lab = run_lab;
	sp->run_trips = run_trips;
	sp->run_off = run_off;
	sp->area = area;
	*out = sp;
	return KM_OK;
}

void
km_silhouette_free(KmSilhouette *sp)
{
	if (sp != NULL)
		free(sp->area);
}

/* Silhouette values of a row range of a prepared sample; see km_quality.h. */
KmStatus
km_silhouette_prepared_rows(const KmSilhouette *sp, int64_t row_begin, int64_t row_end,
							double *out, KmError *err)
{
	const float *x = sp->x;
	int64_t		s = sp->s;
	int			d = sp->d;
	KmMetric	metric = sp->metric;
	const int32_t *labels = sp->labels;
	int			nlab = sp->nlab;
	const int  *ks = sp->ks;
	int64_t		sum_k = sp->sum_k;
	int64_t		ntiles = sp->ntiles;
	const int64_t *off = sp->off;
	const int64_t *cnt = sp->cnt;
	const int  *occupied = sp->occupied;
	const uint8_t *idx = sp->idx;
	const int32_t *run_lab = sp->run_lab;
	const uint8_t *run_trips = sp->run_trips;
	const int64_t *run_off = sp->run_off;
	size_t		bytes = SIL_ALIGN;
	char	   *area;
	char	   *cursor = NULL;	/* set by sil_area */
	KmStatus	st;
	SilLanes   *dist;			/* SIL_T + 1: distances of the current tile, then zero */
	SilLanes   *acc;			/* sum_k: per-cluster distance sums of the current block */
	SilLanes   *xi;				/* d: the current block's rows, transposed */

	if (row_begin < 0 || row_end > s || row_begin > row_end)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "silhouette: rows %lld..%lld of %lld",
					   (long long) row_begin, (long long) row_end, (long long) s);
	if (nlab == 0 || row_begin == row_end)
		return KM_OK;
	if (!sil_reserve(&bytes, SIL_T + 1, sizeof(SilLanes)) ||
		!sil_reserve(&bytes, (uint64_t) sum_k, sizeof(SilLanes)) ||
		!sil_reserve(&bytes, (uint64_t) d, sizeof(SilLanes)))
		return KM_FAIL(err, KM_ERR_NOMEM, "silhouette: scratch size overflows (s=%lld, nlab=%d)",
					   (long long) s, nlab);
	if ((st = sil_area(bytes, &area, &cursor, err)) != KM_OK)
		return st;
	dist = sil_take(&cursor, SIL_T + 1, sizeof(SilLanes));
	acc = sil_take(&cursor, (uint64_t) sum_k, sizeof(SilLanes));
	xi = sil_take(&cursor, (uint64_t) d, sizeof(SilLanes));

	memset(&dist[SIL_PAD], 0, sizeof(SilLanes));
	for (int64_t ib = row_begin; ib < row_end; ib += SIL_B)
	{
		int			nb = (int) (row_end - ib < SIL_B ? row_end - ib : SIL_B);
		const uint8_t *ix = idx;

		/* padding lanes repeat the block's first row; their results are dropped */
		for (int c = 0; c < d; c++)
			for (int b = 0; b < SIL_B; b++)
				xi[c].v[b / SIL_VLEN][b % SIL_VLEN] = (double) x[(ib + (b < nb ? b : 0)) * d + c];
		memset(acc, 0, (size_t) sum_k * sizeof(SilLanes));

		for (int64_t t = 0; t < ntiles; t++)
		{
			int64_t		t0 = t * SIL_T;
			int			tn = (int) (s - t0 < SIL_T ? s - t0 : SIL_T);

			sil_tile_distances(x, d, t0, tn, xi, metric, dist);
			for (int m = 0; m < nlab; m++)
				sil_tile_sums(dist, &ix, run_lab, run_trips, run_off[t * nlab + m],
							  run_off[t * nlab + m + 1], acc + off[m]);
		}

		for (int m = 0; m < nlab; m++)
		{
			const SilLanes *am = acc + off[m];
			const int64_t *cm = cnt + off[m];
			sil_vl		lane_lab[SIL_NV];
			sil_vd		bmin[SIL_NV];

			if (occupied[m] < 2)
			{
				/* no other cluster to compare with: undefined (scikit-learn raises) */
				for (int b = 0; b < nb; b++)
					out[(ib + b) * nlab + m] = NAN;
				continue;
			}
			for (int b = 0; b < SIL_B; b++)
			{
				lane_lab[b / SIL_VLEN][b % SIL_VLEN] = b < nb ? labels[(ib + b) * nlab + m] : -1;
				bmin[b / SIL_VLEN][b % SIL_VLEN] = INFINITY;
			}

			/* b: the smallest mean distance to another occupied cluster, all rows at once */
			for (int l = 0; l < ks[m]; l++)
			{
				double		c;

				if (cm[l] == 0)
					continue;
				c = (double) cm[l];
				for (int q = 0; q < SIL_NV; q++)
				{
					sil_vd		mean = am[l].v[q] / c;
					sil_vl		take = (mean < bmin[q]) & (lane_lab[q] != (int64_t) l);

					bmin[q] = (sil_vd) (((sil_vl) mean & take) | ((sil_vl) bmin[q] & ~take));
				}
			}

			for (int b = 0; b < nb; b++)
			{
				int			li = (int) lane_lab[b / SIL_VLEN][b % SIL_VLEN];
				int64_t		ci = cm[li];
				double		a;
				double		bb = bmin[b / SIL_VLEN][b % SIL_VLEN];
				double		den;
				double		sv = 0.0;

				/* a singleton's silhouette is 0 by definition (Rousseeuw 1987) */
				if (ci > 1)
				{
					/* the row itself adds a zero distance, hence |C| - 1 */
					a = am[li].v[b / SIL_VLEN][b % SIL_VLEN] / (double) (ci - 1);
					den = a > bb ? a : bb;
					if (den > 0.0)
						sv = (bb - a) / den;
				}
				out[(ib + b) * nlab + m] = sv;
			}
		}
	}

	free(area);
	return KM_OK;
}

/* Silhouette values of a row range for nlab labellings over one sample; see km_quality.h. */
KmStatus
km_silhouette_rows(const float *x, int64_t s, int d, KmMetric metric, const int32_t *labels,
				   int nlab, const int *ks, int64_t row_begin, int64_t row_end, double *out,
				   KmError *err)
{
	KmSilhouette *sp;
	KmStatus	st;

	if (s < 0 || d < 1 || nlab < 0 || row_begin < 0 || row_end > s || row_begin > row_end)
		return KM_FAIL(err, KM_ERR_ARGUMENT,
					   "silhouette: bad sizes (s=%lld d=%d nlab=%d rows %lld..%lld)",
					   (long long) s, d, nlab, (long long) row_begin, (long long) row_end);
	if (nlab == 0 || row_begin == row_end)
		return KM_OK;
	if ((st = km_silhouette_prepare(x, s, d, metric, labels, nlab, ks, &sp, err)) != KM_OK)
		return st;
	st = km_silhouette_prepared_rows(sp, row_begin, row_end, out, err);
	km_silhouette_free(sp);
	return st;
}

/* ---------------------------------------------------------------------------------------------
 * Row sampling.
 * ------------------------------------------------------------------------------------------- */

/* Compares two row numbers for qsort. */
static int
cmp_int64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/*
 * Floyd's algorithm keeping idx sorted, with no scratch memory: O(s^2) moves at worst, used
 * only when the hash table cannot be allocated.  Draws exactly what sample_floyd_hash draws, so
 * both return the same sample.
 */
static void
sample_floyd_sorted(int64_t n, int64_t s, KmRng *rng, int64_t *idx)
{
	int64_t		have = 0;

	for (int64_t j = n - s; j < n; j++)
	{
		int64_t		t = (int64_t) km_rng_below(rng, (uint64_t) j + 1);
		int64_t		lo = 0;
		int64_t		hi = have;

		while (lo < hi)
		{
			int64_t		mid = lo + (hi - lo) / 2;

			if (idx[mid] < t)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < have && idx[lo] == t)
			idx[have++] = j;	/* j exceeds every value drawn so far: it goes last */
		else
		{
			memmove(idx + lo + 1, idx + lo, (size_t) (have - lo) * sizeof(int64_t));
			idx[lo] = t;
			have++;
		}
	}
}

/* Floyd's algorithm with an open-addressing set of the values taken; table has mask+1 slots. */
static void
sample_floyd_hash(int64_t n, int64_t s, KmRng *rng, int64_t *idx, int64_t *table, uint64_t mask)
{
	int64_t		have = 0;
	int			shift = 64;

	for (uint64_t size = mask + 1; size > 1; size >>= 1)
		shift--;
	for (uint64_t h = 0; h <= mask; h++)
		table[h] = -1;

	for (int64_t j = n - s; j < n; j++)
	{
		int64_t		t = (int64_t) km_rng_below(rng, (uint64_t) j + 1);
		int64_t		v = t;
		bool		taken = false;
		uint64_t	h;

		/* Fibonacci hashing spreads consecutive row numbers over the table */
		for (h = shift < 64 ? ((uint64_t) t * UINT64_C(0x9E3779B97F4A7C15)) >> shift : 0;
			 table[h] != -1; h = (h + 1) & mask)
		{
			if (table[h] == t)
			{
				taken = true;
				break;
			}
		}
		if (taken)
		{
			v = j;
			/* t was taken: take j, which cannot have been drawn before */
			for (h = shift < 64 ? ((uint64_t) j * UINT64_C(0x9E3779B97F4A7C15)) >> shift : 0;
				 table[h] != -1; h = (h + 1) & mask)
				;
		}
		table[h] = v;
		idx[have++] = v;
	}
	qsort(idx, (size_t) s, sizeof(int64_t), cmp_int64);
}

/*
 * A sorted uniform sample of s distinct rows out of n.  Floyd's algorithm (Bentley & Floyd
 * 1987) needs s draws whatever n is, where selection sampling would need n.
 */
void
km_sample_rows(int64_t n, int64_t s, uint64_t seed, int64_t *idx)
{
	KmRng		rng;
	uint64_t	size = 2;
	int64_t    *table = NULL;

	if (n <= 0 || s <= 0)
		return;
	if (s >= n)
	{
		for (int64_t i = 0; i < n; i++)
			idx[i] = i;
		return;
	}
	km_rng_seed(&rng, seed);

	/* at most half full, so probes stay short */
	while (size < (uint64_t) s * 2 && size < (UINT64_C(1) << 62))
		size <<= 1;
	if (size <= SIZE_MAX / sizeof(int64_t))
		table = malloc((size_t) size * sizeof(int64_t));
	if (table != NULL)
	{
		sample_floyd_hash(n, s, &rng, idx, table, size - 1);
		free(table);
	}
	else
		sample_floyd_sorted(n, s, &rng, idx);
}

/* ---------------------------------------------------------------------------------------------
 * Knee of the inertia curve.
 * ------------------------------------------------------------------------------------------- */

/*
 * Kneedle (Satopaa et al. 2011) for a convex decreasing curve: with k and inertia normalised to
 * [0, 1], the inertia is flipped (1 - y) into a concave increasing curve and the difference
 * curve is D_i = (1 - y_i) - x_i, the height of the curve above the chord from its first to
 * its last point.  We return the index of the global maximum of D (the first such index on
 * ties, i.e. the smallest k), not the first local maximum that the paper's online detector
 * accepts after its threshold test.  Why: we have the whole curve at once (the paper's offline
 * case), and k-means inertia is noisy (local optima, repaired empty clusters), so an early
 * wiggle would be a local maximum and fool a first-maximum rule, while the sensitivity
 * parameter S that guards against that would be one more knob.  The global maximum needs no
 * parameter, always exists, and on a smooth convex curve is the same point.  The paper's
 * optional smoothing is not applied, for the same reason.
 *
 * Degenerate inputs still give one index: m == 1 gives 0; m == 2 gives D = 0 at both ends and
 * so index 0; a flat curve (all inertia equal) gives D = 1 - x, maximal at the smallest k; equal
 * ks fall back to evenly spaced x; non-finite values of D never win.
 */
int
km_knee(const int *ks, const double *inertia, int m)
{
	int			kmin;
	int			kmax;
	double		ymin = INFINITY;
	double		ymax = -INFINITY;
	int			best = -1;
	double		best_d = -INFINITY;

	if (m < 1)
		return -1;
	if (m == 1)
		return 0;

	kmin = kmax = ks[0];
	for (int i = 0; i < m; i++)
	{
		if (ks[i] < kmin)
			kmin = ks[i];
		if (ks[i] > kmax)
			kmax = ks[i];
		if (isfinite(inertia[i]))
		{
			if (inertia[i] < ymin)
				ymin = inertia[i];
			if (inertia[i] > ymax)
				ymax = inertia[i];
		}
	}

	for (int i = 0; i < m; i++)
	{
		double		xn;
		double		yn;
		double		diff;

		if (kmax > kmin)
			xn = ((double) ks[i] - kmin) / ((double) kmax - kmin);
		else
			xn = (double) i / (double) (m - 1);
		yn = ymax > ymin ? (inertia[i] - ymin) / (ymax - ymin) : 0.0;
		diff = (1.0 - yn) - xn;
		if (isfinite(diff) && diff > best_d)
		{
			best_d = diff;
			best = i;
		}
	}

	/* nothing finite to go by: the smallest k is the safest suggestion */
	if (best < 0)
	{
		best = 0;
		for (int i = 1; i < m; i++)
			if (ks[i] < ks[best])
				best = i;
	}
	return best;
}
