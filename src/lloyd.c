/*
 * lloyd.c -- Lloyd passes over the data: the iterations of every running segment together, and
 * the final assignment that every result is read from.  Resident and streamed data take the
 * same arithmetic.
 *
 * Per-row state that outlives a pass (the previous labels and this pass's distances) belongs to
 * the backend (pass_begin .. pass_end), on every device: the engine has one path, and reads the
 * state back only for the final labels and a repair (state_fetch, a batch of rows at a time).
 * Mini-batch's final pass keeps none (KmeansKeepsRowState): its sink reads each batch's labels
 * as the batch is passed.
 */
#include "kmeans.h"

#include <math.h>

#include "lloyd.h"
#include "utils/memutils.h"

/* Installs the centers of the running segments (all segments when all is true). */
RunSet *
KmeansRunSetMake(KmeansData *data, KmeansModelSet *ms, bool all)
{
	RunSet	   *rs = palloc0(sizeof(RunSet));
	int			d = ms->d;
	float	   *c;
	KmError		err = {0};

	rs->segs = palloc(sizeof(int) * ms->nseg);
	rs->off = palloc(sizeof(int) * (ms->nseg + 1));
	rs->off[0] = 0;
	for (int s = 0; s < ms->nseg; s++)
		if (all || !ms->converged[s])
		{
			rs->segs[rs->nrun] = s;
			rs->off[rs->nrun + 1] = rs->off[rs->nrun] + (ms->seg_off[s + 1] - ms->seg_off[s]);
			rs->nrun++;
		}
	rs->k = rs->off[rs->nrun];
	if (rs->nrun == 0)
		return rs;
	c = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * rs->k * d);
	for (int r = 0; r < rs->nrun; r++)
	{
		int			s = rs->segs[r];

		memcpy(c + (int64) rs->off[r] * d, ms->centers + (int64) ms->seg_off[s] * d,
			   sizeof(float) * (ms->seg_off[s + 1] - ms->seg_off[s]) * d);
	}
	KmeansCheckStatus(data->be->ops->set_centers(data->be, c, d, rs->nrun, rs->off, &err), &err);
	pfree(c);

	rs->acc.d = d;
	rs->acc.k = rs->k;
	rs->acc.sums = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * rs->k * d);
	rs->acc.counts = palloc(sizeof(int64) * rs->k);
	rs->acc.inertia = palloc(sizeof(double) * rs->k);
	rs->acc.mass = data->weights ? palloc(sizeof(double) * rs->k) : NULL;
	return rs;
}

void
KmeansRunSetReset(RunSet *rs)
{
	memset(rs->acc.sums, 0, sizeof(double) * rs->k * rs->acc.d);
	memset(rs->acc.counts, 0, sizeof(int64) * rs->k);
	memset(rs->acc.inertia, 0, sizeof(double) * rs->k);
	if (rs->acc.mass)
		memset(rs->acc.mass, 0, sizeof(double) * rs->k);
}

void
KmeansRunSetFree(RunSet *rs)
{
	if (rs->nrun > 0)
	{
		pfree(rs->acc.sums);
		pfree(rs->acc.counts);
		pfree(rs->acc.inertia);
		if (rs->acc.mass)
			pfree(rs->acc.mass);
	}
	pfree(rs->segs);
	pfree(rs->off);
	pfree(rs);
}

/* Buffers for one batch's labels and distances in every segment, read back from the backend. */
void
KmeansLloydBuffers(LloydState *ls)
{
	KmeansData *data = ls->data;
	int			nseg = ls->ms->nseg;

	if (ls->labels != NULL)
		return;
	ls->rows = Min(data->n, data->resident ? data->chunk_rows : (int64) data->batch_rows);
	ls->labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * ls->rows * nseg);
	ls->dist = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * ls->rows * nseg);
}

/*
 * One batch of a pass: handed to the backend, which assigns, compares and accumulates; in the
 * final pass its labels are read back for the sink while the batch (and its ids) is at hand.
 */
