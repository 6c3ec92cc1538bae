/*
 * dtw.c -- k-means of series under dynamic time warping (metric => 'dtw', and the loop of
 * metric => 'softdtw' too, whose own steps are in softdtw.c): the fit loop of
 * tslearn's TimeSeriesKMeans(metric="dtw") over rows the reader kept whole (KmeansSeriesRows),
 * its k-means++ and random seeding, the quality indices kmeans_elbow shows, the nearest center
 * of a saved model, and kmeans_dtw(x, y [, band]).  The arithmetic is in km_dtw.c.
 *
 * One run for one k:
 *     repeat up to max_iter times:
 *         assign every row to its nearest center by DTW (pruned by a lower bound, exact);
 *         give an empty cluster the row farthest from its center (tslearn gives up instead);
 *         move every center to the DTW Barycenter Average of its rows (Petitjean et al. 2011),
 *             up to barycenter_iter steps from the center it had;
 *         stop when the mean squared DTW of the assignment changed by less than tol;
 * then one more assignment to the final centers, rounded to float32 as they are returned and
 * saved, gives the labels, sizes and inertia (the sum of w DTW^2), so that kmeans_predict on
 * the saved model agrees with the labels.  tslearn reports the assignment before the last
 * update instead; the stop rule, the DBA steps and their stop rule (1e-5 on the mean cost) are
 * tslearn's, and its labels are those of predict on its final centers.
 *
 * Centers have one length: the longest row's, or init_centers' width.  A row or seed of
 * another length is resampled linearly to it where it becomes a center, as tslearn's
 * TimeSeriesResampler does; distances take rows as they are.
 *
 * Under metric => 'softdtw' the loop is the same with soft-DTW (gamma) in place of DTW^2 for
 * the assignment, the inertia and the stop rule, and soft-DTW barycenters (softdtw.c) in
 * place of DBA; seeding keeps DTW^2, since soft-DTW can be negative and k-means++ draws rows
 * in proportion to a cost that is not.
 *
 * Every pass runs on kmeans.threads threads in slices of about 2^27 matrix cells, with a
 * cancel check between slices; results never depend on the thread count.  On the GPU
 * (device => 'gpu', or 'auto' with one usable; session.c starts the backend) the assignments
 * without a cutoff, those of the iterations, the final labels and seeding's first center, go
 * to the backend's series_assign in the same slices, with the CPU's labels and DTW^2 bit for
 * bit; seeding's candidate updates, DBA, the quality indices and all of soft-DTW stay here.
 */
#include "dtw.h"

#include <math.h>

#include "km_quality.h"
#include "km_softdtw.h"

#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(kmeans_dtw);

/* Matrix cells of a slice of work between two cancel checks. */
#define SLICE_CELLS ((int64) 1 << 27)
/* tslearn's stop rule for the DBA steps of one update: the mean cost changed by less */
#define DBA_TOL 1e-5

/* ---------------------------------------------------------------------------------------------
 * Passes
 * ------------------------------------------------------------------------------------------- */

/* Rows of a slice for work of cells_per_row cells each. */
int64
KmeansDtwSliceRows(double cells_per_row)
{
	double		rows = (double) SLICE_CELLS / Max(cells_per_row, 1.0);

	return (int64) Max(64.0, Min(rows, (double) PG_INT64_MAX / 4));
}

/*
 * The nearest of k centers (k x lc, float64) for rows [r0, r1), with kmeans.prune's lower
 * bound; with cutoff, only a center strictly below a row's cutoff is taken (km_dtw_assign).
 * Without a cutoff, on the fit's GPU backend where it has one: every DTW computed, the same
 * labels and distances.
 */
static void
AssignRange(DtwFit *f, int k, const double *c, int64 r0, int64 r1, const double *cutoff,
			int32 *labels, double *dist)
{
	KmDtwCenters cs;
	KmError		err = {0};
	KmBackend  *be = cutoff == NULL ? f->data->be : NULL;
	int64		slice = KmeansDtwSliceRows((double) f->max_len * f->lc *
										   (kmeans_prune && be == NULL ? Min(k, 4) : k));

	cs.k = k;
	cs.lc = f->lc;
	cs.band = f->opt->dtw_band;
	cs.c = c;
	cs.env_len = 0;
	cs.env_lo = cs.env_hi = NULL;
	if (be != NULL)
	{
		for (int64 a = r0; a < r1; a += slice)
		{
			int64		b = Min(r1, a + slice);

			CHECK_FOR_INTERRUPTS();
			KmeansCheckStatus(be->ops->series_assign(be, &f->s, a, b, &cs, labels, dist, &err),
							  &err);
			f->computed += (b - a) * k;
			KmeansProgressRows(b, f->n);
		}
		return;
	}
	if (f->same_len && kmeans_prune)
	{
		double	   *lo = f->env,
				   *hi = f->env + (int64) k * f->lc;

		for (int j = 0; j < k; j++)
			km_dtw_envelope(c + (int64) j * f->lc, f->lc, f->lc, cs.band, lo + (int64) j * f->lc,
							hi + (int64) j * f->lc, f->queue);
		cs.env_len = f->lc;
		cs.env_lo = lo;
		cs.env_hi = hi;
	}
	for (int64 a = r0; a < r1; a += slice)
	{
		int64		b = Min(r1, a + slice);

		CHECK_FOR_INTERRUPTS();
		KmeansCheckStatus(km_dtw_assign(&f->s, a, b, &cs, kmeans_prune, cutoff, f->nthreads,
										labels, dist, &f->computed, &err), &err);
		KmeansProgressRows(b, f->n);
	}
}

