/*
 * test_kernels.c -- the CPU engine on its own: the small-d argmin against its reference twin,
 * the backend's operations against naive float64 loops, and thread-count independence.
 *
 * Prints failing cases and ends with "N passed, M failed".
 */
#include "km_kernels.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fills x with uniform values in [lo, hi) from rng. */
static void
FillUniform(KmRng *rng, float *x, int64_t n, float lo, float hi)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = lo + (hi - lo) * (float) km_rng_uniform(rng);
}

/* km_argmin_small must equal km_argmin_ref bit for bit: same operations, same order. */
static void
TestArgminSmall(void)
{
	KmRng		rng;
	int			ks[] = {1, 2, 7, 200};
	int64_t		ns[] = {0, 1, 15, 16, 17, 1000};

	km_rng_seed(&rng, 1);
	for (int d = 1; d <= KM_SMALL_D_MAX; d++)
		for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++)
			for (size_t b = 0; b < sizeof(ns) / sizeof(ns[0]); b++)
			{
				int			k = ks[a];
				int64_t		n = ns[b];
				float	   *x = malloc(sizeof(float) * (n + 1) * d);
				float	   *c = malloc(sizeof(float) * k * d);
				float	   *cn = malloc(sizeof(float) * k);
				int32_t    *l1 = malloc(sizeof(int32_t) * (n + 1) * 2);
				int32_t    *l2 = malloc(sizeof(int32_t) * (n + 1) * 2);
				float	   *b1 = malloc(sizeof(float) * (n + 1) * 2);
				float	   *b2 = malloc(sizeof(float) * (n + 1) * 2);
				int			seg1[2] = {0, k};
				int			seg2[3] = {0, k / 2, k};
				int			bad = 0;

				FillUniform(&rng, x, n * d, -1, 1);
				FillUniform(&rng, c, (int64_t) k * d, -1, 1);
				km_row_norms(c, k, d, cn);
				km_argmin_ref(x, n, d, c, cn, 1, seg1, l1, b1);
				km_argmin_small(x, n, d, c, cn, 1, seg1, l2, b2);
				for (int64_t i = 0; i < n; i++)
					if (l1[i] != l2[i] || memcmp(&b1[i], &b2[i], sizeof(float)) != 0)
						bad++;
				if (k >= 2)
				{
					km_argmin_ref(x, n, d, c, cn, 2, seg2, l1, b1);
					km_argmin_small(x, n, d, c, cn, 2, seg2, l2, b2);
					for (int64_t i = 0; i < 2 * n; i++)
						if (l1[i] != l2[i] || memcmp(&b1[i], &b2[i], sizeof(float)) != 0)
							bad++;
				}
				CHECK(bad == 0, "argmin_small d=%d k=%d n=%lld: %d mismatches", d, k,
					  (long long) n, bad);
				free(x);
				free(c);
				free(cn);
				free(l1);
				free(l2);
				free(b1);
				free(b2);
			}
}

/* Exact ties (duplicate centers) go to the lowest index, in every segment. */
static void
TestTies(void)
{
	float		x[2 * 3] = {1, 2, 3, -1, -2, -3};
	float		c[4 * 3] = {5, 5, 5, 1, 2, 3, 1, 2, 3, -1, -2, -3};
	float		cn[4];
	int			seg[2] = {0, 4};
	int32_t		l[2];
	float		b[2];

	km_row_norms(c, 4, 3, cn);
	km_argmin_small(x, 2, 3, c, cn, 1, seg, l, b);
	CHECK(l[0] == 1 && l[1] == 3, "ties: labels %d %d, want 1 3", l[0], l[1]);
}

/* Naive float64 nearest center, for the backend tests. */
static int
NaiveNearest(const float *x, const float *c, int k, int d, double *dist)
{
	int			best = 0;
	double		bd = INFINITY;

	for (int j = 0; j < k; j++)
	{
		double		s = 0;

		for (int t = 0; t < d; t++)
			s += ((double) x[t] - c[j * d + t]) * ((double) x[t] - c[j * d + t]);
		if (s < bd)
		{
			bd = s;
			best = j;
		}
	}
	*dist = bd;
	return best;
}

