/*
 * softdtw.c -- what metric => 'softdtw' changes in dtw.c's fit loop: the assignment by soft-DTW
 * (Cuturi & Blondel 2017), the soft-DTW barycenter of each cluster, and kmeans_softdtw(x, y
 * [, gamma [, band]]).  The arithmetic is in km_softdtw.c, the minimiser in km_lbfgs.c.
 *
 * A center's update is tslearn's softdtw_barycenter(X, gamma, max_iter=barycenter_iter,
 * init=the center, tol=1e-3): the center c minimising sum_r w_r soft-DTW(x_r, c) over its rows,
 * found by L-BFGS from where the center was, with scipy's L-BFGS-B rules (no bounds) for the
 * steps and the stop (km_lbfgs.h).  The objective and its gradient sum the rows in row order
 * in pieces of a fixed size, so the centers do not depend on the thread count.
 *
 * The fit's inertia is the sum of w soft-DTW(row, center) over the rows, the objective this
 * k-means lowers; it can be negative.  tslearn reports the mean of the squared values instead,
 * which no longer orders fits once values change sign.
 */
#include "dtw.h"

#include <math.h>

#include "km_lbfgs.h"
#include "km_softdtw.h"

#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(kmeans_softdtw);

/* tslearn's tolerance for a barycenter's L-BFGS (softdtw_barycenter's tol) */
#define BARYCENTER_TOL 1e-3

/*
 * The center of least soft-DTW for rows [r0, r1) of the fit, in slices with a cancel check
 * between them.
 */
void
KmeansSoftDtwAssign(DtwFit *f, int k, const double *c, int64 r0, int64 r1, int32 *labels,
					double *value)
{
	KmDtwCenters cs;
	KmError		err = {0};
	int64		slice = KmeansDtwSliceRows((double) f->max_len * f->lc * k);

	memset(&cs, 0, sizeof(cs));
	cs.k = k;
	cs.lc = f->lc;
	cs.band = f->opt->dtw_band;
	cs.c = c;
	for (int64 a = r0; a < r1; a += slice)
	{
		int64		b = Min(r1, a + slice);

		CHECK_FOR_INTERRUPTS();
		KmeansCheckStatus(km_softdtw_assign(&f->s, a, b, &cs, f->opt->gamma, f->nthreads, labels,
											value, &err), &err);
		KmeansProgressRows(b, f->n);
	}
	f->computed += (r1 - r0) * k;
}

/* Soft-DTW of row i and a center c of the fit's length. */
double
KmeansSoftDtwRow(const DtwFit *f, int64 i, const double *c)
{
	double	   *work = palloc(sizeof(double) * 2 * f->lc);
	double		v = km_softdtw(f->s.values + f->s.off[i], (int) (f->s.off[i + 1] - f->s.off[i]), c,
							   f->lc, f->opt->dtw_band, f->opt->gamma, work);

	pfree(work);
	return v;
}

/* One barycenter's problem: its rows, for the objective L-BFGS evaluates. */
typedef struct Barycenter
{
	DtwFit	   *f;
	const int64 *rows;
	int64		m;
	int64		slice;
} Barycenter;

/* sum_r w_r soft-DTW(x_r, c) and its gradient, in slices with a cancel check between them. */
static double
Objective(const double *c, double *grad, void *arg)
{
	Barycenter *b = arg;
	DtwFit	   *f = b->f;
	double		value = 0.0;
	KmError		err = {0};

	memset(grad, 0, sizeof(double) * f->lc);
	for (int64 a = 0; a < b->m; a += b->slice)
	{
		CHECK_FOR_INTERRUPTS();
		KmeansCheckStatus(km_softdtw_objective(&f->s, b->rows + a, Min(b->m - a, b->slice), c,
											   f->lc, f->opt->dtw_band, f->opt->gamma,
											   f->nthreads, &value, grad, &err), &err);
	}
	return value;
}

/*
 * Moves every center with rows (mass[j] > 0) to the soft-DTW barycenter of its rows of positive
 * weight, from where it is; returns the L-BFGS iterations of all centers together.
 */
int64
KmeansSoftDtwUpdate(DtwFit *f, int k, double *c, const double *mass)
{
	int64	   *start = palloc0(sizeof(int64) * (k + 1));
	int64	   *rows = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(f->n, 1));
	int64	   *fill = palloc(sizeof(int64) * k);
	double	   *work;
	KmLbfgsOptions lo;
	int64		iters = 0;
	int64		slice = KmeansDtwSliceRows((double) f->max_len * f->lc * 2);

	/* each cluster's rows in row order */
	for (int64 i = 0; i < f->n; i++)
		if (KmeansDtwRowWeight(f, i) > 0.0)
			start[f->labels[i] + 1]++;
	for (int j = 0; j < k; j++)
		start[j + 1] += start[j];
	memcpy(fill, start, sizeof(int64) * k);
	for (int64 i = 0; i < f->n; i++)
		if (KmeansDtwRowWeight(f, i) > 0.0)
			rows[fill[f->labels[i]]++] = i;

	km_lbfgs_defaults(&lo, BARYCENTER_TOL, f->opt->barycenter_iter);
	work = MemoryContextAllocHuge(CurrentMemoryContext,
								  sizeof(double) * km_lbfgs_work_doubles(f->lc, lo.m));
	for (int j = 0; j < k; j++)
	{
		Barycenter	b;
		KmLbfgsResult res;

		if (!(mass[j] > 0.0) || start[j + 1] == start[j])
			continue;
		b.f = f;
		b.rows = rows + start[j];
		b.m = start[j + 1] - start[j];
		b.slice = slice;
		km_lbfgs(f->lc, c + (int64) j * f->lc, Objective, &b, &lo, work, &res);
		iters += res.iters;
	}
	pfree(start);
	pfree(rows);
	pfree(fill);
	pfree(work);
	return iters;
}

/*
 * kmeans_softdtw(x real[], y real[], gamma float8 DEFAULT 1.0, band integer DEFAULT NULL): the
 * soft-DTW of two series (tslearn.metrics.soft_dtw), within the Sakoe-Chiba band of that radius.
 */
Datum
kmeans_softdtw(PG_FUNCTION_ARGS)
{
	int			lx,
				ly;
	const float *x,
			   *y;
	double	   *c,
			   *work;
	double		gamma;
	int			band;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kmeans_softdtw: gamma must not be NULL"),
				 errhint("Leave gamma out for 1, or pass a number > 0.")));
	gamma = PG_GETARG_FLOAT8(2);
	KmeansCheckGamma(gamma);
	band = KmeansDtwBandArg(fcinfo, 3);
	x = KmeansCheckSeries(PG_GETARG_ARRAYTYPE_P(0), "x", &lx);
	y = KmeansCheckSeries(PG_GETARG_ARRAYTYPE_P(1), "y", &ly);
	if ((double) ly * 8 * 3 > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("y has %d samples, more than kmeans_softdtw takes (%d)", ly,
						(int) (MaxAllocSize / 24)),
				 errhint("Resample the series to fewer samples.")));
	c = palloc(sizeof(double) * ly);
	work = palloc(sizeof(double) * 2 * ly);
	for (int t = 0; t < ly; t++)
		c[t] = (double) y[t];
	PG_RETURN_FLOAT8(km_softdtw(x, lx, c, ly, band, gamma, work));
}