/* min(DTW^2, cutoff[i]) of every row i against each of k centers: out[i * k + j]. */
static void
CrossRange(DtwFit *f, int k, const double *c, const double *cutoff, double *out)
{
	KmDtwCenters cs;
	KmError		err = {0};
	int64		slice = KmeansDtwSliceRows((double) f->max_len * f->lc * k);

	memset(&cs, 0, sizeof(cs));
	cs.k = k;
	cs.lc = f->lc;
	cs.band = f->opt->dtw_band;
	cs.c = c;
	for (int64 a = 0; a < f->n; a += slice)
	{
		int64		b = Min(f->n, a + slice);

		CHECK_FOR_INTERRUPTS();
		KmeansCheckStatus(km_dtw_cross(&f->s, a, b, &cs, cutoff, f->nthreads, out + a * k, &err),
						  &err);
		KmeansProgressRows(b, f->n);
	}
	f->computed += f->n * k;
}

/*
 * Each row of [r0, r1)'s center of least cost: DTW^2 (pruned, exact) or soft-DTW, by the
 * fit's metric.  Seeding keeps DTW^2 under both (SeedPlusPlus).
 */
static void
CostRange(DtwFit *f, int k, const double *c, int64 r0, int64 r1, int32 *labels, double *dist)
{
	if (f->opt->metric == KM_METRIC_SOFTDTW)
		KmeansSoftDtwAssign(f, k, c, r0, r1, labels, dist);
	else
		AssignRange(f, k, c, r0, r1, NULL, labels, dist);
}

/* A row as a center of lc samples: itself, or resampled to lc. */
static void
RowAsCenter(const DtwFit *f, int64 i, double *out)
{
	const float *x = f->s.values + f->s.off[i];
	int			lx = (int) (f->s.off[i + 1] - f->s.off[i]);

	if (lx == f->lc)
		for (int t = 0; t < lx; t++)
			out[t] = (double) x[t];
	else
		km_dtw_resample(x, lx, out, f->lc);
}

/* ---------------------------------------------------------------------------------------------
 * Seeding
 * ------------------------------------------------------------------------------------------- */

/* k-means++ candidates per center: 2 + ln k, as seed.c and scikit-learn draw. */
static int
Trials(int k)
{
	return 2 + (int) log((double) k);
}

/*
 * Greedy k-means++ under DTW^2, as seed.c runs it for vectors: the first center a row drawn
 * by weight, then each next one the best of t candidates drawn in proportion to w D^2, best
 * meaning the lowest potential after adding it.  A candidate's D^2 updates abandon a row's
 * DTW once it passes the row's current D^2, which is all the update needs.
 */
static void
SeedPlusPlus(DtwFit *f, int k, int t, KmRng *rng, double *c)
{
	int64		n = f->n;
	int			lc = f->lc;
	double	   *mind = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * n);
	double	   *cand_d = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * n * t);
	double	   *cand = palloc(sizeof(double) * t * lc);
	double	   *pot = palloc(sizeof(double) * t);
	int64	   *rows = palloc(sizeof(int64) * t);
	int64		first = KmeansFirstCenterRow(f->data, rng);

	RowAsCenter(f, first, c);
	AssignRange(f, 1, c, 0, n, NULL, f->labels, mind);
	for (int ci = 1; ci < k; ci++)
	{
		double		total = 0.0;
		int64		fallback = n - 1;
		int			best = 0;

		for (int64 i = 0; i < n; i++)
			total += KmeansDtwRowWeight(f, i) * mind[i];
		for (int64 i = n - 1; i >= 0; i--)
			if (KmeansDtwRowWeight(f, i) * mind[i] > 0.0)
			{
				fallback = i;
				break;
			}
		for (int j = 0; j < t; j++)
		{
			double		target = km_rng_uniform(rng) * total,
						cum = 0.0;

			rows[j] = fallback;
			for (int64 i = 0; i < n; i++)
			{
				double		v = KmeansDtwRowWeight(f, i) * mind[i];

				cum += v;
				if (v > 0.0 && cum > target)
				{
					rows[j] = i;
					break;
				}
			}
		}
		for (int j = 0; j < t; j++)
			RowAsCenter(f, rows[j], cand + (int64) j * lc);
		/* every row's D^2 with each candidate added: min(D^2, DTW^2), the candidates together */
		CrossRange(f, t, cand, mind, cand_d);
		for (int j = 0; j < t; j++)
		{
			pot[j] = 0.0;
			for (int64 i = 0; i < n; i++)
				pot[j] += KmeansDtwRowWeight(f, i) * cand_d[i * t + j];
			if (pot[j] < pot[best])
				best = j;
		}
		memcpy(c + (int64) ci * lc, cand + (int64) best * lc, sizeof(double) * lc);
		for (int64 i = 0; i < n; i++)
			mind[i] = cand_d[i * t + best];
	}
	pfree(mind);
	pfree(cand_d);
	pfree(cand);
	pfree(pot);
	pfree(rows);
}

