/*
 * test_softdtw.c -- the soft-DTW kernels (km_softdtw.c) against a plain dynamic programme in
 * long double (R by log-sum-exp, the gradient by the backward recursion of E as tslearn writes
 * it, that recursion itself checked by central differences), with and without a band, on
 * series of different lengths; hand-computed values; and the passes, whose every value and
 * gradient must be the bits of the one-row functions, whether a pair ran in the vector lanes
 * (rows of one length together) or alone, on any thread count.
 */
/* the row-by-row sums below must round as the kernel's do: no fused multiply-adds */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC optimize ("fp-contract=off")
#endif

#include "km_softdtw.h"

#include <math.h>

#include "test_util.h"

/* Whether cell (i, j) is in the band of a row of lx samples against a center of lc. */
static int
InBand(int i, int j, int lx, int lc, int band)
{
	int			lo,
				hi;

	km_dtw_band(i, lx, lc, band, &lo, &hi);
	return j >= lo && j <= hi;
}

/*
 * Soft-DTW of x and c by the definition, in long double; with grad (lc), its gradient with
 * respect to c from E(i, j) = sum over the successors s in the band of
 * E(s) exp((R(s) - cost(s) - R(i, j)) / gamma), E = 1 at the end.
 */
static long double
RefSoftDtw(const float *x, int lx, const double *c, int lc, int band, double gamma,
		   long double *grad)
{
	size_t		w = (size_t) lc + 2;
	long double *R = Alloc(sizeof(long double) * (lx + 2) * w),
			   *E = Alloc(sizeof(long double) * (lx + 2) * w);
	long double g = gamma,
				value;

	/* 1-based: row 0 and column 0 are the +inf border, R(0, 0) = 0 */
#define AT(M, i, j) (M)[(size_t) (i) * w + (j)]
#define IN(i, j) ((i) >= 1 && (i) <= lx && (j) >= 1 && (j) <= lc && InBand((i) - 1, (j) - 1, lx, lc, band))
#define COST(i, j) (((long double) x[(i) - 1] - c[(j) - 1]) * ((long double) x[(i) - 1] - c[(j) - 1]))
	for (size_t t = 0; t < (size_t) (lx + 2) * w; t++)
	{
		R[t] = INFINITY;
		E[t] = 0;
	}
	AT(R, 0, 0) = 0;
	for (int i = 1; i <= lx; i++)
		for (int j = 1; j <= lc; j++)
		{
			long double v[3] = {AT(R, i - 1, j), AT(R, i, j - 1), AT(R, i - 1, j - 1)};
			long double mn = fminl(v[0], fminl(v[1], v[2])),
						sum = 0;

			if (!IN(i, j))
				continue;
			for (int q = 0; q < 3; q++)
				if (isfinite(v[q]))
					sum += expl(-(v[q] - mn) / g);
			AT(R, i, j) = COST(i, j) + mn - g * logl(sum);
		}
	value = AT(R, lx, lc);
	if (grad != NULL)
	{
		for (int j = 0; j < lc; j++)
			grad[j] = 0;
		for (int i = lx; i >= 1; i--)
			for (int j = lc; j >= 1; j--)
			{
				const int	si[3] = {i + 1, i, i + 1},
							sj[3] = {j, j + 1, j + 1};
				long double e = i == lx && j == lc ? 1 : 0;

				if (!IN(i, j))
					continue;
				for (int q = 0; q < 3; q++)
					if (IN(si[q], sj[q]))
						e += AT(E, si[q], sj[q]) *
							expl((AT(R, si[q], sj[q]) - COST(si[q], sj[q]) - AT(R, i, j)) / g);
				AT(E, i, j) = e;
				grad[j - 1] += e * 2 * ((long double) c[j - 1] - x[i - 1]);
			}
	}
#undef AT
#undef IN
#undef COST
	free(R);
	free(E);
	return value;
}

