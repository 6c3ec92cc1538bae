/*
 * test_dtw.c -- the DTW kernels (km_dtw.c) against hand-computed values and a brute force over
 * every warping path: distances with and without a Sakoe-Chiba band, series of different
 * lengths, abandoning, the lower bound and its envelopes, warping paths, the pruned assignment
 * (identical to the unpruned one, ties included, on any thread count), the DBA sums (identical
 * on any thread count), pairwise distances and resampling.
 */
#include "km_dtw.h"

#include <math.h>

#include "test_util.h"

/* The least cost of any warping path from (i, j) to the end, every cell in the band. */
static double
BruteRest(const float *x, int lx, const double *c, int lc, int band, int i, int j)
{
	int			lo,
				hi;
	double		d,
				best = INFINITY,
				v;

	km_dtw_band(i, lx, lc, band, &lo, &hi);
	if (j < lo || j > hi)
		return INFINITY;
	d = ((double) x[i] - c[j]) * ((double) x[i] - c[j]);
	if (i == lx - 1 && j == lc - 1)
		return d;
	if (i + 1 < lx && j + 1 < lc && (v = BruteRest(x, lx, c, lc, band, i + 1, j + 1)) < best)
		best = v;
	if (i + 1 < lx && (v = BruteRest(x, lx, c, lc, band, i + 1, j)) < best)
		best = v;
	if (j + 1 < lc && (v = BruteRest(x, lx, c, lc, band, i, j + 1)) < best)
		best = v;
	return d + best;
}

static void
RandomSeries(float *x, int n)
{
	for (int i = 0; i < n; i++)
		x[i] = (float) (int) (RandUnit() * 4.0f);	/* small integers: many ties */
}

static void
HandCases(void)
{
	double		work[64];
	const float a[] = {1, 2, 3};
	const double b[] = {1, 2, 2, 3};
	const float z[] = {0, 0, 0};
	const double ones[] = {1, 1};
	const float up[] = {1, 2, 3, 4, 5};
	const double down[] = {5, 4, 3, 2, 1};
	const float p[] = {0, 0, 1};
	const double q[] = {0, 1, 1};
	const float s2[] = {0, 1};
	const double l3[] = {0, 0, 1};

	/* a warps onto b with every sample matched exactly */
	CHECK(km_dtw_sq(a, 3, b, 4, -1, INFINITY, work) == 0.0, "[1,2,3] vs [1,2,2,3]");
	/* every path of a 3 x 2 matrix has at least 3 cells, each costing 1 */
	CHECK(km_dtw_sq(z, 3, ones, 2, -1, INFINITY, work) == 3.0, "[0,0,0] vs [1,1]");
	/* band 0 on equal lengths is the diagonal: 16 + 4 + 0 + 4 + 16 */
	CHECK(km_dtw_sq(up, 5, down, 5, 0, INFINITY, work) == 40.0, "band 0 diagonal");
	/* [0,0,1] vs [0,1,1]: 0 by (0,0),(1,0),(2,1),(2,2); the diagonal alone costs 1 */
	CHECK(km_dtw_sq(p, 3, q, 3, -1, INFINITY, work) == 0.0, "no band");
	CHECK(km_dtw_sq(p, 3, q, 3, 0, INFINITY, work) == 1.0, "band 0");
	CHECK(km_dtw_sq(p, 3, q, 3, 1, INFINITY, work) == 0.0, "band 1");
	/* lengths 2 and 3 with radius 0: the band stays connected ((0,0),(0,1),(1,2)), cost 0 */
	CHECK(km_dtw_sq(s2, 2, l3, 3, 0, INFINITY, work) == 0.0, "band 0 over lengths 2 and 3");
}