/*
 * Starting centers of every segment for seeding run `run` (seeds: seg_off[nseg] x lc), as
 * seed.c makes them: k-means++ seeds the largest k of each run of segments with the same
 * trials and the smaller ones take its first centers, which is what they would draw alone;
 * random seeding takes distinct rows; explicit centers are init_centers.
 */
static void
SeedSegments(DtwFit *f, const KmeansModelSet *ms, int run, double *seeds)
{
	const KmeansOptions *opt = f->opt;
	int			lc = f->lc;
	double		start = KmeansStepStart();

	KmeansProgressSetPhase(KMEANS_PROGRESS_SEEDING, run + 1, 0);
#define SEG_K(j) (ms->seg_off[(j) + 1] - ms->seg_off[j])
	for (int s = 0; s < ms->nseg;)
	{
		int			last = s;
		int			k;
		double	   *c;

		if (opt->init == KMEANS_INIT_PLUSPLUS)
			while (last + 1 < ms->nseg && Trials(SEG_K(last + 1)) == Trials(SEG_K(s)))
				last++;
		k = SEG_K(last);
		c = seeds + (int64) ms->seg_off[last] * lc;
		if (opt->init == KMEANS_INIT_EXPLICIT)
		{
			const float *v = KmeansCheckStartCenters(opt->init_centers, k, lc);

			for (int64 i = 0; i < (int64) k * lc; i++)
				c[i] = (double) v[i];
		}
		else if (opt->init == KMEANS_INIT_RANDOM)
		{
			int64	   *rows = palloc(sizeof(int64) * k);

			KmeansSampleRows(f->data, k, KmeansRunSeed(opt, run), rows);
			for (int j = 0; j < k; j++)
				RowAsCenter(f, rows[j], c + (int64) j * lc);
			pfree(rows);
		}
		else
		{
			KmRng		rng;

			km_rng_seed(&rng, KmeansRunSeed(opt, run));
			SeedPlusPlus(f, k, Trials(k), &rng, c);
		}
		for (int j = s; j < last; j++)
			memcpy(seeds + (int64) ms->seg_off[j] * lc, c, sizeof(double) * SEG_K(j) * lc);
		s = last + 1;
	}
#undef SEG_K
	KmeansStepEnd(KMEANS_PHASE_SEED, start, 0, ms->nseg, NAN);
}

/* ---------------------------------------------------------------------------------------------
 * Iterations
 * ------------------------------------------------------------------------------------------- */

/*
 * Empty clusters (no row of positive weight) each take the row farthest from its center among
 * the rows of positive weight whose cluster keeps another such row, as the vector engine's
 * repair does; the center becomes that row.  mass and members (per cluster) are kept up to
 * date.
 */
static int
RepairEmpty(DtwFit *f, int k, double *c, double *mass, int64 *members)
{
	int			repaired = 0;
	double	   *work = palloc(sizeof(double) * 2 * (f->lc + 1));

	for (int j = 0; j < k; j++)
	{
		int64		far = -1;

		if (members[j] > 0)
			continue;
		for (int64 i = 0; i < f->n; i++)
			if (KmeansDtwRowWeight(f, i) > 0.0 && members[f->labels[i]] > 1 &&
				(far < 0 || f->dist[i] > f->dist[far]))
				far = i;
		if (far < 0)
			continue;			/* fewer rows of positive weight than k: refused before */
		members[f->labels[far]]--;
		mass[f->labels[far]] -= KmeansDtwRowWeight(f, far);
		RowAsCenter(f, far, c + (int64) j * f->lc);
		f->labels[far] = j;
		if (f->opt->metric == KM_METRIC_SOFTDTW)
			f->dist[far] = KmeansSoftDtwRow(f, far, c + (int64) j * f->lc);
		else
			f->dist[far] = km_dtw_sq(f->s.values + f->s.off[far],
									 (int) (f->s.off[far + 1] - f->s.off[far]),
									 c + (int64) j * f->lc, f->lc, f->opt->dtw_band, INFINITY,
									 work);
		members[j] = 1;
		mass[j] = KmeansDtwRowWeight(f, far);
		repaired++;
	}
	pfree(work);
	return repaired;
}

/*
 * The DBA update of every center with rows (returns the steps of all centers together): up
 * to barycenter_iter steps, each aligning the
 * rows with their center and moving every center sample to the weighted mean of the samples
 * aligned with it; a center stops when its mean cost changed by less than 1e-5 or rose (the
 * rising step still applied), as tslearn's dtw_barycenter_averaging stops.
 */