static void
HandCases(void)
{
	double		work[64],
				g[2];
	const float one[] = {1},
				zz[] = {0, 0};
	const double three[] = {3},
				zzd[] = {0, 0};

	/* one cell: the cost, and d/dc (x - c)^2 = 2 (c - x) */
	g[0] = 0.0;
	CHECK(km_softdtw(one, 1, three, 1, -1, 1.0, work) == 4.0, "[1] vs [3]");
	CHECK(km_softdtw_grad(one, 1, three, 1, -1, 1.0, 1.0, g, work) == 4.0 && g[0] == 4.0,
		  "[1] vs [3]: gradient %.17g", g[0]);
	/* 2 x 2 of zero costs: R(1, 1) = softmin(0, 0, 0) = -gamma log 3 */
	for (double gamma = 0.25; gamma <= 4.0; gamma *= 4.0)
	{
		double		v = km_softdtw(zz, 2, zzd, 2, -1, gamma, work),
					want = -gamma * log(3.0);

		CHECK(fabs(v - want) <= 4e-16 * fabs(want), "zeros, gamma %g: %.17g, want %.17g", gamma,
			  v, want);
		g[0] = g[1] = 0.0;
		km_softdtw_grad(zz, 2, zzd, 2, -1, gamma, 1.0, g, work);
		CHECK(g[0] == 0.0 && g[1] == 0.0, "zeros, gamma %g: gradient %g %g", gamma, g[0], g[1]);
	}
	/* band 0 on equal lengths is the diagonal alone: softmin(inf, inf, 0) = 0 */
	CHECK(km_softdtw(zz, 2, zzd, 2, 0, 1.0, work) == 0.0, "zeros, band 0");
}

/* Random series of lengths 1 .. 30 against the reference, for several gammas and bands. */
static void
AgainstReference(void)
{
	enum
	{
		N = 30
	};
	const double gammas[] = {0.01, 0.1, 1.0, 10.0};
	const int	bands[] = {-1, 0, 1, 3};
	float		x[N];
	double		c[N],
				xd[N],
				g[N];
	long double gr[N];
	double	   *work = Alloc(sizeof(double) * km_softdtw_grad_work(N, N));
	double		worst_v = 0.0,
				worst_g = 0.0;
	int			bad_d = 0;

	for (int trial = 0; trial < 320; trial++)
	{
		int			lx = 1 + RandBelow(N),
					lc = 1 + RandBelow(N),
					band = bands[trial % 4];
		double		gamma = gammas[(trial / 4) % 4];
		long double ref,
					gmax = 0;
		double		v,
					vd,
					vg;

		for (int t = 0; t < lx; t++)
			x[t] = RandUnit() + (float) sin(0.3 * t);
		for (int t = 0; t < lc; t++)
			c[t] = 0.8 * RandUnit() + sin(0.3 * t + 0.5);
		ref = RefSoftDtw(x, lx, c, lc, band, gamma, gr);
		v = km_softdtw(x, lx, c, lc, band, gamma, work);
		for (int t = 0; t < lx; t++)
			xd[t] = (double) x[t];
		vd = km_softdtw_d(xd, lx, c, lc, band, gamma, work);
		bad_d += memcmp(&v, &vd, sizeof(double)) != 0;
		memset(g, 0, sizeof(g));
		vg = km_softdtw_grad(x, lx, c, lc, band, gamma, 1.0, g, work);
		bad_d += memcmp(&v, &vg, sizeof(double)) != 0;
		if (fabsl(v - ref) / fmaxl(1, fabsl(ref)) > worst_v)
			worst_v = (double) (fabsl(v - ref) / fmaxl(1, fabsl(ref)));
		for (int j = 0; j < lc; j++)
			gmax = fmaxl(gmax, fabsl(gr[j]));
		for (int j = 0; j < lc; j++)
			if (fabsl(g[j] - gr[j]) / fmaxl(1, gmax) > worst_g)
				worst_g = (double) (fabsl(g[j] - gr[j]) / fmaxl(1, gmax));
	}
	/*
	 * what float64 leaves, with room: values 3e-15; gradients 3e-14, and 3e-13 at gamma 0.01,
	 * where the factors exp((R(s) - cost(s) - R(p)) / gamma) amplify the rounding of R
	 */
	CHECK(worst_v <= 1e-13, "values: worst relative error %.3g against the reference", worst_v);
	CHECK(worst_g <= 1e-12, "gradients: worst relative error %.3g against the reference", worst_g);
	CHECK(bad_d == 0, "%d float64 rows or gradient calls differ from km_softdtw", bad_d);
	free(work);
}

