/*
 * lloyd.c -- Lloyd passes over the data: the iterations of every running segment together, and
 * the final assignment that every result is read from.  Resident and streamed data take the
 * same arithmetic.
 *
 * Per-row state that outlives a pass (the previous labels and this pass's distances) is kept by
 * the backend where it can (pass_begin), else in host arrays indexed by row position (lloyd.h).
 */
#include "kmeans.h"

#include <math.h>

#include "lloyd.h"
#include "utils/memutils.h"

/* Installs the centers of the running segments (all segments when all is true). */
static RunSet *
RunSetMake(KmeansData *data, KmeansModelSet *ms, bool all)
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
	return rs;
}

static void
RunSetReset(RunSet *rs)
{
	memset(rs->acc.sums, 0, sizeof(double) * rs->k * rs->acc.d);
	memset(rs->acc.counts, 0, sizeof(int64) * rs->k);
	memset(rs->acc.inertia, 0, sizeof(double) * rs->k);
}

static void
RunSetFree(RunSet *rs)
{
	if (rs->nrun > 0)
	{
		pfree(rs->acc.sums);
		pfree(rs->acc.counts);
		pfree(rs->acc.inertia);
	}
	pfree(rs->segs);
	pfree(rs->off);
	pfree(rs);
}

/* Per-batch label and distance buffers for nrun segments. */
static void
BatchBuffers(LloydState *ls, int nrun)
{
	KmeansData *data = ls->data;
	int64		rows = Min(data->n, data->resident ? data->chunk_rows : (int64) data->batch_rows);

	ls->labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * rows * nrun);
	ls->dist = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * rows * nrun);
}

/* One batch of a Lloyd pass: assign, count label changes, accumulate. */
static void
LloydBatch(KmeansBatch *b, void *arg)
{
	LloydState *ls = arg;
	RunSet	   *rs = ls->rs;
	KmBackend  *be = ls->data->be;
	int			nseg = ls->ms->nseg;
	KmError		err = {0};

	/* a backend that can do both in one step saves handing the labels back */
	if (ls->accumulate && be->ops->assign_accumulate)
		KmeansCheckStatus(be->ops->assign_accumulate(be, b->blk, ls->labels, ls->dist, ls->exact,
													 &rs->acc, &err), &err);
	else
		KmeansCheckStatus(be->ops->assign(be, b->blk, ls->labels, ls->dist, ls->exact, &err),
						  &err);
	if (ls->labels_old)
	{
		for (int64 i = 0; i < b->n; i++)
			for (int r = 0; r < rs->nrun; r++)
			{
				int32		local = ls->labels[i * rs->nrun + r] - rs->off[r];
				int64		at = (b->first + i) * nseg + rs->segs[r];

				if (ls->labels_old[at] != local)
				{
					ls->changed[r]++;
					ls->labels_old[at] = local;
				}
				ls->dist_all[at] = ls->dist[i * rs->nrun + r];
			}
	}
	if (ls->accumulate && !be->ops->assign_accumulate)
		KmeansCheckStatus(be->ops->accumulate(be, b->blk, rs->nrun, ls->labels, ls->dist,
											  &rs->acc, &err), &err);
	if (ls->sink)
		ls->sink(b, ls->labels, ls->dist, rs->nrun, ls->sink_arg);
}

/* One batch of a Lloyd pass whose per-row state the backend keeps: enqueued, not waited for. */
static void
PassBatch(KmeansBatch *b, void *arg)
{
	LloydState *ls = arg;
	KmBackend  *be = ls->data->be;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->pass_block(be, b->blk, b->first, &err), &err);
}

/* The host copies of the per-row state, for a loop that keeps it here or a repair that reads it. */
void
KmeansLloydHostState(LloydState *ls)
{
	int64		entries = ls->data->n * ls->ms->nseg;

	if (ls->labels_old != NULL)
		return;
	ls->labels_old = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * entries);
	memset(ls->labels_old, 0xff, sizeof(int32) * entries);
	ls->dist_all = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * entries);
}