static int64
UpdateCenters(DtwFit *f, int k, double *c, const double *mass)
{
	int			lc = f->lc;
	double	   *sums = palloc(sizeof(double) * k * lc);
	double	   *counts = palloc(sizeof(double) * k * lc);
	double	   *cost = palloc(sizeof(double) * k);
	double	   *prev = palloc(sizeof(double) * k);
	uint8	   *active = palloc(sizeof(uint8) * k);
	int			nactive = 0;
	int64		steps = 0;
	int64		slice = KmeansDtwSliceRows((double) f->max_len * lc);
	KmError		err = {0};

	for (int j = 0; j < k; j++)
	{
		active[j] = mass[j] > 0.0;
		nactive += active[j];
		prev[j] = INFINITY;
	}
	for (int step = 0; step < f->opt->barycenter_iter && nactive > 0; step++)
	{
		KmDtwCenters cs;

		memset(sums, 0, sizeof(double) * k * lc);
		memset(counts, 0, sizeof(double) * k * lc);
		memset(cost, 0, sizeof(double) * k);
		cs.k = k;
		cs.lc = lc;
		cs.band = f->opt->dtw_band;
		cs.c = c;
		cs.env_len = 0;
		cs.env_lo = cs.env_hi = NULL;
		steps += nactive;
		for (int64 a = 0; a < f->n; a += slice)
		{
			CHECK_FOR_INTERRUPTS();
			KmeansCheckStatus(km_dtw_dba_pass(&f->s, a, Min(f->n, a + slice), f->labels, &cs,
											  active, f->nthreads, sums, counts, cost, &err),
							  &err);
		}
		for (int j = 0; j < k; j++)
		{
			double		mean_cost;

			if (!active[j])
				continue;
			mean_cost = cost[j] / mass[j];
			for (int t = 0; t < lc; t++)
				if (counts[(int64) j * lc + t] > 0.0)
					c[(int64) j * lc + t] = sums[(int64) j * lc + t] / counts[(int64) j * lc + t];
			if (fabs(prev[j] - mean_cost) < DBA_TOL || prev[j] < mean_cost)
			{
				active[j] = 0;
				nactive--;
			}
			else
				prev[j] = mean_cost;
		}
	}
	pfree(sums);
	pfree(counts);
	pfree(cost);
	pfree(prev);
	pfree(active);
	return steps;
}

/*
 * The assignment to the centers as returned (c rounded to float32, into out), with the sizes
 * and inertia per center; the labels and distances stay in f.
 */
static void
FinalAssign(DtwFit *f, int k, double *c, float *out, int64 *sizes, double *inertia)
{
	for (int64 i = 0; i < (int64) k * f->lc; i++)
	{
		out[i] = (float) c[i];
		c[i] = (double) out[i];
	}
	CostRange(f, k, c, 0, f->n, f->labels, f->dist);
	memset(sizes, 0, sizeof(int64) * k);
	memset(inertia, 0, sizeof(double) * k);
	for (int64 i = 0; i < f->n; i++)
	{
		sizes[f->labels[i]]++;
		inertia[f->labels[i]] += KmeansDtwRowWeight(f, i) * f->dist[i];
	}
}