/* The reference's E recursion against central differences of the value. */
static void
FiniteDifferences(void)
{
	float		x[17];
	double		c[13],
				g[13],
				work[64],
				gwork[17 * 13 + 4 * 13];
	long double gr[13];
	double		worst = 0.0;

	for (int t = 0; t < 17; t++)
		x[t] = (float) sin(0.4 * t) + 0.3f * RandUnit();
	for (int band = -1; band <= 2; band += 3)
		for (double gamma = 0.1; gamma <= 1.0; gamma *= 10.0)
		{
			for (int t = 0; t < 13; t++)
				c[t] = sin(0.5 * t) + 0.2 * RandUnit();
			RefSoftDtw(x, 17, c, 13, band, gamma, gr);
			memset(g, 0, sizeof(g));
			km_softdtw_grad(x, 17, c, 13, band, gamma, 1.0, g, gwork);
			for (int j = 0; j < 13; j++)
			{
				const double h = 1e-5;
				double		keep = c[j],
							up,
							down,
							fd;

				c[j] = keep + h;
				up = km_softdtw(x, 17, c, 13, band, gamma, work);
				c[j] = keep - h;
				down = km_softdtw(x, 17, c, 13, band, gamma, work);
				c[j] = keep;
				fd = (up - down) / (2 * h);
				if (fabs(fd - (double) gr[j]) > worst)
					worst = fabs(fd - (double) gr[j]);
				if (fabs(fd - g[j]) > worst)
					worst = fabs(fd - g[j]);
			}
		}
	CHECK(worst <= 1e-7, "gradients differ from central differences by %.3g", worst);
}

/*
 * n rows: most of length 20 (the lanes), the others 17 .. 23, with weights, one of them 0.
 * lens[i] the length of row i.
 */
static void
MakeRows(KmSeries *s, int64_t n, float **values, int64_t **off, float **w)
{
	*off = Alloc(sizeof(int64_t) * (n + 1));
	*w = Alloc(sizeof(float) * n);
	(*off)[0] = 0;
	for (int64_t i = 0; i < n; i++)
	{
		int			len = i % 5 == 3 ? 17 + RandBelow(7) : 20;

		(*off)[i + 1] = (*off)[i] + len;
		(*w)[i] = i == 7 ? 0.0f : 0.5f + (float) RandBelow(4);
	}
	*values = Alloc(sizeof(float) * (*off)[n]);
	for (int64_t i = 0; i < n; i++)
		for (int64_t t = (*off)[i]; t < (*off)[i + 1]; t++)
			(*values)[t] = (float) sin(0.3 * (double) (t - (*off)[i]) + 0.1 * (double) i) +
				0.4f * RandUnit();
	s->n = n;
	s->values = *values;
	s->off = *off;
	s->w = *w;
}

static int
SameBits(const double *a, const double *b, size_t n)
{
	return memcmp(a, b, sizeof(double) * n) == 0;
}

