/*
 * test_quality.c -- tests of kernels/km_quality.c: hand-computed cases, random cases against a
 * plain reference implementation, and (with --bench) timings of km_silhouette_rows.
 *
 * Build and run from the repository root:
 *   gcc -O3 -march=native -std=gnu11 -Wall -Wextra -Werror -fno-strict-aliasing -fwrapv \
 *       -Ikernels test/engine/test_quality.c -o /tmp/test_quality -lm
 *   /tmp/test_quality            # tests; last line "N passed, M failed"
 *   /tmp/test_quality --bench    # one-thread timings of the silhouette kernel
 *
 * The kernel file is included so that its static helpers (the no-memory sampling path) can be
 * tested too; km_fail and the RNG, implemented elsewhere in the product, are defined here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#ifdef __linux__
#include <sys/resource.h>
#include <unistd.h>
#endif

#include "km_quality.c"
#include "test_util.h"

/* AddressSanitizer, as gcc says it and as clang (before 15, only this way) does */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* km_fail and the random numbers come from kernels/km_util.c, linked in. */

/* ---------------------------------------------------------------------------------------------
 * Test bookkeeping.
 * ------------------------------------------------------------------------------------------- */

static int	n_passed = 0;
static int	n_failed = 0;

/* Records a check; prints it when it fails. */
static void
check(bool ok, const char *fmt,...) __attribute__((format(printf, 2, 3)));
static void
check(bool ok, const char *fmt,...)
{
	if (ok)
		n_passed++;
	else
	{
		va_list		ap;

		n_failed++;
		printf("FAIL: ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
}

/* True when got matches want within a relative/absolute tolerance; NaN matches NaN. */
static bool
close_enough(double got, double want, double rtol, double atol)
{
	if (isnan(want) || isnan(got))
		return isnan(want) && isnan(got);
	return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Checks a value against the expected one, naming the case. */
static void
check_close(const char *what, double got, double want, double rtol, double atol)
{
	check(close_enough(got, want, rtol, atol), "%s: got %.17g, want %.17g", what, got, want);
}

/* ---------------------------------------------------------------------------------------------
 * Reference implementations: the definitions written out as plainly as possible.
 * ------------------------------------------------------------------------------------------- */

/* Euclidean distance of two float32 rows in float64. */
static double
ref_dist(const float *a, const float *b, int d)
{
	double		s2 = 0.0;

	for (int c = 0; c < d; c++)
	{
		double		diff = (double) a[c] - (double) b[c];

		s2 += diff * diff;
	}
	return sqrt(s2);
}

/* Squared Euclidean distance of two float64 points. */
static double
ref_sq_dist(const double *p, const double *q, int d)
{
	double		s2 = 0.0;

	for (int c = 0; c < d; c++)
		s2 += (p[c] - q[c]) * (p[c] - q[c]);
	return s2;
}

/* Cosine distance 1 - a.b / (|a| |b|) of two float32 rows in float64, from the definition. */
static double
ref_cos_dist(const float *a, const float *b, int d)
{
	double		ab = 0.0,
				aa = 0.0,
				bb = 0.0;

	for (int c = 0; c < d; c++)
	{
		ab += (double) a[c] * b[c];
		aa += (double) a[c] * a[c];
		bb += (double) b[c] * b[c];
	}
	return 1.0 - ab / (sqrt(aa) * sqrt(bb));
}

/* Per-row silhouette of one labelling (labels[i * stride]) under a distance, from the definition. */
static void
ref_silhouette_by(const float *x, int64_t n, int d, const int32_t *labels, int stride, int k,
				  double (*dist) (const float *, const float *, int), double *out)
{
	double	   *sums = malloc(sizeof(double) * k);
	int64_t    *cnt = calloc(k, sizeof(int64_t));
	int			occ = 0;

	for (int64_t i = 0; i < n; i++)
		cnt[labels[i * stride]]++;
	for (int l = 0; l < k; l++)
		occ += cnt[l] > 0;
	for (int64_t i = 0; i < n; i++)
	{
		int			li = labels[i * stride];
		double		a;
		double		b = INFINITY;

		if (occ < 2)
		{
			out[i] = NAN;
			continue;
		}
		for (int l = 0; l < k; l++)
			sums[l] = 0.0;
		for (int64_t j = 0; j < n; j++)
			if (j != i)
				sums[labels[j * stride]] += dist(x + i * d, x + j * d, d);
		if (cnt[li] == 1)
		{
			out[i] = 0.0;
			continue;
		}
		a = sums[li] / (double) (cnt[li] - 1);
		for (int l = 0; l < k; l++)
			if (l != li && cnt[l] > 0 && sums[l] / (double) cnt[l] < b)
				b = sums[l] / (double) cnt[l];
		out[i] = fmax(a, b) > 0 ? (b - a) / fmax(a, b) : 0.0;
	}
	free(sums);
	free(cnt);
}

/* The Euclidean silhouette. */
static void
ref_silhouette(const float *x, int64_t n, int d, const int32_t *labels, int stride, int k,
			   double *out)
{
	ref_silhouette_by(x, n, d, labels, stride, k, ref_dist, out);
}

/*
 * The largest difference between km_silhouette_rows under metric on the rows given (two
 * labellings: lab is n x 2) and the definition with dist on the rows raw.
 */
static double
silhouette_vs_definition(const char *what, const float *given, const float *raw, int64_t n,
						 int d, KmMetric metric, const int32_t *lab, const int *ks,
						 double (*dist) (const float *, const float *, int))
{
	double	   *out = malloc(sizeof(double) * n * 2);
	double	   *ref = malloc(sizeof(double) * n);
	double		worst = 0.0;
	KmError		err = {0};
	KmStatus	st = km_silhouette_rows(given, n, d, metric, lab, 2, ks, 0, n, out, &err);

	check(st == KM_OK, "%s silhouette: status %d (%s)", what, st, err.message);
	for (int m = 0; m < 2; m++)
	{
		ref_silhouette_by(raw, n, d, lab + m, 2, ks[m], dist, ref);
		for (int64_t i = 0; i < n; i++)
			worst = fmax(worst, fabs(out[i * 2 + m] - ref[i]));
	}
	free(out);
	free(ref);
	return worst;
}

/*
 * KM_METRIC_COSINE: on rows scaled to unit length, the silhouette of 1 - cos, against the
 * definition on the rows as they were (float64, no scaling); the unit rows carry float32
 * rounding, hence the tolerance.
 */
static void
test_cosine_silhouette(void)
{
	KmRng		rng;
	int64_t		n = 300;
	int			d = 7,
				ks[2] = {3, 8};
	float	   *x = malloc(sizeof(float) * n * d);
	float	   *u = malloc(sizeof(float) * n * d);
	int32_t    *lab = malloc(sizeof(int32_t) * n * 2);
	double		worst;

	km_rng_seed(&rng, 77);
	for (int64_t i = 0; i < n; i++)
	{
		double		norm = 0.0;

		for (int c = 0; c < d; c++)
		{
			x[i * d + c] = (float) (km_rng_uniform(&rng) * 4.0 - 1.0);
			norm += (double) x[i * d + c] * x[i * d + c];
		}
		for (int c = 0; c < d; c++)
			u[i * d + c] = (float) (x[i * d + c] / sqrt(norm));
		lab[i * 2] = (int32_t) km_rng_below(&rng, 3);
		lab[i * 2 + 1] = (int32_t) km_rng_below(&rng, 8);
	}
	worst = silhouette_vs_definition("cosine", u, x, n, d, KM_METRIC_COSINE, lab, ks, ref_cos_dist);
	check(worst <= 1e-6, "cosine silhouette: differs from the definition by %.2e", worst);
	free(x);
	free(u);
	free(lab);
}

/* 1 - IoU of boxes (w, h) at a common corner, in float64 from the definition. */
static double
ref_iou_dist(const float *a, const float *b, int d)
{
	double		inter = fmin(a[0], b[0]) * fmin(a[1], b[1]);

	(void) d;
	return 1.0 - inter / ((double) a[0] * a[1] + (double) b[0] * b[1] - inter);
}

/* KM_METRIC_IOU: the silhouette of 1 - IoU over boxes, against the definition. */
static void
test_iou_silhouette(void)
{
	KmRng		rng;
	int64_t		n = 257;
	int			ks[2] = {2, 9};
	float	   *x = malloc(sizeof(float) * n * 2);
	int32_t    *lab = malloc(sizeof(int32_t) * n * 2);
	double		worst;

	km_rng_seed(&rng, 78);
	for (int64_t i = 0; i < n; i++)
	{
		x[i * 2] = (float) (1.0 + 99.0 * km_rng_uniform(&rng));
		x[i * 2 + 1] = (float) (1.0 + 99.0 * km_rng_uniform(&rng));
		lab[i * 2] = (int32_t) km_rng_below(&rng, 2);
		lab[i * 2 + 1] = (int32_t) km_rng_below(&rng, 9);
	}
	worst = silhouette_vs_definition("iou", x, x, n, 2, KM_METRIC_IOU, lab, ks, ref_iou_dist);
	check(worst <= 1e-12, "iou silhouette: differs from the definition by %.2e", worst);
	free(x);
	free(lab);
}

/* Cluster counts and float64 means of one labelling, two passes over the rows. */
static void
ref_means(const float *x, int64_t n, int d, const int32_t *labels, int stride, int k,
		  int64_t *cnt, double *means)
{
	memset(cnt, 0, sizeof(int64_t) * k);
	memset(means, 0, sizeof(double) * k * d);
	for (int64_t i = 0; i < n; i++)
	{
		int			l = labels[i * stride];

		cnt[l]++;
		for (int c = 0; c < d; c++)
			means[l * d + c] += x[i * d + c];
	}
	for (int l = 0; l < k; l++)
		for (int c = 0; c < d; c++)
			if (cnt[l] > 0)
				means[l * d + c] /= (double) cnt[l];
}

/* Calinski-Harabasz straight from the rows (overall mean from the rows, not the clusters). */
static double
ref_ch(const float *x, int64_t n, int d, const int32_t *labels, int stride, int k)
{
	int64_t    *cnt = malloc(sizeof(int64_t) * k);
	double	   *means = malloc(sizeof(double) * k * d);
	double	   *mu = calloc(d, sizeof(double));
	double		extra = 0.0;
	double		intra = 0.0;
	int			q = 0;
	double		r;

	ref_means(x, n, d, labels, stride, k, cnt, means);
	for (int64_t i = 0; i < n; i++)
		for (int c = 0; c < d; c++)
			mu[c] += x[i * d + c];
	for (int c = 0; c < d; c++)
		mu[c] /= (double) n;
	for (int l = 0; l < k; l++)
	{
		if (cnt[l] == 0)
			continue;
		q++;
		extra += cnt[l] * ref_sq_dist(means + l * d, mu, d);
	}
	for (int64_t i = 0; i < n; i++)
	{
		int			l = labels[i * stride];

		for (int c = 0; c < d; c++)
			intra += (x[i * d + c] - means[l * d + c]) * (x[i * d + c] - means[l * d + c]);
	}
	if (q < 2 || q > n - 1)
		r = NAN;
	else if (intra == 0.0)
		r = 1.0;
	else
		r = extra * (n - q) / (intra * (q - 1));
	free(cnt);
	free(means);
	free(mu);
	return r;
}

/* Davies-Bouldin straight from the rows. */
static double
ref_db(const float *x, int64_t n, int d, const int32_t *labels, int stride, int k)
{
	int64_t    *cnt = malloc(sizeof(int64_t) * k);
	double	   *means = malloc(sizeof(double) * k * d);
	double	   *intra = calloc(k, sizeof(double));
	double		total = 0.0;
	double		maxintra = 0.0;
	double		maxcd = 0.0;
	int			q = 0;

	ref_means(x, n, d, labels, stride, k, cnt, means);
	for (int64_t i = 0; i < n; i++)
	{
		int			l = labels[i * stride];
		double		s2 = 0.0;

		for (int c = 0; c < d; c++)
			s2 += (x[i * d + c] - means[l * d + c]) * (x[i * d + c] - means[l * d + c]);
		intra[l] += sqrt(s2);
	}
	for (int l = 0; l < k; l++)
		if (cnt[l] > 0)
		{
			q++;
			intra[l] /= cnt[l];
			maxintra = fmax(maxintra, intra[l]);
		}
	for (int a = 0; a < k; a++)
		for (int b = 0; b < k; b++)
			if (cnt[a] > 0 && cnt[b] > 0)
				maxcd = fmax(maxcd, sqrt(ref_sq_dist(means + a * d, means + b * d, d)));
	if (q < 2 || q > n - 1)
		total = NAN;
	else if (maxintra <= 1e-8 || maxcd <= 1e-8)
		total = 0.0;
	else
	{
		for (int a = 0; a < k; a++)
		{
			double		worst = 0.0;

			if (cnt[a] == 0)
				continue;
			for (int b = 0; b < k; b++)
			{
				double		s2;

				if (b == a || cnt[b] == 0)
					continue;
				s2 = ref_sq_dist(means + a * d, means + b * d, d);
				if (s2 > 0)
					worst = fmax(worst, (intra[a] + intra[b]) / sqrt(s2));
			}
			total += worst;
		}
		total /= q;
	}
	free(cnt);
	free(means);
	free(intra);
	return total;
}

/*
 * The product's path for CH and DB: means from the rows, then the scatter pass in batches of
 * `batch` rows, then the closed forms.
 */
static void
kernel_ch_db(const float *x, int64_t n, int d, const int32_t *labels, int stride, int k,
			 int64_t batch, double *ch, double *db)
{
	int64_t    *cnt = malloc(sizeof(int64_t) * k);
	double	   *means = malloc(sizeof(double) * k * d);
	double	   *sq = calloc(k, sizeof(double));
	double	   *lin = calloc(k, sizeof(double));

	ref_means(x, n, d, labels, stride, k, cnt, means);
	for (int64_t i0 = 0; i0 < n; i0 += batch)
	{
		int64_t		nb = n - i0 < batch ? n - i0 : batch;

		km_quality_scatter(x + i0 * d, nb, d, labels + i0 * stride, stride, means, sq, lin);
	}
	*ch = km_calinski_harabasz(n, k, d, cnt, means, sq);
	*db = km_davies_bouldin(k, d, cnt, means, lin);
	free(cnt);
	free(means);
	free(sq);
	free(lin);
}

/* Mean over rows of one labelling's silhouette values, in row order. */
static double
mean_column(const double *v, int64_t n, int stride, int m)
{
	double		s = 0.0;

	for (int64_t i = 0; i < n; i++)
		s += v[i * stride + m];
	return s / (double) n;
}

/* ---------------------------------------------------------------------------------------------
 * Hand-computed cases.
 * ------------------------------------------------------------------------------------------- */

/* Runs one 1-D case through every score and compares with hand-computed values. */
static void
hand_case(const char *name, const float *x, int n, const int32_t *lab, int k,
		  double want_ch, double want_db, const double *want_sil, double want_mean)
{
	double		ch;
	double		db;
	double	   *sil = malloc(sizeof(double) * n);
	KmError		err = {0};
	KmStatus	st;
	char		what[128];

	kernel_ch_db(x, n, 1, lab, 1, k, 1, &ch, &db);
	snprintf(what, sizeof(what), "%s: Calinski-Harabasz", name);
	check_close(what, ch, want_ch, 1e-14, 0);
	snprintf(what, sizeof(what), "%s: Davies-Bouldin", name);
	check_close(what, db, want_db, 1e-14, 0);
	st = km_silhouette_rows(x, n, 1, KM_METRIC_EUCLIDEAN, lab, 1, &k, 0, n, sil, &err);
	check(st == KM_OK, "%s: silhouette status %d (%s)", name, st, err.message);
	for (int i = 0; i < n; i++)
	{
		snprintf(what, sizeof(what), "%s: silhouette of row %d", name, i);
		check_close(what, sil[i], want_sil[i], 1e-14, 0);
	}
	snprintf(what, sizeof(what), "%s: mean silhouette", name);
	check_close(what, mean_column(sil, n, 1, 0), want_mean, 1e-14, 0);
	free(sil);
}

/* Small cases worked out by hand; the working is in the comments. */
static void
test_hand_cases(void)
{
	/*
	 * {0, 1 | 10, 11}: means 0.5 and 10.5, overall mean 5.5.
	 * CH: between B = 2 * 5^2 + 2 * 5^2 = 100; within W = 4 * 0.25 = 1; n = 4, q = 2:
	 *     CH = (100 / 1) / (1 / 2) = 200.
	 * DB: S = mean distance to centroid = 0.5 in both; M = 10; DB = (0.5 + 0.5) / 10 = 0.1.
	 * Silhouette: row 0: a = 1, b = (10 + 11) / 2 = 10.5, s = 9.5 / 10.5 = 19/21;
	 *             row 1: a = 1, b = (9 + 10) / 2 = 9.5, s = 8.5 / 9.5 = 17/19;
	 *             rows 10, 11 mirror rows 1, 0.  Mean = (19/21 + 17/19) / 2 = 359/399
	 *             (scikit-learn: 0.8997493734335839).
	 */
	{
		float		x[] = {0, 1, 10, 11};
		int32_t		lab[] = {0, 0, 1, 1};
		double		sil[] = {19.0 / 21, 17.0 / 19, 17.0 / 19, 19.0 / 21};

		hand_case("{0,1|10,11}", x, 4, lab, 2, 200.0, 0.1, sil, 359.0 / 399);
	}

	/*
	 * {0, 2, 4 | 10}: a singleton.  Means 2 and 10, overall mean 4.
	 * CH: B = 3 * 2^2 + 1 * 6^2 = 48; W = 4 + 0 + 4 + 0 = 8; CH = (48 / 1) / (8 / 2) = 12.
	 * DB: S0 = (2 + 0 + 2) / 3 = 4/3, S1 = 0, M = 8; both ratios (4/3) / 8 = 1/6; DB = 1/6.
	 * Silhouette: row 0: a = (2 + 4) / 2 = 3, b = 10, s = 0.7; row 2: a = 2, b = 8, s = 0.75;
	 *             row 4: a = 3, b = 6, s = 0.5; row 10 is alone: s = 0.  Mean = 0.4875.
	 */
	{
		float		x[] = {0, 2, 4, 10};
		int32_t		lab[] = {0, 0, 0, 1};
		double		sil[] = {0.7, 0.75, 0.5, 0.0};

		hand_case("{0,2,4|10}", x, 4, lab, 2, 12.0, 1.0 / 6, sil, 0.4875);
	}

	/*
	 * {0, 0 | 5, 5}: zero within-cluster dispersion.  CH = 1.0 by scikit-learn's convention,
	 * DB = 0.0 (all S are 0); silhouette: a = 0, b = 5, s = 1 for every row.
	 */
	{
		float		x[] = {0, 0, 5, 5};
		int32_t		lab[] = {0, 0, 1, 1};
		double		sil[] = {1, 1, 1, 1};

		hand_case("{0,0|5,5}", x, 4, lab, 2, 1.0, 0.0, sil, 1.0);
	}

	/*
	 * {-1, 1 | 0, 0}: both centroids at 0.  CH: B = 0, W = 2, CH = 0.  DB = 0.0 (every centroid
	 * distance is 0).  Silhouette: row -1: a = 2, b = (1 + 1) / 2 = 1, s = (1 - 2) / 2 = -0.5;
	 * row 1 the same; rows 0: a = 0, b = 1, s = 1.  Mean = 0.25.
	 */
	{
		float		x[] = {-1, 1, 0, 0};
		int32_t		lab[] = {0, 0, 1, 1};
		double		sil[] = {-0.5, -0.5, 1, 1};

		hand_case("{-1,1|0,0}", x, 4, lab, 2, 0.0, 0.0, sil, 0.25);
	}

	/*
	 * {-1, 1 | 0, 0 | 10, 12}: clusters 0 and 1 share centroid 0, so their pair is skipped
	 * (scikit-learn's infinite distance).  S = 1, 0, 1; centroids 0, 0, 11.
	 * DB: cluster 0: max((1 + 1) / 11) = 2/11; cluster 1: (0 + 1) / 11 = 1/11;
	 *     cluster 2: max(2/11, 1/11) = 2/11; DB = (5/11) / 3 = 5/33.
	 * CH: overall mean 22/6 = 11/3; B = 2 (11/3)^2 + 2 (11/3)^2 + 2 (22/3)^2 = 1452/9 = 484/3;
	 *     W = 2 + 0 + 2 = 4; CH = (484/3 / 2) / (4 / 3) = 60.5.
	 * Silhouette: row -1: a = 2, to {0,0}: 1, to {10,12}: 12, b = 1, s = -0.5;
	 *             row 1: a = 2, b = min(1, 10) = 1, s = -0.5;
	 *             rows 0: a = 0, b = min(1, 11) = 1, s = 1;
	 *             row 10: a = 2, b = min((11 + 9) / 2, 10) = 10, s = 0.8;
	 *             row 12: a = 2, b = min((13 + 11) / 2, 12) = 12, s = 10/12 = 5/6.
	 */
	{
		float		x[] = {-1, 1, 0, 0, 10, 12};
		int32_t		lab[] = {0, 0, 1, 1, 2, 2};
		double		sil[] = {-0.5, -0.5, 1, 1, 0.8, 5.0 / 6};

		hand_case("{-1,1|0,0|10,12}", x, 6, lab, 3, 60.5, 5.0 / 33, sil,
				  (-0.5 - 0.5 + 1 + 1 + 0.8 + 5.0 / 6) / 6);
	}

	/*
	 * The first case with k = 3 and cluster 1 never used: an empty cluster is ignored, as
	 * scikit-learn never sees it, so every score equals the k = 2 one.
	 */
	{
		float		x[] = {0, 1, 10, 11};
		int32_t		lab[] = {0, 0, 2, 2};
		double		sil[] = {19.0 / 21, 17.0 / 19, 17.0 / 19, 19.0 / 21};

		hand_case("{0,1|-|10,11}", x, 4, lab, 3, 200.0, 0.1, sil, 359.0 / 399);
	}

	/*
	 * {0, 0 | 0}: a = b = 0 for rows 0 and 1 (scikit-learn's 0/0 becomes 0), row 2 alone: all 0.
	 * CH: W = 0 gives 1.0; DB: all S = 0 gives 0.0.
	 */
	{
		float		x[] = {0, 0, 0};
		int32_t		lab[] = {0, 0, 1};
		double		sil[] = {0, 0, 0};

		hand_case("{0,0|0}", x, 3, lab, 2, 1.0, 0.0, sil, 0.0);
	}

	/* One occupied cluster: every score is undefined (scikit-learn raises), NaN here. */
	{
		float		x[] = {0, 1, 10, 11};
		int32_t		lab[] = {0, 0, 0, 0};
		double		sil[] = {NAN, NAN, NAN, NAN};

		hand_case("{0,1,10,11}", x, 4, lab, 1, NAN, NAN, sil, NAN);
	}

	/* As many clusters as rows: scikit-learn raises, NaN for CH and DB; singletons give 0. */
	{
		float		x[] = {0, 1, 10};
		int32_t		lab[] = {0, 1, 2};
		double		sil[] = {0, 0, 0};

		hand_case("{0|1|10}", x, 3, lab, 3, NAN, NAN, sil, 0.0);
	}

	/*
	 * 2-D: {(0,0), (3,4)} and {(10,0), (10,2)}, so distances 3-4-5 show the Euclidean norm.
	 * Means (1.5, 2) and (10, 1); overall (5.75, 1.5).
	 * CH: B = 2 (4.25^2 + 0.5^2) + 2 (4.25^2 + 0.5^2) = 4 * 18.3125 = 73.25;
	 *     W = 2 * 6.25 + 2 * 1 = 14.5; CH = 73.25 / (14.5 / 2) = 146.5 / 14.5 = 293/29.
	 * DB: S = 2.5, 1; M = sqrt(8.5^2 + 1^2) = sqrt(73.25); DB = 3.5 / sqrt(73.25).
	 */
	{
		float		x[] = {0, 0, 3, 4, 10, 0, 10, 2};
		int32_t		lab[] = {0, 0, 1, 1};
		double		ch,
					db;

		kernel_ch_db(x, 4, 2, lab, 1, 2, 3, &ch, &db);
		check_close("2-D: Calinski-Harabasz", ch, 293.0 / 29, 1e-14, 0);
		check_close("2-D: Davies-Bouldin", db, 3.5 / sqrt(73.25), 1e-14, 0);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Random cases against the reference.
 * ------------------------------------------------------------------------------------------- */

/* Random data in a few Gaussian-ish blobs, labels either by blob or uniformly at random. */
static void
random_data(KmRng *rng, int64_t n, int d, float *x, int32_t *lab, int nlab, const int *ks,
			bool by_blob)
{
	for (int64_t i = 0; i < n; i++)
	{
		int			blob = (int) km_rng_below(rng, 5);

		for (int c = 0; c < d; c++)
		{
			double		u = km_rng_uniform(rng) + km_rng_uniform(rng) + km_rng_uniform(rng) - 1.5;

			x[i * d + c] = (float) (blob * 3.0 * ((c + blob) % 2) + u);
		}
		for (int m = 0; m < nlab; m++)
			lab[i * nlab + m] = by_blob ? (int32_t) ((blob + m) % ks[m])
				: (int32_t) km_rng_below(rng, (uint64_t) ks[m]);
	}
}

/* Silhouette of many labellings against the reference, with several row splits. */
static void
test_random_silhouette(void)
{
	KmRng		rng;
	struct
	{
		int64_t		n;
		int			d;
		int			nlab;
		int			kmax;
		bool		by_blob;
	}			cases[] = {
		{1, 3, 1, 1, false},
		{2, 3, 2, 2, false},
		{7, 1, 3, 4, false},
		{40, 2, 5, 6, true},
		{255, 10, 4, 9, false},
		{256, 10, 4, 9, true},
		{257, 10, 4, 9, false},
		{300, 3, 12, 300, false},	/* k up to n: empty clusters, singletons */
		{613, 10, 47, 49, false},
		{700, 17, 6, 20, true},
		{1100, 10, 47, 49, true},
	};

	km_rng_seed(&rng, 42);
	for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
	{
		int64_t		n = cases[ci].n;
		int			d = cases[ci].d;
		int			nlab = cases[ci].nlab;
		float	   *x = malloc(sizeof(float) * n * d);
		int32_t    *lab = malloc(sizeof(int32_t) * n * nlab);
		int		   *ks = malloc(sizeof(int) * nlab);
		double	   *out = malloc(sizeof(double) * n * nlab);
		double	   *out2 = malloc(sizeof(double) * n * nlab);
		double	   *ref = malloc(sizeof(double) * n);
		KmError		err = {0};
		KmStatus	st;
		int			bad = 0;
		int			diffsplit = 0;
		double		worst = 0.0;

		for (int m = 0; m < nlab; m++)
			ks[m] = 1 + (int) km_rng_below(&rng, (uint64_t) cases[ci].kmax);
		if (nlab > 1)
			ks[nlab - 1] = cases[ci].kmax;
		random_data(&rng, n, d, x, lab, nlab, ks, cases[ci].by_blob);

		st = km_silhouette_rows(x, n, d, KM_METRIC_EUCLIDEAN, lab, nlab, ks, 0, n, out, &err);
		check(st == KM_OK, "random silhouette case %zu: status %d (%s)", ci, st, err.message);

		/* split the rows into odd pieces as threads would: results must be bit-identical */
		for (int64_t r0 = 0; r0 < n;)
		{
			int64_t		r1 = r0 + 1 + (int64_t) km_rng_below(&rng, 37);

			if (r1 > n)
				r1 = n;
			st = km_silhouette_rows(x, n, d, KM_METRIC_EUCLIDEAN, lab, nlab, ks, r0, r1, out2, &err);
			if (st != KM_OK)
				bad++;
			r0 = r1;
		}
		for (int64_t i = 0; i < n * nlab; i++)
			if (memcmp(&out[i], &out2[i], sizeof(double)) != 0)
				diffsplit++;
		check(diffsplit == 0 && bad == 0,
			  "random silhouette case %zu: %d values change with the row split", ci, diffsplit);

		for (int m = 0; m < nlab; m++)
		{
			ref_silhouette(x, n, d, lab + m, nlab, ks[m], ref);
			for (int64_t i = 0; i < n; i++)
			{
				double		got = out[i * nlab + m];

				if (!close_enough(got, ref[i], 1e-12, 1e-13))
				{
					if (bad < 5)
						printf("  case %zu labelling %d (k=%d) row %lld: got %.17g want %.17g\n",
							   ci, m, ks[m], (long long) i, got, ref[i]);
					bad++;
				}
				else if (!isnan(ref[i]))
					worst = fmax(worst, fabs(got - ref[i]));
			}
		}
		check(bad == 0, "random silhouette case %zu (n=%lld d=%d nlab=%d): %d rows differ "
			  "from the reference", ci, (long long) n, d, nlab, bad);
		if (bad == 0)
			printf("ok: silhouette n=%lld d=%d nlab=%d kmax=%d, max |diff| %.2g\n",
				   (long long) n, d, nlab, cases[ci].kmax, worst);
		free(x);
		free(lab);
		free(ks);
		free(out);
		free(out2);
		free(ref);
	}
}

/* Calinski-Harabasz and Davies-Bouldin against the reference on random data. */
static void
test_random_ch_db(void)
{
	KmRng		rng;

	km_rng_seed(&rng, 7);
	for (int rep = 0; rep < 40; rep++)
	{
		int64_t		n = 3 + (int64_t) km_rng_below(&rng, 3000);
		int			d = 1 + (int) km_rng_below(&rng, 20);
		int			nlab = 3;
		int			ks[3];
		float	   *x = malloc(sizeof(float) * n * d);
		int32_t    *lab = malloc(sizeof(int32_t) * n * nlab);
		char		what[160];

		for (int m = 0; m < nlab; m++)
			ks[m] = 1 + (int) km_rng_below(&rng, rep % 4 == 0 ? (uint64_t) n : 50);
		random_data(&rng, n, d, x, lab, nlab, ks, rep % 2 == 0);
		for (int m = 0; m < nlab; m++)
		{
			double		ch,
						db;
			int64_t		batch = 1 + (int64_t) km_rng_below(&rng, (uint64_t) n);

			/* labels interleaved with stride nlab, scattered in random batches */
			kernel_ch_db(x, n, d, lab + m, nlab, ks[m], batch, &ch, &db);
			snprintf(what, sizeof(what), "random CH rep %d labelling %d (n=%lld d=%d k=%d)",
					 rep, m, (long long) n, d, ks[m]);
			check_close(what, ch, ref_ch(x, n, d, lab + m, nlab, ks[m]), 1e-10, 0);
			snprintf(what, sizeof(what), "random DB rep %d labelling %d (n=%lld d=%d k=%d)",
					 rep, m, (long long) n, d, ks[m]);
			check_close(what, db, ref_db(x, n, d, lab + m, nlab, ks[m]), 1e-10, 0);
		}
		free(x);
		free(lab);
	}
}

/* The scatter pass gives the same bits however the rows are batched. */
static void
test_scatter_batches(void)
{
	KmRng		rng;
	int64_t		n = 5000;
	int			d = 10;
	int			k = 13;
	float	   *x = malloc(sizeof(float) * n * d);
	int32_t    *lab = malloc(sizeof(int32_t) * n);
	double	   *means = malloc(sizeof(double) * k * d);
	int64_t    *cnt = malloc(sizeof(int64_t) * k);
	double		sq1[13] = {0},
				lin1[13] = {0},
				sq2[13] = {0},
				lin2[13] = {0};

	km_rng_seed(&rng, 99);
	random_data(&rng, n, d, x, lab, 1, &k, false);
	ref_means(x, n, d, lab, 1, k, cnt, means);
	km_quality_scatter(x, n, d, lab, 1, means, sq1, lin1);
	for (int64_t i0 = 0; i0 < n;)
	{
		int64_t		nb = 1 + (int64_t) km_rng_below(&rng, 700);

		if (nb > n - i0)
			nb = n - i0;
		km_quality_scatter(x + i0 * d, nb, d, lab + i0, 1, means, sq2, lin2);
		i0 += nb;
	}
	check(memcmp(sq1, sq2, sizeof(sq1)) == 0 && memcmp(lin1, lin2, sizeof(lin1)) == 0,
		  "scatter: batching changes the sums");
	free(x);
	free(lab);
	free(means);
	free(cnt);
}

/* Bad arguments and bad labels are reported, not crashed on. */
static void
test_silhouette_errors(void)
{
	float		x[] = {0, 1, 2, 3};
	int32_t		lab[] = {0, 1, 0, 2};
	int			k2 = 2;
	int			k0 = 0;
	double		out[4];
	KmError		err = {0};

	check(km_silhouette_rows(x, 4, 1, KM_METRIC_EUCLIDEAN, lab, 1, &k2, 0, 4, out, &err) == KM_ERR_ARGUMENT &&
		  err.status == KM_ERR_ARGUMENT && strstr(err.message, "label 2") != NULL,
		  "silhouette: label out of range not reported (%s)", err.message);
	check(km_silhouette_rows(x, 4, 1, KM_METRIC_EUCLIDEAN, lab, 1, &k0, 0, 4, out, NULL) == KM_ERR_ARGUMENT,
		  "silhouette: k = 0 not reported");
	check(km_silhouette_rows(x, 4, 1, KM_METRIC_EUCLIDEAN, lab, 1, &k2, 2, 5, out, NULL) == KM_ERR_ARGUMENT,
		  "silhouette: row range past s not reported");
	check(km_silhouette_rows(x, 4, 1, KM_METRIC_EUCLIDEAN, lab, 1, &k2, 3, 2, out, NULL) == KM_ERR_ARGUMENT,
		  "silhouette: reversed row range not reported");
	check(km_silhouette_rows(x, 4, 0, KM_METRIC_EUCLIDEAN, lab, 1, &k2, 0, 4, out, NULL) == KM_ERR_ARGUMENT,
		  "silhouette: d = 0 not reported");
	check(km_silhouette_rows(x, 4, 1, KM_METRIC_EUCLIDEAN, lab, 0, &k2, 0, 4, out, NULL) == KM_OK,
		  "silhouette: nlab = 0 should be a no-op");
	check(km_silhouette_rows(x, 4, 1, KM_METRIC_EUCLIDEAN, lab, 1, &k2, 2, 2, out, NULL) == KM_OK,
		  "silhouette: an empty row range should be a no-op");
	check(km_silhouette_rows(x, 0, 1, KM_METRIC_EUCLIDEAN, lab, 1, &k2, 0, 0, out, NULL) == KM_OK,
		  "silhouette: an empty sample should be a no-op");
}

/*
 * Out of memory is reported as KM_ERR_NOMEM, with nothing leaked: the address space is capped
 * just above what the inputs use, so the scratch allocation fails.  Linux only, and not under
 * AddressSanitizer, which needs a huge address space of its own.
 */
static void
test_silhouette_nomem(void)
{
#if defined(__linux__) && !UNDER_ASAN
	int64_t		s = 200000;
	int			nlab = 47;
	int			d = 2;
	int			ks[47];
	float	   *x = calloc((size_t) s * d, sizeof(float));
	int32_t    *lab = calloc((size_t) s * nlab, sizeof(int32_t));
	double		out[8];
	struct rlimit old;
	struct rlimit cap;
	long		pages = 0;
	FILE	   *f = fopen("/proc/self/statm", "r");
	KmError		err = {0};
	KmStatus	st;

	for (int m = 0; m < nlab; m++)
		ks[m] = 3 + m;
	if (f == NULL || fscanf(f, "%ld", &pages) != 1 || x == NULL || lab == NULL ||
		getrlimit(RLIMIT_AS, &old) != 0)
	{
		printf("skipped: out-of-memory test (cannot read the process size)\n");
		if (f)
			fclose(f);
		free(x);
		free(lab);
		return;
	}
	fclose(f);
	cap = old;
	cap.rlim_cur = (rlim_t) pages * (rlim_t) sysconf(_SC_PAGESIZE) + (rlim_t) 16 * 1024 * 1024;
	if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < cap.rlim_cur)
		cap.rlim_cur = old.rlim_cur;
	if (setrlimit(RLIMIT_AS, &cap) != 0)
	{
		printf("skipped: out-of-memory test (cannot cap the address space)\n");
		free(x);
		free(lab);
		return;
	}
	st = km_silhouette_rows(x, s, d, KM_METRIC_EUCLIDEAN, lab, nlab, ks, 0, 8, out, &err);
	setrlimit(RLIMIT_AS, &old);
	check(st == KM_ERR_NOMEM && err.status == KM_ERR_NOMEM,
		  "silhouette: scratch allocation failure gave status %d (%s)", st, err.message);
	free(x);
	free(lab);
#elif UNDER_ASAN
	printf("skipped: out-of-memory test (AddressSanitizer needs more address space than the cap)\n");
#endif
}

/* Scores with an empty cluster in the middle must not crash and must ignore it. */
static void
test_empty_clusters(void)
{
	float		x[] = {0, 1, 10, 11, 20, 22};
	int32_t		lab3[] = {0, 0, 2, 2, 4, 4};
	int32_t		lab_dense[] = {0, 0, 1, 1, 2, 2};
	double		ch1,
				db1,
				ch2,
				db2;

	kernel_ch_db(x, 6, 1, lab3, 1, 5, 2, &ch1, &db1);
	kernel_ch_db(x, 6, 1, lab_dense, 1, 3, 2, &ch2, &db2);
	check(ch1 == ch2 && db1 == db2, "empty clusters: CH %g/%g DB %g/%g", ch1, ch2, db1, db2);
}

/* ---------------------------------------------------------------------------------------------
 * Sampling and knee.
 * ------------------------------------------------------------------------------------------- */

/* Sorted, distinct, in range, deterministic, and the same with or without scratch memory. */
static void
test_sample_rows(void)
{
	struct
	{
		int64_t		n;
		int64_t		s;
	}			cases[] = {{1, 1}, {10, 3}, {10, 9}, {10, 10}, {10, 20}, {1000, 1},
	{100000, 11346}, {(int64_t) 1 << 40, 2000}, {50000, 49999}};
	int64_t    *hist = calloc(20, sizeof(int64_t));
	bool		uniform = true;

	for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
	{
		int64_t		n = cases[ci].n;
		int64_t		s = cases[ci].s < n ? cases[ci].s : n;
		int64_t    *a = malloc(sizeof(int64_t) * cases[ci].s);
		int64_t    *b = malloc(sizeof(int64_t) * cases[ci].s);
		int64_t    *c = malloc(sizeof(int64_t) * cases[ci].s);
		bool		ok = true;
		KmRng		rng;

		km_sample_rows(n, cases[ci].s, 12345, a);
		km_sample_rows(n, cases[ci].s, 12345, b);
		for (int64_t i = 0; i < s; i++)
			ok &= a[i] >= 0 && a[i] < n && (i == 0 || a[i] > a[i - 1]) && a[i] == b[i];
		check(ok, "sample_rows(n=%lld, s=%lld): not a sorted deterministic sample",
			  (long long) n, (long long) cases[ci].s);
		if (s < n)
		{
			km_rng_seed(&rng, 12345);
			sample_floyd_sorted(n, s, &rng, c);
			check(memcmp(a, c, sizeof(int64_t) * s) == 0,
				  "sample_rows(n=%lld, s=%lld): no-memory path draws another sample",
				  (long long) n, (long long) s);
			km_sample_rows(n, cases[ci].s, 54321, b);
			check(memcmp(a, b, sizeof(int64_t) * s) != 0 || s == 0,
				  "sample_rows(n=%lld, s=%lld): seed has no effect", (long long) n, (long long) s);
		}
		free(a);
		free(b);
		free(c);
	}

	/* each of 20 rows drawn 3 at a time, 20000 seeds: expect 3000 each, sd about 51 */
	for (uint64_t seed = 0; seed < 20000; seed++)
	{
		int64_t		a[3];

		km_sample_rows(20, 3, seed, a);
		for (int i = 0; i < 3; i++)
			hist[a[i]]++;
	}
	for (int r = 0; r < 20; r++)
		if (llabs(hist[r] - 3000) > 300)
			uniform = false;
	check(uniform, "sample_rows: counts per row far from uniform (row 0: %lld)",
		  (long long) hist[0]);
	free(hist);
}

/* Kneedle on classic and degenerate curves. */
static void
test_knee(void)
{
	int			ks[64];
	double		y[64];

	for (int i = 0; i < 64; i++)
		ks[i] = i + 1;

	check(km_knee(ks, (double[]) {5.0}, 1) == 0, "knee: m = 1");
	check(km_knee(ks, (double[]) {5.0, 1.0}, 2) == 0, "knee: m = 2");
	check(km_knee(ks, (double[]) {3.0, 3.0, 3.0, 3.0}, 4) == 0, "knee: flat curve");
	check(km_knee(ks, y, 0) == -1, "knee: m = 0");

	/*
	 * k = 1..7, inertia {100, 20, 15, 12, 10, 9, 8}: x = i/6, y = (v - 8)/92;
	 * D = 1 - y - x = {0, 0.703, 0.591, 0.457, 0.312, 0.156, 0}: knee at k = 2.
	 */
	check(km_knee(ks, (double[]) {100, 20, 15, 12, 10, 9, 8}, 7) == 1, "knee: sharp elbow");

	/*
	 * k = 1..6, inertia {100, 50, 60, 20, 18, 17} (non-monotone): y = (v - 17)/83
	 * = {1, .398, .518, .036, .012, 0}; x = i/5; D = {0, .402, .082, .364, .188, 0}: the
	 * global maximum is at k = 2 (index 1).
	 */
	check(km_knee(ks, (double[]) {100, 50, 60, 20, 18, 17}, 6) == 1, "knee: non-monotone");

	/*
	 * A small early bump and a larger later knee: k = 1..6, inertia {100, 88, 90, 30, 25, 20}.
	 * y = (v - 20)/80 = {1, .85, .875, .125, .0625, 0}; D = {0, -.05, -.275, .275, .1375, 0}:
	 * index 3; the bump makes D negative early on, which must not matter.
	 */
	check(km_knee(ks, (double[]) {100, 88, 90, 30, 25, 20}, 6) == 3, "knee: late knee");

	/*
	 * First local maximum versus global: with x = i/5, y = {1, .5, .4, 0, .1, 0} gives
	 * D = 1 - y - x = {0, .3, .2, .4, .1, 0}.  The global maximum (index 3) is returned, not
	 * the first local maximum (index 1).
	 */
	check(km_knee(ks, (double[]) {1, .5, .4, 0, .1, 0}, 6) == 3, "knee: global maximum");

	/* ties go to the smaller k: a straight line has D = 0 everywhere */
	check(km_knee(ks, (double[]) {4, 3, 2, 1, 0}, 5) == 0, "knee: straight line");

	/* k = 3..49 on inertia 1/k: symmetric-ish hyperbola, knee where D peaks */
	{
		int			kk[47];
		double		yy[47];
		int			want = 0;
		double		bestd = -1;

		for (int i = 0; i < 47; i++)
		{
			kk[i] = 3 + i;
			yy[i] = 1000.0 / kk[i];
		}
		for (int i = 0; i < 47; i++)
		{
			double		xn = (kk[i] - 3) / 46.0;
			double		yn = (yy[i] - yy[46]) / (yy[0] - yy[46]);

			if (1 - yn - xn > bestd)
			{
				bestd = 1 - yn - xn;
				want = i;
			}
		}
		check(km_knee(kk, yy, 47) == want, "knee: 1/k on 3..49 gives %d, want %d",
			  km_knee(kk, yy, 47), want);
	}

	/* NaN and infinity never win; all-NaN gives the smallest k */
	check(km_knee(ks, (double[]) {100, NAN, 15, 12, 10, 9, 8}, 7) == 2, "knee: NaN skipped");
	check(km_knee(ks, (double[]) {NAN, NAN, NAN}, 3) == 0, "knee: all NaN");
	check(km_knee((int[]) {9, 7, 5}, (double[]) {NAN, NAN, NAN}, 3) == 2,
		  "knee: all NaN, unsorted ks");
	check(km_knee((int[]) {4, 4, 4}, (double[]) {10, 2, 1}, 3) == 1, "knee: equal ks");

	/* any m returns one valid index */
	{
		KmRng		rng;
		bool		ok = true;

		km_rng_seed(&rng, 5);
		for (int rep = 0; rep < 2000; rep++)
		{
			int			m = 1 + (int) km_rng_below(&rng, 64);
			int			r;

			for (int i = 0; i < m; i++)
				y[i] = km_rng_uniform(&rng) < 0.1 ? 1.0 : 100.0 * km_rng_uniform(&rng);
			r = km_knee(ks, y, m);
			ok &= r >= 0 && r < m && r == km_knee(ks, y, m);
		}
		check(ok, "knee: index out of range or not deterministic on random curves");
	}
}

/* ---------------------------------------------------------------------------------------------
 * Timings.
 * ------------------------------------------------------------------------------------------- */

/*
 * One-thread timings of km_silhouette_rows for the elbow's seed case (d = 10, k = 3..49), on
 * blob data with uniformly random labels; best of several runs, wall and thread CPU time.
 */
static int
bench(void)
{
	int64_t		sizes[] = {1000, 2000, 5000, 11346};
	int			nlab = 47;
	int			d = 10;
	int			ks[47];
	KmRng		rng;

	for (int m = 0; m < nlab; m++)
		ks[m] = 3 + m;
	km_rng_seed(&rng, 1);
	printf("km_silhouette_rows, one thread, d=%d, nlab=%d (k=3..49), whole sample\n", d, nlab);
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
	{
		int64_t		s = sizes[si];
		float	   *x = malloc(sizeof(float) * s * d);
		int32_t    *lab = malloc(sizeof(int32_t) * s * nlab);
		double	   *out = malloc(sizeof(double) * s * nlab);
		double		best = INFINITY;
		double		best_cpu = INFINITY;
		int			reps = s <= 2000 ? 7 : 5;
		KmError		err = {0};

		random_data(&rng, s, d, x, lab, nlab, ks, false);
		for (int r = 0; r < reps; r++)
		{
			double		t0 = Seconds(CLOCK_MONOTONIC);
			double		c0 = Seconds(CLOCK_THREAD_CPUTIME_ID);

			if (km_silhouette_rows(x, s, d, KM_METRIC_EUCLIDEAN, lab, nlab, ks, 0, s, out, &err) != KM_OK)
			{
				printf("error: %s\n", err.message);
				return 1;
			}
			best = fmin(best, Seconds(CLOCK_MONOTONIC) - t0);
			best_cpu = fmin(best_cpu, Seconds(CLOCK_THREAD_CPUTIME_ID) - c0);
		}
		printf("s=%6lld: %8.4f s wall, %8.4f s cpu  (%.2f ns per pair, %.3f ns per "
			   "pair-labelling)\n", (long long) s, best, best_cpu,
			   best * 1e9 / ((double) s * s), best * 1e9 / ((double) s * s * nlab));
		free(x);
		free(lab);
		free(out);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		return bench();

	test_hand_cases();
	test_scatter_batches();
	test_empty_clusters();
	test_random_ch_db();
	test_silhouette_errors();
	test_silhouette_nomem();
	test_random_silhouette();
	test_cosine_silhouette();
	test_iou_silhouette();
	test_sample_rows();
	test_knee();

	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed == 0 ? 0 : 1;
}