/* One run of segment s of ms from its seeds c (k x lc), which it moves. */
static void
IterateSegment(DtwFit *f, KmeansModelSet *ms, int s, int run, double *c)
{
	const KmeansOptions *opt = f->opt;
	int			k = ms->seg_off[s + 1] - ms->seg_off[s];
	int			off = ms->seg_off[s];
	double	   *mass = palloc(sizeof(double) * k);
	int64	   *members = palloc(sizeof(int64) * k);
	int32	   *prev = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * f->n);
	double		old = INFINITY;
	double		weight_total = 0.0;
	double		start;

	for (int64 i = 0; i < f->n; i++)
		weight_total += KmeansDtwRowWeight(f, i);
	ms->n_iter[s] = 0;
	ms->converged[s] = false;
	for (int it = 1; it <= opt->max_iter; it++)
	{
		double		sum = 0.0,
					mean;
		int64		changed = 0;
		int			repaired;

		start = KmeansStepStart();
		KmeansProgressSetPhase(KMEANS_PROGRESS_ITERATING, run + 1, it);
		f->computed = 0;
		CostRange(f, k, c, 0, f->n, f->labels, f->dist);
		memset(mass, 0, sizeof(double) * k);
		memset(members, 0, sizeof(int64) * k);
		for (int64 i = 0; i < f->n; i++)
			if (KmeansDtwRowWeight(f, i) > 0.0)
			{
				mass[f->labels[i]] += KmeansDtwRowWeight(f, i);
				members[f->labels[i]]++;
			}
		repaired = RepairEmpty(f, k, c, mass, members);
		for (int64 i = 0; i < f->n; i++)
		{
			sum += KmeansDtwRowWeight(f, i) * f->dist[i];
			changed += it == 1 || prev[i] != f->labels[i];
			prev[i] = f->labels[i];
		}
		mean = sum / weight_total;
		ms->n_iter[s] = it;
		if (opt->metric == KM_METRIC_SOFTDTW)
		{
			int64		lbfgs_iters = KmeansSoftDtwUpdate(f, k, c, mass);

			if (KmeansTracing())
				ereport(NOTICE,
						(errmsg("kmeans: k=%d iteration %d: inertia %.9g, " INT64_FORMAT " labels changed, " INT64_FORMAT " L-BFGS iterations%s",
								k, it, sum, changed, lbfgs_iters,
								repaired > 0 ? psprintf(", %d empty clusters given a row", repaired) : "")));
		}
		else
		{
			int64		dba_steps = UpdateCenters(f, k, c, mass);

			if (KmeansTracing())
				ereport(NOTICE,
						(errmsg("kmeans: k=%d iteration %d: inertia %.9g, " INT64_FORMAT " labels changed, " INT64_FORMAT " of " INT64_FORMAT " DTWs computed, " INT64_FORMAT " DBA steps%s",
								k, it, sum, changed, f->computed, f->n * k, dba_steps,
								repaired > 0 ? psprintf(", %d empty clusters given a row", repaired) : "")));
		}
		KmeansStepEnd(KMEANS_PHASE_ITERATE, start, it, 1, sum);
		KmeansProgressInertia(sum);
		if (fabs(old - mean) < opt->tol)
		{
			ms->converged[s] = true;
			break;
		}
		old = mean;
	}
	start = KmeansStepStart();
	KmeansProgressSetPhase(KMEANS_PROGRESS_LABELLING, run + 1, 0);
	FinalAssign(f, k, c, ms->centers + (int64) off * f->lc, ms->sizes + off, ms->inertia + off);
	for (int j = 0; j < k; j++)
		for (int t = 0; t < f->lc; t++)
			ms->sums[(int64) (off + j) * f->lc + t] = c[(int64) j * f->lc + t] * ms->sizes[off + j];
	KmeansStepEnd(KMEANS_PHASE_FINAL, start, 0, 1, KmeansSegmentInertia(ms, s));
	pfree(mass);
	pfree(members);
	pfree(prev);
}

/*
 * The final labels of the kept centers, in batches of rows with every segment's label and
 * DTW^2 (as float) side by side, handed to fn as the vector engine's final pass hands them.
 */
static void
EmitLabels(DtwFit *f, const KmeansModelSet *ms, KmeansLabelFn fn, void *arg)
{
	int			nseg = ms->nseg;
	int64		batch = Min(f->n, (int64) 8192);
	int32	   *lab = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * batch * nseg);
	float	   *dist = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * batch * nseg);
	double	   *c = MemoryContextAllocHuge(CurrentMemoryContext,
										   sizeof(double) * ms->seg_off[nseg] * f->lc);

	KmeansProgressSetPhase(KMEANS_PROGRESS_LABELLING, 0, 0);
	for (int64 i = 0; i < (int64) ms->seg_off[nseg] * f->lc; i++)
		c[i] = (double) ms->centers[i];
	for (int64 r0 = 0; r0 < f->n; r0 += batch)
	{
		int64		m = Min(batch, f->n - r0);
		KmeansBatch b;

		for (int s = 0; s < nseg; s++)
		{
			int			k = ms->seg_off[s + 1] - ms->seg_off[s];

			CostRange(f, k, c + (int64) ms->seg_off[s] * f->lc, r0, r0 + m, f->labels, f->dist);
			for (int64 i = 0; i < m; i++)
			{
				lab[i * nseg + s] = f->labels[r0 + i];
				dist[i * nseg + s] = (float) f->dist[r0 + i];
			}
		}
		memset(&b, 0, sizeof(b));
		b.first = r0;
		b.n = m;
		b.w = f->s.w != NULL ? f->s.w + r0 : NULL;
		b.ids = f->data->series->ids != NULL ? f->data->series->ids + r0 : NULL;
		fn(&b, lab, dist, nseg, arg);
	}
	pfree(lab);
	pfree(dist);
	pfree(c);
}

/* The center length of a fit: init_centers' width, else the longest row's. */
int
KmeansDtwCenterLength(const KmeansData *data, const KmeansOptions *opt)
{
	if (opt->init == KMEANS_INIT_EXPLICIT && opt->init_centers != NULL &&
		ARR_NDIM(opt->init_centers) == 2)
		return ARR_DIMS(opt->init_centers)[1];
	return data->series->max_len;
}

/*
 * The threads a fit uses and the memory they need: every thread holds an lx x lc matrix for
 * a barycenter, of four bytes a cell for the warping paths of DBA and of 8 x 8 (each cell's
 * softmin, for the 8 rows of a vector) for a soft-DTW gradient (km_softdtw.c), refused beyond
 * kmeans.max_memory with the sizes.
 */