/* The assignment: each row's value is km_softdtw's least over the centers, on any thread count. */
static void
Assignment(void)
{
	enum
	{
		n = 60,
		lc = 20
	};
	KmSeries	s;
	float	   *values,
			   *w;
	int64_t    *off;
	double		c[9 * lc],
				work[2 * lc],
				value[2][n];
	int32_t		labels[2][n];
	KmError		err = {0};

	MakeRows(&s, n, &values, &off, &w);
	for (int t = 0; t < 9 * lc; t++)
		c[t] = sin(0.3 * (t % lc) + 0.7 * (t / lc)) + 0.2 * RandUnit();
	memcpy(c + 2 * lc, c, sizeof(double) * lc);	/* center 2 a copy of 0: ties to the lower */
	for (int k = 1; k <= 9; k += 2)
		for (int band = -1; band <= 3; band += 4)
			for (double gamma = 0.05; gamma <= 1.0; gamma *= 20.0)
			{
				KmDtwCenters cs = {k, lc, band, c, 0, NULL, NULL};
				int			wrong = 0,
							differ = 0;

				CHECK(km_softdtw_assign(&s, 0, n, &cs, gamma, 1, labels[0], value[0], &err) == KM_OK,
					  "assignment");
				CHECK(km_softdtw_assign(&s, 0, 27, &cs, gamma, 3, labels[1], value[1], &err) == KM_OK &&
					  km_softdtw_assign(&s, 27, n, &cs, gamma, 3, labels[1], value[1], &err) == KM_OK,
					  "assignment on three threads, in two ranges");
				for (int64_t i = 0; i < n; i++)
				{
					double		best = INFINITY;
					int			bj = 0;

					for (int j = 0; j < k; j++)
					{
						double		v = km_softdtw(values + off[i], (int) (off[i + 1] - off[i]),
												   c + j * lc, lc, band, gamma, work);

						if (j == 0 || v < best)
						{
							best = v;
							bj = j;
						}
					}
					wrong += labels[0][i] != bj || !SameBits(&value[0][i], &best, 1);
					differ += labels[1][i] != labels[0][i] || !SameBits(&value[1][i], &value[0][i], 1);
				}
				CHECK(wrong == 0, "k %d band %d gamma %g: %d rows differ from km_softdtw", k, band,
					  gamma, wrong);
				CHECK(differ == 0, "k %d band %d gamma %g: %d rows depend on the threads", k, band,
					  gamma, differ);
			}
	free(values);
	free(off);
	free(w);
}

/*
 * The objective.  A call of at most 8 rows is one piece (PIECE_ROWS), summed from zero in row
 * order, so it must give the bits of km_softdtw_grad called row by row; bigger calls must not
 * depend on the threads, and must agree with the reference.
 */
static void
Objective(void)
{
	enum
	{
		n = 60,
		lc = 20
	};
	/* subsets of one piece: 8 rows of length 20 (full lanes), 5 (unused lanes), 20-long rows
	 * with others mixed in, a row with weight 0 (row 7), one row alone */
	static const int64_t sets[][8] = {
		{0, 1, 2, 4, 5, 6, 9, 10}, {11, 12, 14, 15, 16}, {0, 3, 1, 8, 2, 13}, {5, 7, 6, 18, 9},
		{3}, {4}
	};
	static const int set_len[] = {8, 5, 6, 5, 1, 1};
	KmSeries	s;
	float	   *values,
			   *w;
	int64_t    *off;
	int64_t		all[n];
	double		c[lc],
				grad[3][lc],
				f[3];
	double	   *work = Alloc(sizeof(double) * km_softdtw_grad_work(23, lc));
	long double gr[lc],
				fr,
				ggr[lc];
	KmError		err = {0};

	MakeRows(&s, n, &values, &off, &w);
	for (int t = 0; t < lc; t++)
		c[t] = sin(0.3 * t) + 0.3 * RandUnit();
	for (int64_t i = 0; i < n; i++)
		all[i] = (i * 37) % n;	/* not in index order */
	for (int band = -1; band <= 3; band += 4)
		for (double gamma = 0.05; gamma <= 1.0; gamma *= 20.0)
		{
			int			bad = 0;
			long double gmax = 0;
			double		worst = 0.0;

			for (size_t q = 0; q < sizeof(set_len) / sizeof(set_len[0]); q++)
			{
				f[0] = f[1] = 0.0;
				memset(grad, 0, sizeof(grad));
				CHECK(km_softdtw_objective(&s, sets[q], set_len[q], c, lc, band, gamma, 1, &f[0],
										   grad[0], &err) == KM_OK, "objective");
				for (int t = 0; t < set_len[q]; t++)
				{
					int64_t		r = sets[q][t];

					if (w[r] == 0.0f)
						continue;
					f[1] += (double) w[r] * km_softdtw_grad(values + off[r], (int) (off[r + 1] - off[r]),
															c, lc, band, gamma, (double) w[r],
															grad[1], work);
				}
				bad += !SameBits(&f[0], &f[1], 1) || !SameBits(grad[0], grad[1], lc);
			}
			CHECK(bad == 0, "band %d gamma %g: %d pieces differ from row-by-row gradients", band,
				  gamma, bad);

			/* all rows, in two calls, on one and on three threads */
			for (int v = 0; v < 2; v++)
			{
				f[v] = 0.0;
				memset(grad[v], 0, sizeof(grad[v]));
				CHECK(km_softdtw_objective(&s, all, 24, c, lc, band, gamma, v == 0 ? 1 : 3, &f[v],
										   grad[v], &err) == KM_OK &&
					  km_softdtw_objective(&s, all + 24, n - 24, c, lc, band, gamma, v == 0 ? 1 : 3,
										   &f[v], grad[v], &err) == KM_OK, "objective of every row");
			}
			CHECK(SameBits(&f[0], &f[1], 1) && SameBits(grad[0], grad[1], lc),
				  "band %d gamma %g: the objective depends on the threads", band, gamma);
			fr = 0;
			memset(ggr, 0, sizeof(ggr));
			for (int64_t i = 0; i < n; i++)
			{
				fr += w[i] * RefSoftDtw(values + off[i], (int) (off[i + 1] - off[i]), c, lc, band, gamma, gr);
				for (int j = 0; j < lc; j++)
					ggr[j] += w[i] * gr[j];
			}
			for (int j = 0; j < lc; j++)
				gmax = fmaxl(gmax, fabsl(ggr[j]));
			for (int j = 0; j < lc; j++)
				worst = fmax(worst, (double) (fabsl(grad[0][j] - ggr[j]) / gmax));
			CHECK(fabsl(f[0] - fr) <= 1e-13 * fabsl(fr) && worst <= 1e-12,
				  "band %d gamma %g: objective %.17g against %.17Lg, gradient off by %.3g", band, gamma,
				  f[0], fr, worst);
		}
	free(values);
	free(off);
	free(w);
	free(work);
}