typedef struct Run
{
	int32_t    *labels;
	float	   *dist;
	double	   *sums;
	int64_t    *counts;
	double	   *inertia;
	float	   *mindist;
	double	   *sub_sums;
	double		pot[5];
} Run;

/* Runs every backend operation on one data set with a given thread count. */
static void
RunBackend(int threads, const float *x, int64_t n, int d, const float *c, int k, Run *r)
{
	KmBackend  *be;
	KmBlock    *blk;
	KmError		err = {0};
	int			seg[2] = {0, k};
	KmAccum		acc = {0};

	if (km_cpu_backend_create(threads, d, &be, &err) != KM_OK)
	{
		printf("backend: %s\n", err.message);
		exit(2);
	}
	r->labels = malloc(sizeof(int32_t) * n);
	r->dist = malloc(sizeof(float) * n);
	r->sums = calloc((size_t) k * d, sizeof(double));
	r->counts = calloc(k, sizeof(int64_t));
	r->inertia = calloc(k, sizeof(double));
	r->mindist = malloc(sizeof(float) * n);
	r->sub_sums = malloc(sizeof(double) * (n / KM_SUB_ROWS + 1));
	for (int64_t i = 0; i < n; i++)
		r->mindist[i] = INFINITY;
	memset(r->pot, 0, sizeof(r->pot));

	be->ops->block_create(be, (float *) x, NULL, n, NULL, &blk, &err);
	be->ops->set_centers(be, c, d, 1, seg, &err);
	be->steps->assign(be, blk, r->labels, r->dist, 1, &err);
	{
		/* without exact distances the labels are the same and the distances close */
		int32_t    *l2 = malloc(sizeof(int32_t) * n);
		float	   *d2 = malloc(sizeof(float) * n);
		int			bad = 0;

		be->steps->assign(be, blk, l2, d2, 0, &err);
		for (int64_t i = 0; i < n; i++)
			if (l2[i] != r->labels[i] || fabsf(d2[i] - r->dist[i]) > 1e-3f * (1.0f + r->dist[i]))
				bad++;
		CHECK(bad == 0, "inexact assign (d=%d k=%d): %d rows differ", d, k, bad);
		free(l2);
		free(d2);
	}
	acc.d = d;
	acc.k = k;
	acc.sums = r->sums;
	acc.counts = r->counts;
	acc.inertia = r->inertia;
	be->steps->accumulate(be, blk, 1, r->labels, r->dist, &acc, &err);
	be->steps->mindist_update(be, blk, c, r->mindist, r->sub_sums, &err);
	/* the candidates are c[1..5], as many of them as there are: c holds k centers, no more */
	be->steps->potentials(be, blk, c + d, k - 1 < 5 ? k - 1 : 5, r->mindist, r->pot, &err);
	be->ops->block_destroy(be, blk);
	be->ops->destroy(be);
}

static void
FreeRun(Run *r)
{
	free(r->labels);
	free(r->dist);
	free(r->sums);
	free(r->counts);
	free(r->inertia);
	free(r->mindist);
	free(r->sub_sums);
}