static int
FitThreads(const DtwFit *f)
{
	bool		soft = f->opt->metric == KM_METRIC_SOFTDTW;
	/* soft-DTW's objective keeps the softmin of every cell for the 8 rows of its lanes */
	double		per_thread = (double) f->max_len * f->lc *
		(soft ? 8 * sizeof(double) : sizeof(uint32));
	double		limit = (double) kmeans_max_memory * 1024;
	int			nthreads = KmeansThreads();

	if (per_thread > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: a %s barycenter of series of %d and centers of %d samples needs %.0f MB, more than kmeans.max_memory (%d MB)",
						f->data->fit->what, soft ? "soft-DTW" : "DTW", f->max_len, f->lc,
						per_thread / (1024 * 1024), kmeans_max_memory / 1024),
				 errhint("Raise kmeans.max_memory, or resample the series to fewer samples.")));
	/* a thread only where its matrix fits too; small passes need none */
	nthreads = (int) Min((double) nthreads, Max(1.0, floor(limit / per_thread)));
	if ((double) f->n * f->max_len * f->lc < 1e6)
		nthreads = 1;
	return Max(nthreads, 1);
}

/*
 * The fit of every k of ks under DTW, best of n_init runs per k by inertia.  data->d becomes
 * the center length and data->mean zeros (series are not centred).  The kept centers' labels
 * go to fn where given.
 */
KmeansModelSet *
KmeansDtwRuns(KmeansData *data, const KmeansOptions *opt, int nseg, const int *ks,
			  KmeansLabelFn fn, void *arg)
{
	KmeansSeriesRows *rows = data->series;
	DtwFit		f;
	KmeansModelSet *best;
	double	   *seeds;
	double	   *best_inertia = palloc(sizeof(double) * nseg);
	int			k_max = 0;

	memset(&f, 0, sizeof(f));
	f.data = data;
	f.opt = opt;
	f.n = rows->n;
	f.s.n = rows->n;
	f.s.values = rows->values;
	f.s.off = rows->off;
	f.s.w = data->weights;
	f.lc = KmeansDtwCenterLength(data, opt);
	f.max_len = rows->max_len;
	f.same_len = rows->min_len == f.lc && rows->max_len == f.lc;
	f.nthreads = FitThreads(&f);
	for (int s = 0; s < nseg; s++)
		k_max = Max(k_max, ks[s]);
	data->d = f.lc;
	data->mean = palloc0(sizeof(float) * f.lc);
	f.labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * f.n);
	f.dist = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * f.n);
	f.env = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * 2 * k_max * f.lc);
	f.queue = palloc(sizeof(int) * 2 * f.lc);

	best = KmeansModelSetMake(f.lc, nseg, ks);
	seeds = MemoryContextAllocHuge(CurrentMemoryContext,
								   sizeof(double) * best->seg_off[nseg] * f.lc);
	for (int run = 0; run < opt->n_init; run++)
	{
		KmeansModelSet *ms = opt->n_init == 1 ? best : KmeansModelSetMake(f.lc, nseg, ks);

		KmeansStepLogRun(opt->n_init == 1 ? 0 : run);
		SeedSegments(&f, ms, run, seeds);
		for (int s = 0; s < nseg; s++)
		{
			double		inertia;

			IterateSegment(&f, ms, s, run, seeds + (int64) ms->seg_off[s] * f.lc);
			inertia = KmeansSegmentInertia(ms, s);
			if (opt->n_init == 1)
				continue;
			if (KmeansTracing() && nseg == 1)
				ereport(NOTICE,
						(errmsg("kmeans: run %d of %d: inertia %.9g after %d iterations",
								run + 1, opt->n_init, inertia, ms->n_iter[s])));
			if (run == 0 || inertia < best_inertia[s])
			{
				best_inertia[s] = inertia;
				KmeansModelSetKeep(best, ms, s);
			}
		}
		if (ms != best)
			KmeansModelSetFree(ms);
	}
	if (fn != NULL)
	{
		KmeansStepLogRun(opt->n_init == 1 ? 0 : -1);
		EmitLabels(&f, best, fn, arg);
	}
	pfree(seeds);
	pfree(best_inertia);
	pfree(f.labels);
	pfree(f.dist);
	pfree(f.env);
	pfree(f.queue);
	return best;
}

/* ---------------------------------------------------------------------------------------------
 * Quality (kmeans_elbow)
 * ------------------------------------------------------------------------------------------- */

/*
 * Davies-Bouldin under DTW per segment: each cluster's spread is the mean DTW of its rows to
 * its center (spread holds their sums per center), the separation of two clusters the DTW of
 * their centers; NaN for k < 2 and under softdtw.  The silhouette (sample_size > 0) is
 * scikit-learn's on the same rows kmeans_elbow samples for vectors, with DTW between them (under
 * softdtw tslearn's normalised soft-DTW): the matrix of the sample is computed once for every k,
 * within kmeans.max_memory.
 */