static void
PassBatch(KmeansBatch *b, void *arg)
{
	LloydState *ls = arg;
	KmBackend  *be = ls->data->be;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->pass_block(be, b->blk, b->first, &err), &err);
	if (ls->sink == NULL)
		return;
	if (b->n > ls->rows)
		elog(ERROR, "kmeans: a batch of " INT64_FORMAT " rows for buffers of " INT64_FORMAT " (this is a bug)",
			 b->n, ls->rows);
	KmeansCheckStatus(be->ops->state_fetch(be, b->first, b->n, ls->labels, ls->dist, &err), &err);
	ls->sink(b, ls->labels, ls->dist, ls->ms->nseg, ls->sink_arg);
}

/*
 * One pass over every row for the running segments: the blocks go to the backend, which keeps
 * each row's state, and the pass is waited for once, at its end.  reset starts a fit's labels
 * afresh; exact has the distances summed directly (the final pass reports them).
 */
static void
LloydPass(LloydState *ls, bool reset, bool exact)
{
	KmeansData *data = ls->data;
	KmBackend  *be = data->be;
	RunSet	   *rs = ls->rs;
	KmError		err = {0};

	/* strategy => 'aggregate': a query over the source, unless every row's label is wanted */
	if (data->agg != NULL && ls->sink == NULL)
	{
		if (data->be != NULL)
			data->be->pass_scanned = NULL;	/* no bounds in a query's pass */
		KmeansAggregatePass(data, ls);
		return;
	}
	/* the backend has no state of the rows until the first pass it sees */
	reset |= data->agg != NULL;
	KmeansCheckStatus(be->ops->pass_begin(be, data->n, ls->ms->nseg, rs->segs, reset, exact,
										  KmeansKeepsRowState(data->fit), &err), &err);
	KmeansScan(data, PassBatch, ls);
	KmeansCheckStatus(be->ops->pass_end(be, &rs->acc, ls->changed, &err), &err);
}

/*
 * Lloyd's algorithm (Lloyd 1982) on every segment of the model set together: each pass assigns
 * every row to its nearest center in every running segment, then each segment moves its
 * centers to the means.  A segment stops when no label changed (strict convergence) or when
 * the centers moved less than tol times the data's mean variance, as scikit-learn does; a
 * stopped segment costs nothing in later passes.
 */