/* The backend against naive loops, and 1 vs 3 threads bit for bit. */
static void
TestBackend(int d, int k, int64_t n, float offset)
{
	KmRng		rng;
	float	   *x = malloc(sizeof(float) * n * d);
	float	   *c = malloc(sizeof(float) * k * d);
	Run			r1,
				r3;
	int			bad_labels = 0;
	double		max_rel = 0;
	int64_t		total = 0;

	km_rng_seed(&rng, (uint64_t) (d * 1000 + k));
	FillUniform(&rng, x, n * d, offset, offset + 10);
	for (int j = 0; j < k; j++)
		memcpy(c + (int64_t) j * d, x + (int64_t) (j * 7 % n) * d, sizeof(float) * d);
	RunBackend(1, x, n, d, c, k, &r1);
	RunBackend(3, x, n, d, c, k, &r3);

	CHECK(memcmp(r1.labels, r3.labels, sizeof(int32_t) * n) == 0 &&
		  memcmp(r1.dist, r3.dist, sizeof(float) * n) == 0 &&
		  memcmp(r1.sums, r3.sums, sizeof(double) * k * d) == 0 &&
		  memcmp(r1.inertia, r3.inertia, sizeof(double) * k) == 0 &&
		  memcmp(r1.mindist, r3.mindist, sizeof(float) * n) == 0 &&
		  memcmp(r1.pot, r3.pot, sizeof(r1.pot)) == 0,
		  "1 vs 3 threads differ (d=%d k=%d n=%lld)", d, k, (long long) n);

	for (int64_t i = 0; i < n; i++)
	{
		double		dd;
		int			l = NaiveNearest(x + i * d, c, k, d, &dd);

		/* a label may differ only where two centers are within rounding of each other */
		if (l != r1.labels[i])
		{
			double		d2 = 0;

			for (int t = 0; t < d; t++)
				d2 += ((double) x[i * d + t] - c[r1.labels[i] * d + t]) *
					((double) x[i * d + t] - c[r1.labels[i] * d + t]);
			if (fabs(d2 - dd) > 1e-5 * (dd + 1))
				bad_labels++;
		}
		else if (fabs(r1.dist[i] - dd) > 1e-5 * (dd + 1e-3))
			max_rel = fmax(max_rel, fabs(r1.dist[i] - dd) / (dd + 1e-3));
	}
	CHECK(bad_labels == 0 && max_rel == 0, "assign vs naive (d=%d k=%d offset=%g): %d labels, "
		  "max rel dist err %g", d, k, offset, bad_labels, max_rel);

	{
		double	   *sums = calloc((size_t) k * d, sizeof(double));
		int			bad = 0;

		for (int64_t i = 0; i < n; i++)
			for (int t = 0; t < d; t++)
				sums[r1.labels[i] * d + t] += x[i * d + t];
		for (int j = 0; j < k; j++)
			total += r1.counts[j];
		for (int64_t i = 0; i < (int64_t) k * d; i++)
			if (sums[i] != r1.sums[i])
				bad++;
		CHECK(bad == 0 && total == n, "accumulate (d=%d k=%d): %d sums differ, %lld rows",
			  d, k, bad, (long long) total);
		free(sums);
	}
	{
		/* mindist after one center is the distance to c[0]; potentials use c[1..5] */
		int			bad = 0;
		double		pot_ref[5] = {0};

		for (int64_t i = 0; i < n; i++)
		{
			double		d0 = 0;

			for (int t = 0; t < d; t++)
				d0 += ((double) x[i * d + t] - c[t]) * ((double) x[i * d + t] - c[t]);
			if (fabs(r1.mindist[i] - d0) > 1e-4 * (d0 + 1) + 1e-3 * offset * offset)
				bad++;
			for (int j = 0; j < 5 && j + 1 < k; j++)
			{
				double		dj = 0;

				for (int t = 0; t < d; t++)
					dj += ((double) x[i * d + t] - c[(j + 1) * d + t]) *
						((double) x[i * d + t] - c[(j + 1) * d + t]);
				pot_ref[j] += fmin(dj, r1.mindist[i]);
			}
		}
		CHECK(bad == 0, "mindist_update (d=%d): %d rows off", d, bad);
		for (int j = 0; j < 5 && j + 1 < k; j++)
			CHECK(fabs(r1.pot[j] - pot_ref[j]) <= 1e-4 * pot_ref[j] + 1e-3 * n * offset * offset,
				  "potentials[%d] (d=%d): %g vs %g", j, d, r1.pot[j], pot_ref[j]);
	}
	FreeRun(&r1);
	FreeRun(&r3);
	free(x);
	free(c);
}

/*
 * One dimension spread over 1e6 and the others over 1: the nearest center must still be found
 * from the small dimensions (the expansion |x|^2 - 2x.c + |c|^2 would cancel them away).
 */