static void
BruteForce(void)
{
	double		work[64];
	uint8_t		from[64];
	int32_t		path[64];
	float		x[7];
	double		c[7];
	int			bad_dist = 0,
				bad_path = 0,
				bad_lb = 0,
				bad_env = 0;

	for (int trial = 0; trial < 3000; trial++)
	{
		int			lx = 2 + (int) (Rand64() % 6),
					lc = 2 + (int) (Rand64() % 6),
					band = (int) (Rand64() % 4) - 1;	/* -1 (none) .. 2 */
		float		xc[7];
		double		brute,
					got,
					along = 0.0,
					lb;
		double		lo[7],
					hi[7];
		int			queue[16];
		int			len,
					ok = 1;

		RandomSeries(x, lx);
		RandomSeries(xc, lc);
		for (int j = 0; j < lc; j++)
			c[j] = (double) xc[j] + 0.25 * (double) (Rand64() % 3);
		brute = BruteRest(x, lx, c, lc, band, 0, 0);
		got = km_dtw_sq(x, lx, c, lc, band, INFINITY, work);
		if (!(fabs(got - brute) <= 1e-12 * (brute + 1.0)))
			bad_dist++;

		/* the path: from (0, 0) to the end in unit steps, in the band, costing DTW^2 */
		got = km_dtw_path(x, lx, c, lc, band, work, from, path, &len);
		if (!(fabs(got - brute) <= 1e-12 * (brute + 1.0)))
			ok = 0;
		if (path[0] != 0 || path[1] != 0 || path[2 * len - 2] != lx - 1 || path[2 * len - 1] != lc - 1)
			ok = 0;
		for (int t = 0; t < len; t++)
		{
			int			pi = path[2 * t],
						pj = path[2 * t + 1],
						blo,
						bhi;

			km_dtw_band(pi, lx, lc, band, &blo, &bhi);
			if (pj < blo || pj > bhi)
				ok = 0;
			if (t > 0)
			{
				int			di = pi - path[2 * t - 2],
							dj = pj - path[2 * t - 1];

				if (di < 0 || dj < 0 || di > 1 || dj > 1 || di + dj == 0)
					ok = 0;
			}
			along += ((double) x[pi] - c[pj]) * ((double) x[pi] - c[pj]);
		}
		if (!(fabs(along - brute) <= 1e-12 * (brute + 1.0)))
			ok = 0;
		bad_path += !ok;

		/* the envelope is the band's least and greatest center sample; the bound is below */
		km_dtw_envelope(c, lc, lx, band, lo, hi, queue);
		for (int i = 0; i < lx; i++)
		{
			int			blo,
						bhi;
			double		mn = INFINITY,
						mx = -INFINITY;

			km_dtw_band(i, lx, lc, band, &blo, &bhi);
			for (int j = blo; j <= bhi; j++)
			{
				mn = fmin(mn, c[j]);
				mx = fmax(mx, c[j]);
			}
			if (lo[i] != mn || hi[i] != mx)
				bad_env++;
		}
		lb = km_dtw_lower_bound(x, lx, c, lc, lo, hi);
		if (!(lb <= brute))
			bad_lb++;

		/* abandoning: a cutoff below DTW^2 may give INFINITY, never a wrong finite value */
		got = km_dtw_sq(x, lx, c, lc, band, brute * 0.5, work);
		if (!(isinf(got) || fabs(got - brute) <= 1e-12 * (brute + 1.0)))
			bad_dist++;
		got = km_dtw_sq(x, lx, c, lc, band, brute, work);
		if (!(fabs(got - brute) <= 1e-12 * (brute + 1.0)))
			bad_dist++;
	}
	CHECK(bad_dist == 0, "%d distances differ from the brute force", bad_dist);
	CHECK(bad_path == 0, "%d warping paths are wrong", bad_path);
	CHECK(bad_env == 0, "%d envelope samples are wrong", bad_env);
	CHECK(bad_lb == 0, "%d lower bounds exceed DTW^2", bad_lb);
}

/*
 * Random series of 50 .. 89 samples, or all of 70 when same_len: longer than one tile of the
 * vector code's columns (32), and not a multiple of it.
 */
