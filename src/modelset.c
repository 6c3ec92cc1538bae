/*
 * modelset.c -- a set of models iterated together, one segment per k, and what is read off a
 * finished segment.
 */
#include "kmeans.h"

#include "utils/memutils.h"

/*
 * A model set for the given k of each segment, centers uninitialised, in a memory context of
 * its own: a run that is not kept is freed at once, so that n_init runs hold two sets, not
 * n_init.
 */
KmeansModelSet *
KmeansModelSetMake(int d, int nseg, const int *ks)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans model set",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KmeansModelSet *ms = palloc0(sizeof(KmeansModelSet));
	int64		total = 0;

	ms->cxt = cxt;
	ms->nseg = nseg;
	ms->d = d;
	ms->seg_off = palloc(sizeof(int) * (nseg + 1));
	for (int s = 0; s < nseg; s++)
	{
		ms->seg_off[s] = (int) total;
		total += ks[s];
	}
	ms->seg_off[nseg] = (int) total;
	if (total * d > (int64) (MaxAllocHugeSize / sizeof(double)))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("kmeans: " INT64_FORMAT " centers of dimension %d are too many", total, d)));
	ms->centers = MemoryContextAllocHuge(cxt, sizeof(float) * total * d);
	ms->n_iter = palloc0(sizeof(int) * nseg);
	ms->converged = palloc0(sizeof(bool) * nseg);
	ms->sizes = palloc0(sizeof(int64) * total);
	ms->inertia = palloc0(sizeof(double) * total);
	ms->sums = MemoryContextAllocHuge(cxt, sizeof(double) * total * d);
	MemoryContextSwitchTo(old);
	return ms;
}

/* Frees a model set that is no longer kept, with everything it holds. */
void
KmeansModelSetFree(KmeansModelSet *ms)
{
	MemoryContextDelete(ms->cxt);
}

/* Sum of the final inertia of one segment. */
double
KmeansSegmentInertia(const KmeansModelSet *ms, int s)
{
	double		total = 0.0;

	for (int j = ms->seg_off[s]; j < ms->seg_off[s + 1]; j++)
		total += ms->inertia[j];
	return total;
}

/* Copies segment s of a run into the kept model set: the run was the best for that k. */
void
KmeansModelSetKeep(KmeansModelSet *best, const KmeansModelSet *run, int s)
{
	int			off = best->seg_off[s];
	int			k = best->seg_off[s + 1] - off;
	int			d = best->d;

	memcpy(best->centers + (int64) off * d, run->centers + (int64) off * d, sizeof(float) * k * d);
	memcpy(best->sums + (int64) off * d, run->sums + (int64) off * d, sizeof(double) * k * d);
	memcpy(best->sizes + off, run->sizes + off, sizeof(int64) * k);
	memcpy(best->inertia + off, run->inertia + off, sizeof(double) * k);
	best->n_iter[s] = run->n_iter[s];
	best->converged[s] = run->converged[s];
}

/*
 * Renumbers the clusters of segment seg: cluster j (segment-local) moves to place place[j], a
 * permutation, with everything the results read of it (center, sums, size, inertia).
 */
void
KmeansRenumberSegment(KmeansModelSet *ms, int seg, const int *place)
{
	int			off = ms->seg_off[seg];
	int			k = ms->seg_off[seg + 1] - off;
	int			d = ms->d;
	float	   *centers = palloc(sizeof(float) * k * d);
	double	   *sums = palloc(sizeof(double) * k * d);
	int64	   *sizes = palloc(sizeof(int64) * k);
	double	   *inertia = palloc(sizeof(double) * k);

	for (int j = 0; j < k; j++)
	{
		int			to = place[j];

		memcpy(centers + (int64) to * d, ms->centers + (int64) (off + j) * d, sizeof(float) * d);
		memcpy(sums + (int64) to * d, ms->sums + (int64) (off + j) * d, sizeof(double) * d);
		sizes[to] = ms->sizes[off + j];
		inertia[to] = ms->inertia[off + j];
	}
	memcpy(ms->centers + (int64) off * d, centers, sizeof(float) * k * d);
	memcpy(ms->sums + (int64) off * d, sums, sizeof(double) * k * d);
	memcpy(ms->sizes + off, sizes, sizeof(int64) * k);
	memcpy(ms->inertia + off, inertia, sizeof(double) * k);
	pfree(centers);
	pfree(sums);
	pfree(sizes);
	pfree(inertia);
}