static void
TestWideRange(void)
{
	KmRng		rng;
	int			n = 4000,
				d = 3,
				k = 8;
	float	   *x = malloc(sizeof(float) * n * d);
	float	   *c = malloc(sizeof(float) * k * d);
	float		cn[8];
	int32_t    *l = malloc(sizeof(int32_t) * n);
	float	   *b = malloc(sizeof(float) * n);
	int			seg[2] = {0, 8};
	int			bad = 0;

	km_rng_seed(&rng, 9);
	for (int i = 0; i < n; i++)
	{
		x[i * d] = (float) (i % 2) * 1e6f;
		x[i * d + 1] = (float) km_rng_uniform(&rng);
		x[i * d + 2] = (float) km_rng_uniform(&rng);
	}
	for (int j = 0; j < k; j++)
	{
		c[j * d] = (float) (j % 2) * 1e6f;
		c[j * d + 1] = (float) (j / 2) * 0.25f + 0.125f;
		c[j * d + 2] = 0.5f;
	}
	km_row_norms(c, k, d, cn);
	km_argmin_small(x, n, d, c, cn, 1, seg, l, b);
	for (int i = 0; i < n; i++)
	{
		double		dd;
		int			want = NaiveNearest(x + i * d, c, k, d, &dd);

		if (want != l[i] || fabs(b[i] - dd) > 1e-5 * (dd + 1e-6))
			bad++;
	}
	CHECK(bad == 0, "wide range: %d rows with a wrong label or distance", bad);
	free(x);
	free(c);
	free(l);
	free(b);
}

/* One weighted run of the steps: labels and distances, totals, k-means++ distances, potentials. */
typedef struct WRun
{
	int32_t    *labels;
	float	   *dist;
	KmAccum		acc;
	float	   *mind;
	double	   *sub_sums;
	double		pot[3];
} WRun;

static void
WeightedSteps(int threads, float *x, const float *w, int64_t n, int d, const float *c, int k,
			  WRun *r)
{
	KmBackend  *be;
	KmBlock    *blk;
	KmError		err = {0};
	int			seg[2] = {0, k};
	int			t = k - 1 < 3 ? k - 1 : 3;

	if (km_cpu_backend_create(threads, d, &be, &err) != KM_OK)
	{
		printf("backend: %s\n", err.message);
		exit(2);
	}
	r->labels = malloc(sizeof(int32_t) * n);
	r->dist = malloc(sizeof(float) * n);
	r->acc.d = d;
	r->acc.k = k;
	r->acc.sums = calloc((size_t) k * d, sizeof(double));
	r->acc.counts = calloc(k, sizeof(int64_t));
	r->acc.inertia = calloc(k, sizeof(double));
	r->acc.mass = calloc(k, sizeof(double));
	r->mind = malloc(sizeof(float) * n);
	r->sub_sums = malloc(sizeof(double) * (n / KM_SUB_ROWS + 1));
	for (int64_t i = 0; i < n; i++)
		r->mind[i] = INFINITY;
	memset(r->pot, 0, sizeof(r->pot));
	CHECK(be->ops->block_create(be, x, w, n, NULL, &blk, &err) == KM_OK &&
		  be->ops->set_centers(be, c, d, 1, seg, &err) == KM_OK &&
		  be->steps->assign_accumulate(be, blk, r->labels, r->dist, 1, &r->acc, &err) == KM_OK &&
		  be->steps->mindist_update(be, blk, c, r->mind, r->sub_sums, &err) == KM_OK &&
		  be->steps->potentials(be, blk, c + d, t, r->mind, r->pot, &err) == KM_OK,
		  "weighted steps (d=%d k=%d): %s", d, k, err.message);
	be->ops->block_destroy(be, blk);
	be->ops->destroy(be);
}

static void
FreeWRun(WRun *r)
{
	free(r->labels);
	free(r->dist);
	free(r->acc.sums);
	free(r->acc.counts);
	free(r->acc.inertia);
	free(r->acc.mass);
	free(r->mind);
	free(r->sub_sums);
}

/*
 * Weighted rows (block_create with w): sums, inertia and mass are the weighted sums in row
 * order, bit for bit the naive loop's (a product of two floats is exact in float64); counts
 * still count rows; each k-means++ distance is the unweighted one times the weight, exactly;
 * weights of 1 give the unweighted totals bit for bit; 1 and 3 threads agree bit for bit.  An
 * accumulator without mass is refused.
 */