void
KmeansLloyd(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms)
{
	int			d = ms->d;
	double		tol_abs = opt->tol * data->mean_var;
	LloydState	ls;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans lloyd",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);

	float	   *next = palloc(sizeof(float) * d);	/* a center's update */

	memset(&ls, 0, sizeof(ls));
	ls.data = data;
	ls.ms = ms;
	ls.changed = palloc(sizeof(int64) * ms->nseg);

	for (int s = 0; s < ms->nseg; s++)
	{
		ms->converged[s] = false;
		ms->n_iter[s] = 0;
	}

	for (int it = 1; it <= opt->max_iter; it++)
	{
		double		start = KmeansStepStart();
		double		pass_inertia = 0.0;
		double	   *med;			/* center => 'median': the pass's medians */
		RunSet	   *rs = KmeansRunSetMake(data, ms, false);

		if (rs->nrun == 0)
		{
			KmeansRunSetFree(rs);
			break;
		}
		ls.rs = rs;
		KmeansProgressSetPhase(KMEANS_PROGRESS_ITERATING, 0, it);
		KmeansRunSetReset(rs);
		memset(ls.changed, 0, sizeof(int64) * rs->nrun);
		LloydPass(&ls, it == 1, false);
		med = opt->median ? KmeansMedianCenters(data, &ls) : NULL;
		if (data->agg != NULL)
			KmeansAggregateRepair(data, &ls);
		else
			KmeansRepairEmpty(data, &ls);

		for (int r = 0; r < rs->nrun; r++)
		{
			int			s = rs->segs[r];
			double		shift = 0.0;
			double		inertia = 0.0;

			for (int j = rs->off[r]; j < rs->off[r + 1]; j++)
			{
				float	   *c = ms->centers + (int64) (ms->seg_off[s] + j - rs->off[r]) * d;
				const double *sum = rs->acc.sums + (int64) j * d;
				/* the weighted mean where rows carry weights (sums are then weighted too) */
				double		cnt = rs->acc.mass ? rs->acc.mass[j] : (double) rs->acc.counts[j];

				inertia += rs->acc.inertia[j];
				if (cnt == 0)
					continue;	/* only when rows (of positive weight) are fewer than distinct points */
				for (int t = 0; t < d; t++)
					next[t] = med && !isnan(med[(int64) j * d]) ? (float) med[(int64) j * d + t] :
						(float) (sum[t] / cnt);
				KmeansMetricFinishCenter(data->src->metric, next, c, data->mean, d);
				for (int t = 0; t < d; t++)
				{
					double		diff = (double) next[t] - c[t];

					shift += diff * diff;
					c[t] = next[t];
				}
			}
			inertia = KmeansMetricInertia(data->src->metric, inertia);
			pass_inertia += inertia;
			ms->n_iter[s] = it;
			if (KmeansTracing())
			{
				/* where the pass kept bounds, how many rows they left to compare in full */
				const int64_t *scanned = data->be->pass_scanned;
				char	   *pruned = scanned == NULL ? "" :
					psprintf(", " INT64_FORMAT " of " INT64_FORMAT " rows compared with every center",
							 scanned[r], data->be->pass_rows);

				ereport(NOTICE,
						(errmsg("kmeans: k=%d iteration %d: inertia %.6g, " INT64_FORMAT " labels changed, center shift %.6g%s",
								rs->off[r + 1] - rs->off[r], it, inertia, ls.changed[r], shift,
								pruned)));
			}
			if (ls.changed[r] == 0 || shift <= tol_abs)
				ms->converged[s] = true;
		}
		KmeansStepEnd(KMEANS_PHASE_ITERATE, start, it, rs->nrun, pass_inertia);
		KmeansProgressInertia(pass_inertia);
		if (med)
			pfree(med);
		KmeansRunSetFree(rs);
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * The final assignment of every row to the final centers of every segment: sizes and inertia
 * per center from exact distances, and each batch's labels (segment-local) handed to fn.
 */
void
KmeansFinalPass(KmeansData *data, KmeansModelSet *ms, KmeansLabelFn fn, void *arg)
{
	LloydState	ls;
	double		start = KmeansStepStart();
	double		total = 0.0;
	RunSet	   *rs;

	KmeansProgressSetPhase(KMEANS_PROGRESS_LABELLING, 0, 0);
	rs = KmeansRunSetMake(data, ms, true);
	memset(&ls, 0, sizeof(ls));
	ls.data = data;
	ls.ms = ms;
	ls.rs = rs;
	ls.changed = palloc(sizeof(int64) * ms->nseg);
	ls.sink = fn;
	ls.sink_arg = arg;
	if (fn != NULL)
		KmeansLloydBuffers(&ls);
	KmeansRunSetReset(rs);
	/* every row's state is written afresh; the changes are not needed */
	LloydPass(&ls, false, true);
	memcpy(ms->sizes, rs->acc.counts, sizeof(int64) * rs->k);
	for (int j = 0; j < rs->k; j++)
		ms->inertia[j] = KmeansMetricInertia(data->src->metric, rs->acc.inertia[j]);
	memcpy(ms->sums, rs->acc.sums, sizeof(double) * rs->k * ms->d);
	if (ls.labels != NULL)
	{
		pfree(ls.labels);
		pfree(ls.dist);
	}
	pfree(ls.changed);
	KmeansRunSetFree(rs);

	/* finish with the invariants every result relies on */
	for (int64 i = 0; i < (int64) ms->seg_off[ms->nseg] * ms->d; i++)
		if (!isfinite(ms->centers[i]))
			elog(ERROR, "kmeans: center value " INT64_FORMAT " is not finite (this is a bug)", i);
	/* the range check of the first pass (reader.c) keeps every distance finite */
	for (int j = 0; j < ms->seg_off[ms->nseg]; j++)
	{
		if (!isfinite(ms->inertia[j]))
			elog(ERROR, "kmeans: the inertia of center %d is not finite (this is a bug)", j);
		total += ms->inertia[j];
	}
	KmeansStepEnd(KMEANS_PHASE_FINAL, start, 0, ms->nseg, total);
}