void
KmeansDtwQuality(KmeansData *data, KmeansModelSet *ms, const KmeansOptions *opt, const int *ks,
				 const int32 *labels, const double *spread, int64 sample_size, double *sil,
				 double *db)
{
	int			nseg = ms->nseg;
	int			lc = ms->d;
	int			band = opt->dtw_band;
	double	   *work = palloc(sizeof(double) * 2 * (lc + 1));
	double	   *c = palloc(sizeof(double) * 2 * lc);
	KmeansSeriesRows *rows = data->series;

	for (int s = 0; s < nseg; s++)
	{
		int			k = ks[s],
					off = ms->seg_off[s];
		double		total = 0.0;

		db[s] = NAN;
		if (k < 2 || opt->metric == KM_METRIC_SOFTDTW)
			continue;			/* soft-DTW is no distance to spread and separate by */
		for (int i = 0; i < k; i++)
		{
			double		si = ms->sizes[off + i] > 0 ? spread[off + i] / ms->sizes[off + i] : 0.0,
						worst = 0.0;

			CHECK_FOR_INTERRUPTS();
			for (int t = 0; t < lc; t++)
				c[t] = (double) ms->centers[(int64) (off + i) * lc + t];
			for (int j = 0; j < k; j++)
			{
				double		sj = ms->sizes[off + j] > 0 ? spread[off + j] / ms->sizes[off + j] : 0.0,
							m;

				if (j == i)
					continue;
				for (int t = 0; t < lc; t++)
					c[lc + t] = (double) ms->centers[(int64) (off + j) * lc + t];
				m = sqrt(km_dtw_sq_d(c, lc, c + lc, lc, band, work));
				if (m > 0.0 && (si + sj) / m > worst)
					worst = (si + sj) / m;
			}
			total += worst;
		}
		db[s] = total / k;
	}
	pfree(work);
	pfree(c);

	for (int s = 0; s < nseg; s++)
		sil[s] = NAN;
	if (sample_size > 0)
	{
		int64		m = Min(data->n, sample_size);
		double		bytes = (double) m * m * sizeof(double);
		int64	   *idx;
		double	   *dm;
		double	   *sums;
		int64	   *counts;
		int			k_max = 0;
		KmSeries	ks_rows;
		KmError		err = {0};
		int64		slice;

		if (bytes > (double) kmeans_max_memory * 1024)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("kmeans_elbow: the DTW silhouette of " INT64_FORMAT " rows needs %.0f MB, more than kmeans.max_memory (%d MB)",
							m, bytes / (1024 * 1024), kmeans_max_memory / 1024),
					 errhint("Pass a smaller silhouette_sample, or 0 to skip the silhouette.")));
		idx = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * m);
		dm = MemoryContextAllocHuge(CurrentMemoryContext, (Size) bytes);
		if (m == data->n)
			for (int64 i = 0; i < m; i++)
				idx[i] = i;
		else
			km_sample_rows(data->n, m, (uint64) opt->seed, idx);
		ks_rows.n = rows->n;
		ks_rows.values = rows->values;
		ks_rows.off = rows->off;
		ks_rows.w = NULL;
		slice = KmeansDtwSliceRows((double) m * rows->max_len * rows->max_len);
		for (int64 a = 0; a < m; a += slice)
		{
			CHECK_FOR_INTERRUPTS();
			if (opt->metric == KM_METRIC_SOFTDTW)
				KmeansCheckStatus(km_softdtw_pairwise(&ks_rows, idx, m, a, Min(m, a + slice),
													  band, opt->gamma, KmeansThreads(), dm,
													  &err), &err);
			else
				KmeansCheckStatus(km_dtw_pairwise(&ks_rows, idx, m, a, Min(m, a + slice), band,
												  KmeansThreads(), dm, &err), &err);
		}
		/*
		 * Under softdtw, tslearn's normalised soft-DTW: D(a, b) - (D(a, a) + D(b, b)) / 2, 0 on
		 * the diagonal.  The upper half was computed: both are symmetric.
		 */
		if (opt->metric == KM_METRIC_SOFTDTW)
			for (int64 a = 0; a < m; a++)
				for (int64 b = m - 1; b >= a; b--)
					dm[a * m + b] -= 0.5 * (dm[a * m + a] + dm[b * m + b]);
		for (int64 a = 0; a < m; a++)
			for (int64 b = 0; b < a; b++)
				dm[a * m + b] = dm[b * m + a];
		for (int s = 0; s < nseg; s++)
			k_max = Max(k_max, ks[s]);
		sums = palloc(sizeof(double) * k_max);
		counts = palloc(sizeof(int64) * k_max);
		for (int s = 0; s < nseg; s++)
		{
			int			k = ks[s];
			double		total = 0.0;

			if (k < 2 || k >= m)
				continue;
			memset(counts, 0, sizeof(int64) * k);
			for (int64 i = 0; i < m; i++)
				counts[labels[idx[i] * nseg + s]]++;
			for (int64 i = 0; i < m; i++)
			{
				int			own = labels[idx[i] * nseg + s];
				double		a_i,
							b_i = INFINITY;

				if ((i & 255) == 0)
					CHECK_FOR_INTERRUPTS();
				if (counts[own] < 2)
					continue;	/* a singleton's silhouette is 0 */
				memset(sums, 0, sizeof(double) * k);
				for (int64 j = 0; j < m; j++)
					sums[labels[idx[j] * nseg + s]] += dm[i * m + j];
				a_i = sums[own] / (counts[own] - 1);
				for (int j = 0; j < k; j++)
					if (j != own && counts[j] > 0 && sums[j] / counts[j] < b_i)
						b_i = sums[j] / counts[j];
				if (Max(a_i, b_i) > 0.0 && isfinite(b_i))
					total += (b_i - a_i) / Max(a_i, b_i);
			}
			sil[s] = total / m;
		}
		pfree(idx);
		pfree(dm);
		pfree(sums);
		pfree(counts);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Labelling and the distance function
 * ------------------------------------------------------------------------------------------- */