/*
 * One Lloyd pass over every row for the running segments: with the state on the device, the
 * blocks are enqueued and the pass is waited for once, at its end; otherwise each batch is
 * assigned, compared and accumulated here.  A device that cannot hold the state on the first
 * pass hands it to the host for the rest of the fit.
 */
static void
LloydPass(LloydState *ls, int it)
{
	KmeansData *data = ls->data;
	KmBackend  *be = data->be;
	RunSet	   *rs = ls->rs;
	KmError		err = {0};

	if (ls->device_state)
	{
		KmStatus	st = be->ops->pass_begin(be, data->n, ls->ms->nseg, rs->segs, it == 1, &err);

		if (st == KM_ERR_DEVICE_NOMEM && it == 1)
		{
			elog(DEBUG1, "kmeans: the rows' labels stay on the host: %s", err.message);
			ls->device_state = false;
		}
		else
		{
			KmeansCheckStatus(st, &err);
			KmeansScan(data, PassBatch, ls);
			KmeansCheckStatus(be->ops->pass_end(be, &rs->acc, ls->changed, &err), &err);
			return;
		}
	}
	KmeansLloydHostState(ls);
	if (ls->labels == NULL)
		BatchBuffers(ls, ls->ms->nseg);
	KmeansScan(data, LloydBatch, ls);
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

	memset(&ls, 0, sizeof(ls));
	ls.data = data;
	ls.ms = ms;
	ls.accumulate = true;
	ls.device_state = data->be->ops->pass_begin != NULL;
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
		RunSet	   *rs = RunSetMake(data, ms, false);

		if (rs->nrun == 0)
		{
			RunSetFree(rs);
			break;
		}
		ls.rs = rs;
		RunSetReset(rs);
		memset(ls.changed, 0, sizeof(int64) * rs->nrun);
		LloydPass(&ls, it);
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
				int64		cnt = rs->acc.counts[j];

				inertia += rs->acc.inertia[j];
				if (cnt == 0)
					continue;	/* only when rows are fewer than distinct points */
				for (int t = 0; t < d; t++)
				{
					float		v = (float) (sum[t] / cnt);
					double		diff = (double) v - c[t];

					shift += diff * diff;
					c[t] = v;
				}
			}
			pass_inertia += inertia;
			ms->n_iter[s] = it;
			if (kmeans_verbose)
				ereport(NOTICE,
						(errmsg("kmeans: k=%d iteration %d: inertia %.6g, " INT64_FORMAT " labels changed, center shift %.6g",
								rs->off[r + 1] - rs->off[r], it, inertia, ls.changed[r], shift)));
			if (ls.changed[r] == 0 || shift <= tol_abs)
				ms->converged[s] = true;
		}
		KmeansStepEnd(KMEANS_PHASE_ITERATE, start, it, rs->nrun, pass_inertia);
		RunSetFree(rs);
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * The final assignment of every row to the final centers of every segment: sizes and inertia
 * per center, and the labels handed to fn (global run-set labels, equal to model-set offsets).
 */
void
KmeansFinalPass(KmeansData *data, KmeansModelSet *ms, KmeansLabelFn fn, void *arg)
{
	LloydState	ls;
	double		start = KmeansStepStart();
	double		total = 0.0;
	RunSet	   *rs = RunSetMake(data, ms, true);

	memset(&ls, 0, sizeof(ls));
	ls.data = data;
	ls.ms = ms;
	ls.rs = rs;
	ls.accumulate = true;
	ls.exact = true;
	ls.sink = fn;
	ls.sink_arg = arg;
	BatchBuffers(&ls, rs->nrun);
	RunSetReset(rs);
	KmeansScan(data, LloydBatch, &ls);
	memcpy(ms->sizes, rs->acc.counts, sizeof(int64) * rs->k);
	memcpy(ms->inertia, rs->acc.inertia, sizeof(double) * rs->k);
	memcpy(ms->sums, rs->acc.sums, sizeof(double) * rs->k * ms->d);
	pfree(ls.labels);
	pfree(ls.dist);
	RunSetFree(rs);

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