static void
MakeRows(KmSeries *s, int64_t n, int same_len, float **values, int64_t **off)
{
	*off = malloc(sizeof(int64_t) * (n + 1));
	(*off)[0] = 0;
	for (int64_t i = 0; i < n; i++)
		(*off)[i + 1] = (*off)[i] + (same_len ? 70 : 50 + (int64_t) (Rand64() % 40));
	*values = malloc(sizeof(float) * (*off)[n]);
	for (int64_t i = 0; i < n; i++)
	{
		float		phase = RandUnit() * 3.0f;

		for (int64_t t = (*off)[i]; t < (*off)[i + 1]; t++)
			(*values)[t] = sinf((float) (t - (*off)[i]) * 0.3f + phase) + 0.1f * RandUnit();
	}
	s->n = n;
	s->values = *values;
	s->off = *off;
	s->w = NULL;
}

static void
Assignment(void)
{
	const int64_t n = 300;
	enum
	{
		k = 20,					/* more than a vector's lanes: pruning skips whole groups */
		lc = 70
	};
	KmSeries	s;
	float	   *values;
	int64_t    *off;
	double	   *c = malloc(sizeof(double) * k * lc);
	double	   *env = malloc(sizeof(double) * 2 * k * lc);
	int		   *queue = malloc(sizeof(int) * 2 * lc);
	int32_t		lab[3][300];
	double		dist[3][300],
				cut[300],
				work[256];
	KmError		err = {0};

	for (int same = 0; same <= 2; same++)
		for (int band = -1; band <= 4; band += 5)
		{
			KmDtwCenters cs = {k, lc, band, c, 0, NULL, NULL};
			int64_t		computed[3] = {0, 0, 0};
			int			differ = 0,
						wrong = 0;

			MakeRows(&s, n, same == 1, &values, &off);
			for (int j = 0; j < k; j++)
			{
				/* centers from rows, the last a copy of the first: ties to the lower index */
				int64_t		r = j == k - 1 ? 0 : j * 13;
				int			lx = (int) (off[r + 1] - off[r]);

				km_dtw_resample(values + off[r], lx, c + j * lc, lc);
				/* same == 2: centers all near row 0, so that the bounds of many come close */
				if (same == 2 && j != k - 1)
				{
					km_dtw_resample(values, (int) off[1], c + j * lc, lc);
					for (int t = 0; t < lc; t++)
						c[j * lc + t] += 0.05 * RandUnit();
				}
			}
			if (same == 2)
				memcpy(c + (k - 1) * lc, c, sizeof(double) * lc);	/* the copy of center 0 again */
			if (same == 1)
			{
				for (int j = 0; j < k; j++)
					km_dtw_envelope(c + j * lc, lc, lc, band, env + j * lc, env + (k + j) * lc, queue);
				cs.env_len = lc;
				cs.env_lo = env;
				cs.env_hi = env + k * lc;
			}
			CHECK(km_dtw_assign(&s, 0, n, &cs, 0, NULL, 1, lab[0], dist[0], &computed[0], &err) == KM_OK,
				  "unpruned assignment");
			CHECK(km_dtw_assign(&s, 0, n, &cs, 1, NULL, 1, lab[1], dist[1], &computed[1], &err) == KM_OK,
				  "pruned assignment");
			CHECK(km_dtw_assign(&s, 0, 150, &cs, 1, NULL, 3, lab[2], dist[2], &computed[2], &err) == KM_OK &&
				  km_dtw_assign(&s, 150, n, &cs, 1, NULL, 3, lab[2], dist[2], &computed[2], &err) == KM_OK,
				  "pruned assignment on three threads, in two ranges");
			for (int64_t i = 0; i < n; i++)
			{
				int			lx = (int) (off[i + 1] - off[i]);
				double		best = INFINITY;
				int			bj = -1;

				for (int j = 0; j < k; j++)
				{
					double		v = km_dtw_sq(values + off[i], lx, c + j * lc, lc, band, INFINITY, work);

					if (v < best)
					{
						best = v;
						bj = j;
					}
				}
				wrong += lab[0][i] != bj || dist[0][i] != best || lab[0][i] == k - 1;
				for (int v = 1; v < 3; v++)
					differ += lab[v][i] != lab[0][i] ||
						memcmp(&dist[v][i], &dist[0][i], sizeof(double)) != 0;
			}
			CHECK(wrong == 0, "same %d band %d: %d unpruned labels are not the nearest, lowest index", same, band, wrong);
			CHECK(differ == 0, "same %d band %d: %d pruned labels or distances differ", same, band, differ);
			/* near centers leave the bounds nothing to skip; the others must skip some */
			CHECK(same == 2 || computed[1] < computed[0], "same %d band %d: pruning computed %lld of %lld DTWs",
				  same, band, (long long) computed[1], (long long) computed[0]);

			/* with a cutoff, only centers strictly below it: half the distance takes none */
			for (int64_t i = 0; i < n; i++)
				cut[i] = i % 2 ? dist[0][i] * 0.5 : dist[0][i] * 2.0 + 1.0;
			CHECK(km_dtw_assign(&s, 0, n, &cs, 1, cut, 2, lab[1], dist[1], NULL, &err) == KM_OK, "cutoff");
			wrong = 0;
			for (int64_t i = 0; i < n; i++)
				wrong += i % 2 ? (lab[1][i] != -1 || dist[1][i] != cut[i]) :
					(lab[1][i] != lab[0][i] || dist[1][i] != dist[0][i]);
			CHECK(wrong == 0, "same %d band %d: %d rows wrong under a cutoff", same, band, wrong);

			/* DBA sums: every center sample is met, and the thread count changes no bit */
			{
				double		sums[2][k * lc],
							counts[2][k * lc],
							cost[2][k];
				uint8_t		active[k];
				int			zero = 0;

				memset(active, 1, sizeof(active));
				for (int v = 0; v < 2; v++)
				{
					memset(sums[v], 0, sizeof(sums[v]));
					memset(counts[v], 0, sizeof(counts[v]));
					memset(cost[v], 0, sizeof(cost[v]));
					CHECK(km_dtw_dba_pass(&s, 0, n, lab[0], &cs, active, v == 0 ? 1 : 4, sums[v],
										  counts[v], cost[v], &err) == KM_OK, "DBA pass");
				}
				/* the same sums from the scalar path of every row, in row order */
				{
					double		rs[k * lc],
								rc[k * lc],
								rcost[k],
								rwork[256];
					uint8_t    *rfrom = malloc(90 * 70);
					int32_t		rpath[2 * 160];
					int			rlen;

					memset(rs, 0, sizeof(rs));
					memset(rc, 0, sizeof(rc));
					memset(rcost, 0, sizeof(rcost));
					for (int64_t i = 0; i < n; i++)
					{
						int			j = lab[0][i],
									lx = (int) (off[i + 1] - off[i]);

						rcost[j] += km_dtw_path(values + off[i], lx, c + j * lc, lc, band, rwork,
												rfrom, rpath, &rlen);
						for (int q = 0; q < rlen; q++)
						{
							rs[j * lc + rpath[2 * q + 1]] += (double) values[off[i] + rpath[2 * q]];
							rc[j * lc + rpath[2 * q + 1]] += 1.0;
						}
					}
					CHECK(memcmp(rs, sums[1], sizeof(rs)) == 0 && memcmp(rc, counts[1], sizeof(rc)) == 0 &&
						  memcmp(rcost, cost[1], sizeof(rcost)) == 0,
						  "same %d band %d: the grouped DBA pass differs from row-by-row paths", same, band);
					free(rfrom);
				}
				CHECK(memcmp(sums[0], sums[1], sizeof(sums[0])) == 0 &&
					  memcmp(counts[0], counts[1], sizeof(counts[0])) == 0 &&
					  memcmp(cost[0], cost[1], sizeof(cost[0])) == 0,
					  "same %d band %d: DBA sums depend on the threads", same, band);
				for (int j = 0; j < k - 1; j++)
					for (int t = 0; t < lc; t++)
						zero += counts[0][j * lc + t] == 0.0;
				/* every center with rows has every sample met (near centers may have none) */
				CHECK(same == 2 || zero == 0, "same %d band %d: %d center samples met by no row", same, band, zero);
			}
			free(values);
			free(off);
		}
	free(c);
	free(env);
	free(queue);
}