/* Pairwise values are km_softdtw of the two rows, on any thread count. */
static void
Pairwise(void)
{
	enum
	{
		n = 40,
		m = 23
	};
	KmSeries	s;
	float	   *values,
			   *w;
	int64_t    *off;
	int64_t		rows[m];
	double		out[2][m * m],
				cb[32],
				work[64];
	KmError		err = {0};

	MakeRows(&s, n, &values, &off, &w);
	for (int i = 0; i < m; i++)
		rows[i] = (i * 7) % n;
	for (int band = -1; band <= 2; band += 3)
	{
		int			bad = 0;

		for (int v = 0; v < 2; v++)
			for (int i = 0; i < m * m; i++)
				out[v][i] = -1.0;
		CHECK(km_softdtw_pairwise(&s, rows, m, 0, m, band, 0.5, 1, out[0], &err) == KM_OK,
			  "pairwise");
		CHECK(km_softdtw_pairwise(&s, rows, m, 0, 9, band, 0.5, 3, out[1], &err) == KM_OK &&
			  km_softdtw_pairwise(&s, rows, m, 9, m, band, 0.5, 2, out[1], &err) == KM_OK,
			  "pairwise on more threads, in two ranges");
		for (int a = 0; a < m; a++)
			for (int b = 0; b < m; b++)
			{
				int			la = (int) (off[rows[a] + 1] - off[rows[a]]),
							lb = (int) (off[rows[b] + 1] - off[rows[b]]);
				double		want = -1.0;

				if (b >= a)
				{
					for (int t = 0; t < lb; t++)
						cb[t] = (double) values[off[rows[b]] + t];
					want = km_softdtw(values + off[rows[a]], la, cb, lb, band, 0.5, work);
				}
				bad += !SameBits(&out[0][a * m + b], &want, 1) ||
					!SameBits(&out[1][a * m + b], &want, 1);
			}
		CHECK(bad == 0, "band %d: %d pairwise values differ from km_softdtw", band, bad);
	}
	free(values);
	free(off);
	free(w);
}

int
main(void)
{
	rng_state = 7;
	HandCases();
	AgainstReference();
	FiniteDifferences();
	Assignment();
	Objective();
	Pairwise();
	return TestReport();
}