static void
TestWeighted(int d, int k, int64_t n)
{
	KmRng		rng;
	float	   *x = malloc(sizeof(float) * n * d);
	float	   *w = malloc(sizeof(float) * n);
	float	   *ones = malloc(sizeof(float) * n);
	float	   *c = malloc(sizeof(float) * k * d);
	double	   *sums = calloc((size_t) k * d, sizeof(double));
	double	   *inertia = calloc(k, sizeof(double));
	double	   *mass = calloc(k, sizeof(double));
	int64_t    *counts = calloc(k, sizeof(int64_t));
	double		pot[3] = {0};
	int			t = k - 1 < 3 ? k - 1 : 3;
	WRun		r1,
				r3,
				r0,
				u;
	int			bad = 0;

	km_rng_seed(&rng, (uint64_t) (d * 31 + k));
	FillUniform(&rng, x, n * d, -5, 5);
	for (int64_t i = 0; i < n; i++)
	{
		w[i] = km_rng_uniform(&rng) < 0.1 ? 0.0f : 3.0f * (float) km_rng_uniform(&rng);
		ones[i] = 1.0f;
	}
	for (int j = 0; j < k; j++)
		memcpy(c + (int64_t) j * d, x + (int64_t) (j * 13 % n) * d, sizeof(float) * d);
	WeightedSteps(1, x, w, n, d, c, k, &r1);
	WeightedSteps(3, x, w, n, d, c, k, &r3);
	WeightedSteps(1, x, ones, n, d, c, k, &r0);
	WeightedSteps(1, x, NULL, n, d, c, k, &u);

	for (int64_t i = 0; i < n; i++)
	{
		int			j = r1.labels[i];

		for (int q = 0; q < d; q++)
			sums[(int64_t) j * d + q] += (double) w[i] * x[i * d + q];
		inertia[j] += (double) w[i] * r1.dist[i];
		mass[j] += w[i];
		counts[j]++;
		if (r1.mind[i] != w[i] * u.mind[i])
			bad++;
		for (int q = 0; q < t; q++)
			pot[q] += fmin(r1.mind[i], w[i] * km_dist2(x + i * d, c + (int64_t) (q + 1) * d, d));
	}
	CHECK(memcmp(sums, r1.acc.sums, sizeof(double) * k * d) == 0 &&
		  memcmp(inertia, r1.acc.inertia, sizeof(double) * k) == 0 &&
		  memcmp(mass, r1.acc.mass, sizeof(double) * k) == 0 &&
		  memcmp(counts, r1.acc.counts, sizeof(int64_t) * k) == 0,
		  "weighted accumulate (d=%d k=%d) differs from the naive weighted sums", d, k);
	CHECK(bad == 0, "weighted mindist (d=%d k=%d): %d rows are not w times the unweighted", d, k, bad);
	for (int q = 0; q < t; q++)
		CHECK(fabs(r1.pot[q] - pot[q]) <= 1e-6 * pot[q], "weighted potentials[%d] (d=%d k=%d): %g vs %g",
			  q, d, k, r1.pot[q], pot[q]);
	CHECK(memcmp(r1.labels, r3.labels, sizeof(int32_t) * n) == 0 &&
		  memcmp(r1.acc.sums, r3.acc.sums, sizeof(double) * k * d) == 0 &&
		  memcmp(r1.acc.inertia, r3.acc.inertia, sizeof(double) * k) == 0 &&
		  memcmp(r1.acc.mass, r3.acc.mass, sizeof(double) * k) == 0 &&
		  memcmp(r1.mind, r3.mind, sizeof(float) * n) == 0 &&
		  memcmp(r1.pot, r3.pot, sizeof(r1.pot)) == 0,
		  "weighted: 1 vs 3 threads differ (d=%d k=%d)", d, k);
	CHECK(memcmp(r0.acc.sums, u.acc.sums, sizeof(double) * k * d) == 0 &&
		  memcmp(r0.acc.inertia, u.acc.inertia, sizeof(double) * k) == 0 &&
		  memcmp(r0.mind, u.mind, sizeof(float) * n) == 0 &&
		  memcmp(r0.pot, u.pot, sizeof(r0.pot)) == 0,
		  "weights of 1 differ from no weights (d=%d k=%d)", d, k);
	bad = 0;
	for (int j = 0; j < k; j++)
		if (r0.acc.mass[j] != (double) u.acc.counts[j])
			bad++;
	CHECK(bad == 0, "weights of 1: mass differs from the counts (d=%d k=%d)", d, k);
	{
		/* a weighted block into an accumulator without mass is a caller's bug */
		KmBackend  *be;
		KmBlock    *blk;
		KmError		err = {0};
		int			seg[2] = {0, k};
		KmAccum		acc = r1.acc;
		KmStatus	st;

		acc.mass = NULL;
		km_cpu_backend_create(1, d, &be, &err);
		be->ops->block_create(be, x, w, n, NULL, &blk, &err);
		be->ops->set_centers(be, c, d, 1, seg, &err);
		st = be->steps->accumulate(be, blk, 1, r1.labels, r1.dist, &acc, &err);
		CHECK(st == KM_ERR_ARGUMENT, "weighted rows without mass: status %d", (int) st);
		be->ops->block_destroy(be, blk);
		be->ops->destroy(be);
	}
	FreeWRun(&r1);
	FreeWRun(&r3);
	FreeWRun(&r0);
	FreeWRun(&u);
	free(x);
	free(w);
	free(ones);
	free(c);
	free(sums);
	free(inertia);
	free(mass);
	free(counts);
}