/*
 * The nearest of k centers (k x lc, as saved) to x by DTW, or by soft-DTW with gamma, in
 * float64, lowest index on ties.
 */
int
KmeansSeriesNearest(KmMetric metric, const float *centers, int k, int lc, const float *x, int lx,
					int band, double gamma)
{
	double	   *c = palloc(sizeof(double) * lc);
	double	   *work = palloc(sizeof(double) * 2 * (lc + 1));
	double		best_v = INFINITY;
	int			best = 0;

	for (int j = 0; j < k; j++)
	{
		double		v;

		for (int t = 0; t < lc; t++)
			c[t] = (double) centers[(int64) j * lc + t];
		v = metric == KM_METRIC_SOFTDTW ? km_softdtw(x, lx, c, lc, band, gamma, work) :
			km_dtw_sq(x, lx, c, lc, band, INFINITY, work);
		if (j == 0 || v < best_v)
		{
			best_v = v;
			best = j;
		}
	}
	pfree(c);
	pfree(work);
	return best;
}

/* A series argument: one dimension, at least two samples, no NULL, finite. */
const float *
KmeansCheckSeries(ArrayType *x, const char *what, int *len)
{
	KmeansArrayView v;
	int64		bad;
	const float *values;

	KmeansArrayViewOf(x, &v);
	if (v.ndim != 1 || v.nitems < 2 || v.nitems > PG_INT32_MAX / 2)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a series of 2 to %d samples, got %s", what, PG_INT32_MAX / 2,
						v.ndim != 1 ? psprintf("a %d-dimensional array", v.ndim) :
						psprintf(INT64_FORMAT " samples", v.nitems)),
				 errhint("Pass a one-dimensional real[] of at least two samples.")));
	if (KmeansArrayFirstNull(&v) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s contains a NULL", what),
				 errhint("Replace or drop NULL elements first.")));
	values = (const float *) palloc(sizeof(float) * v.nitems);
	if ((bad = KmeansCopyFinite(v.values, v.nitems, (float *) values)) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s has %s at position %d", what, KmeansNonFiniteName(values[bad]),
						(int) bad + 1),
				 errhint("Only finite values have a DTW distance.")));
	*len = (int) v.nitems;
	return values;
}

/* The Sakoe-Chiba radius argument at argno: NULL for none, else 0 or more. */
int
KmeansDtwBandArg(FunctionCallInfo fcinfo, int argno)
{
	int			band;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return -1;
	band = PG_GETARG_INT32(argno);
	if (band < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dtw_band must be 0 or more, got %d", band),
				 errhint("dtw_band is the Sakoe-Chiba radius in samples; leave it NULL for no band.")));
	return band;
}

/*
 * kmeans_dtw(x real[], y real[], band integer DEFAULT NULL): the DTW distance of two series,
 * the square root of the least sum of squared differences along a warping path, within the
 * Sakoe-Chiba band of that radius (tslearn.metrics.dtw with global_constraint="sakoe_chiba").
 */
Datum
kmeans_dtw(PG_FUNCTION_ARGS)
{
	int			lx,
				ly;
	const float *x,
			   *y;
	double	   *c,
			   *work;
	int			band;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	band = KmeansDtwBandArg(fcinfo, 2);
	x = KmeansCheckSeries(PG_GETARG_ARRAYTYPE_P(0), "x", &lx);
	y = KmeansCheckSeries(PG_GETARG_ARRAYTYPE_P(1), "y", &ly);
	if ((double) ly * 8 * 3 > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("y has %d samples, more than kmeans_dtw takes (%d)", ly,
						(int) (MaxAllocSize / 24)),
				 errhint("Resample the series to fewer samples.")));
	c = palloc(sizeof(double) * ly);
	work = palloc(sizeof(double) * 2 * (ly + 1));
	for (int t = 0; t < ly; t++)
		c[t] = (double) y[t];
	PG_RETURN_FLOAT8(sqrt(km_dtw_sq(x, lx, c, ly, band, INFINITY, work)));
}