/*
 * Few centers, as a fit of small k runs: the assignment takes (row, center) pairs a vector at a
 * time and a DBA job mixes rows of several centers, eight lanes or sixteen.  Against km_dtw_sq
 * and km_dtw_path row by row, with weights, rows of 1 to 90 samples, on 1 and 3 threads.
 */
static void
FewCenters(void)
{
	enum
	{
		n = 203,
		lc = 70
	};
	static const int ks[] = {1, 3, 4, 8};
	float	   *values = malloc(sizeof(float) * n * 90);
	float		w[n];
	int64_t		off[n + 1];
	double		c[8 * lc],
				work[256];
	uint8_t    *from = malloc(90 * lc);
	int32_t		path[2 * 160];
	KmError		err = {0};

	for (int same = 0; same <= 1; same++)
		for (int band = -1; band <= 4; band += 5)
			for (int q = 0; q < (int) (sizeof(ks) / sizeof(ks[0])); q++)
			{
				int			k = ks[q],
							wrong = 0,
							differ = 0;
				KmSeries	s = {n, values, off, w};
				KmDtwCenters cs = {k, lc, band, c, 0, NULL, NULL};
				int32_t		lab[2][n];
				double		dist[2][n],
							sums[3][8 * lc],
							counts[3][8 * lc],
							cost[3][8];
				uint8_t		active[8];

				off[0] = 0;
				for (int i = 0; i < n; i++)
				{
					float		phase = RandUnit() * 3.0f;

					off[i + 1] = off[i] + (same ? lc : 1 + (int64_t) (Rand64() % 90));
					for (int64_t t = off[i]; t < off[i + 1]; t++)
						values[t] = sinf((float) (t - off[i]) * 0.3f + phase) + 0.1f * RandUnit();
					w[i] = 0.5f + (float) (Rand64() % 4);
				}
				for (int j = 0; j < k; j++)
					km_dtw_resample(values + off[j * 17], (int) (off[j * 17 + 1] - off[j * 17]),
									c + j * lc, lc);
				for (int v = 0; v < 2; v++)
					CHECK(km_dtw_assign(&s, 0, n, &cs, v, NULL, v == 0 ? 1 : 3, lab[v], dist[v],
										NULL, &err) == KM_OK, "assignment to %d centers", k);
				for (int i = 0; i < n; i++)
				{
					int			lx = (int) (off[i + 1] - off[i]),
								bj = -1;
					double		best = INFINITY;

					for (int j = 0; j < k; j++)
					{
						double		d = km_dtw_sq(values + off[i], lx, c + j * lc, lc, band, INFINITY,
												  work);

						if (d < best)
						{
							best = d;
							bj = j;
						}
					}
					for (int v = 0; v < 2; v++)
						wrong += lab[v][i] != bj || memcmp(&dist[v][i], &best, sizeof(double)) != 0;
				}
				CHECK(wrong == 0, "same %d band %d k %d: %d labels or distances not the nearest",
					  same, band, k, wrong);

				/* DBA of every center but the second, weighted, against the rows one by one */
				memset(active, 1, sizeof(active));
				active[1 % k] = k == 1;
				memset(sums, 0, sizeof(sums));
				memset(counts, 0, sizeof(counts));
				memset(cost, 0, sizeof(cost));
				for (int v = 0; v < 2; v++)
					CHECK(km_dtw_dba_pass(&s, 0, n, lab[0], &cs, active, v == 0 ? 1 : 3, sums[v],
										  counts[v], cost[v], &err) == KM_OK, "DBA pass");
				for (int i = 0; i < n; i++)
				{
					int			j = lab[0][i],
								lx = (int) (off[i + 1] - off[i]),
								len;
					volatile double wx;	/* each product rounded before its sum, as the kernel's */

					if (!active[j])
						continue;
					wx = (double) w[i] * km_dtw_path(values + off[i], lx, c + j * lc, lc, band,
													 work, from, path, &len);
					cost[2][j] += wx;
					for (int p = 0; p < len; p++)
					{
						wx = (double) w[i] * (double) values[off[i] + path[2 * p]];
						sums[2][j * lc + path[2 * p + 1]] += wx;
						counts[2][j * lc + path[2 * p + 1]] += (double) w[i];
					}
				}
				for (int v = 0; v < 2; v++)
					differ += memcmp(sums[v], sums[2], sizeof(sums[2])) != 0 ||
						memcmp(counts[v], counts[2], sizeof(counts[2])) != 0 ||
						memcmp(cost[v], cost[2], sizeof(cost[2])) != 0;
				CHECK(differ == 0, "same %d band %d k %d: DBA sums differ from row-by-row paths",
					  same, band, k);
			}
	free(values);
	free(from);
}