/* 1 - IoU of boxes (w, h) at a common corner, in float64 from the definition. */
static double
NaiveIouCost(const float *x, const float *c)
{
	double		inter = fmin(x[0], c[0]) * fmin(x[1], c[1]);

	return 1.0 - inter / ((double) x[0] * x[1] + (double) c[0] * c[1] - inter);
}

/*
 * KM_METRIC_IOU on the CPU backend: km_iou_cost by hand (nested, equal and transposed boxes),
 * km_argmin_iou against the float64 definition (labels equal wherever the two best costs are
 * not within rounding, costs within 1e-6), the backend's assign and k-means++ steps under the
 * metric ((1 - IoU)^2 as the seeding distance), and the metric refused for d != 2.
 */
static void
TestIou(int k, int64_t n)
{
	KmRng		rng;
	float	   *x = malloc(sizeof(float) * n * 2);
	float	   *c = malloc(sizeof(float) * k * 2);
	int32_t    *lab = malloc(sizeof(int32_t) * n);
	int32_t    *lab2 = malloc(sizeof(int32_t) * n);
	float	   *best = malloc(sizeof(float) * n);
	float	   *dist = malloc(sizeof(float) * n);
	float	   *mind = malloc(sizeof(float) * n);
	double	   *sub = malloc(sizeof(double) * (n / KM_SUB_ROWS + 1));
	double		pot[2] = {0},
				pot_ref[2] = {0};
	int			seg[2] = {0, k};
	int			bad = 0,
				bad_mind = 0;
	double		worst = 0.0;
	float		a[2] = {2, 2},
				b[2] = {1, 1},
				t1[2] = {4, 1},
				t2[2] = {1, 4};
	KmBackend  *be;
	KmBlock    *blk;
	KmError		err = {0};

	/* by hand: (1,1) inside (2,2): 1 - 1/4; equal boxes: 0; (4,1) and (1,4): 1 - 1/7 */
	CHECK(fabsf(km_iou_cost(a, b) - 0.75f) < 1e-7f && km_iou_cost(a, a) == 0.0f &&
		  fabsf(km_iou_cost(t1, t2) - 6.0f / 7.0f) < 1e-7f,
		  "iou by hand: %g %g %g", km_iou_cost(a, b), km_iou_cost(a, a), km_iou_cost(t1, t2));
	km_rng_seed(&rng, (uint64_t) k);
	FillUniform(&rng, x, n * 2, 1, 100);
	FillUniform(&rng, c, (int64_t) k * 2, 1, 100);
	km_argmin_iou(x, n, c, 1, seg, lab, best);
	for (int64_t i = 0; i < n; i++)
	{
		double		b1 = INFINITY,
					b2 = INFINITY;
		int			arg = 0;

		for (int j = 0; j < k; j++)
		{
			double		v = NaiveIouCost(x + i * 2, c + j * 2);

			if (v < b1)
			{
				b2 = b1;
				b1 = v;
				arg = j;
			}
			else if (v < b2)
				b2 = v;
		}
		if (lab[i] != arg && b2 - b1 > 1e-6)
			bad++;
		worst = fmax(worst, fabs(best[i] - NaiveIouCost(x + i * 2, c + lab[i] * 2)));
	}
	CHECK(bad == 0 && worst <= 1e-6, "km_argmin_iou (k=%d): %d labels off, cost off by %g", k,
		  bad, worst);
	/* the vector lanes do km_iou_cost's operations: the same bits */
	bad = 0;
	for (int64_t i = 0; i < n; i++)
		if (best[i] != km_iou_cost(x + i * 2, c + lab[i] * 2))
			bad++;
	CHECK(bad == 0, "km_argmin_iou (k=%d): %d costs are not km_iou_cost's bits", k, bad);

	km_cpu_backend_create(3, 2, &be, &err);
	CHECK(be->ops->set_metric(be, KM_METRIC_IOU, &err) == KM_OK, "cpu: set_metric iou: %s", err.message);
	be->ops->block_create(be, x, NULL, n, NULL, &blk, &err);
	be->ops->set_centers(be, c, 2, 1, seg, &err);
	be->steps->assign(be, blk, lab2, dist, 1, &err);
	CHECK(memcmp(lab, lab2, sizeof(int32_t) * n) == 0 && memcmp(best, dist, sizeof(float) * n) == 0,
		  "cpu iou assign differs from km_argmin_iou (k=%d)", k);
	for (int64_t i = 0; i < n; i++)
		mind[i] = INFINITY;
	be->steps->mindist_update(be, blk, c, mind, sub, &err);
	be->steps->potentials(be, blk, c + 2, k > 2 ? 2 : k - 1, mind, pot, &err);
	for (int64_t i = 0; i < n; i++)
	{
		float		v = km_iou_cost(x + i * 2, c);

		if (mind[i] != v * v)
			bad_mind++;
		for (int j = 0; j < 2 && j + 1 < k; j++)
		{
			float		u = km_iou_cost(x + i * 2, c + (j + 1) * 2);

			pot_ref[j] += fmin(u * u, mind[i]);
		}
	}
	CHECK(bad_mind == 0, "cpu iou mindist: %d rows are not (1 - IoU)^2", bad_mind);
	for (int j = 0; j < 2 && j + 1 < k; j++)
		CHECK(fabs(pot[j] - pot_ref[j]) <= 1e-9 * pot_ref[j], "cpu iou potentials[%d]: %g vs %g",
			  j, pot[j], pot_ref[j]);
	be->ops->block_destroy(be, blk);
	be->ops->destroy(be);
	km_cpu_backend_create(1, 3, &be, &err);
	CHECK(be->ops->set_metric(be, KM_METRIC_IOU, &err) == KM_ERR_UNSUPPORTED,
		  "cpu: set_metric iou for d = 3 was accepted");
	be->ops->destroy(be);
	free(x);
	free(c);
	free(lab);
	free(lab2);
	free(best);
	free(dist);
	free(mind);
	free(sub);
}