static void
Pairwise(void)
{
	KmSeries	s;
	float	   *values;
	int64_t    *off;
	int64_t		rows[12];
	double		out[12 * 12],
				work[256],
				c[128];
	float	   *more;
	KmError		err = {0};
	int			bad = 0;

	MakeRows(&s, 40, 0, &values, &off);
	for (int64_t i = 0; i <= 40; i++)	/* rows 20 .. 39 of 70 samples, the others ragged */
		if (i > 20)
			off[i] = off[20] + (i - 20) * 70;
	more = malloc(sizeof(float) * off[40]);
	for (int64_t t = 0; t < off[40]; t++)
		more[t] = t < off[20] ? values[t] : sinf((float) t * 0.37f) + 0.2f * RandUnit();
	free(values);
	values = more;
	s.values = values;
	/* in two ranges of a, the later rows of one length (the vector path) and of others */
	for (int i = 0; i < 12; i++)
		rows[i] = i < 3 ? i * 3 : 39 - i;
	for (int band = -1; band <= 2; band += 3)
	{
		for (int i = 0; i < 144; i++)
			out[i] = -1.0;
		CHECK(km_dtw_pairwise(&s, rows, 12, 0, 5, band, 3, out, &err) == KM_OK &&
			  km_dtw_pairwise(&s, rows, 12, 5, 12, band, 1, out, &err) == KM_OK, "pairwise");
		for (int a = 0; a < 12; a++)
			for (int b = 0; b < 12; b++)
			{
				int			la = (int) (off[rows[a] + 1] - off[rows[a]]),
							lb = (int) (off[rows[b] + 1] - off[rows[b]]);

				for (int t = 0; t < lb; t++)
					c[t] = values[off[rows[b]] + t];
				if (b > a)
					bad += out[a * 12 + b] !=
						sqrt(km_dtw_sq(values + off[rows[a]], la, c, lb, band, INFINITY, work));
				else
					bad += out[a * 12 + b] != (a == b ? 0.0 : -1.0);	/* the lower half is the caller's */
			}
	}
	CHECK(bad == 0, "%d pairwise distances differ from km_dtw_sq", bad);
	free(values);
	free(off);
}

static void
Resample(void)
{
	const float ramp[] = {0, 1, 2, 3};
	double		out[7];
	const float two[] = {5, 9};
	double		out2[3];

	km_dtw_resample(ramp, 4, out, 7);
	CHECK(out[0] == 0.0 && out[6] == 3.0 && out[1] == 0.5 && out[3] == 1.5,
		  "a ramp of 4 resampled to 7: %g %g %g %g", out[0], out[1], out[3], out[6]);
	km_dtw_resample(two, 2, out2, 3);
	CHECK(out2[0] == 5.0 && out2[1] == 7.0 && out2[2] == 9.0, "[5, 9] resampled to 3");
}

int
main(void)
{
	rng_state = 42;
	HandCases();
	BruteForce();
	Assignment();
	FewCenters();
	Pairwise();
	Resample();
	return TestReport();
}