/* The generator gives the same stream for the same seed and stays in range. */
static void
TestRng(void)
{
	KmRng		a,
				b;
	int			same = 1,
				in_range = 1;

	km_rng_seed(&a, 42);
	km_rng_seed(&b, 42);
	for (int i = 0; i < 1000; i++)
	{
		double		u = km_rng_uniform(&a);

		if (u != km_rng_uniform(&b))
			same = 0;
		if (!(u >= 0 && u < 1))
			in_range = 0;
		if (km_rng_below(&a, 7) >= 7)
			in_range = 0;
		(void) km_rng_below(&b, 7);
	}
	CHECK(same && in_range, "rng: same=%d in_range=%d", same, in_range);
	km_rng_seed(&b, 43);
	CHECK(km_rng_next(&a) != km_rng_next(&b), "rng: seeds 42 and 43 agree");
}

int
main(void)
{
	TestRng();
	TestArgminSmall();
	TestTies();
	TestWideRange();
	TestBackend(2, 3, 5000, 0);
	TestBackend(4, 200, 20000, 0);
	TestBackend(10, 49, 11346, -5);
	/* rows far from the origin are centred by the caller (src/reader.c) and tested in SQL */
	TestBackend(64, 10, 1797, 0);
	TestBackend(128, 100, 3000, 0);
	/* narrow rows (d <= 16) and grouped ones, with and without the GEMM kernel */
	TestWeighted(2, 3, 5000);
	TestWeighted(10, 49, 11346);
	TestWeighted(40, 7, 3000);
	TestWeighted(128, 100, 3000);
	TestIou(1, 100);
	TestIou(9, 40000);
	TestIou(200, 5000);
	return TestReport();
}
