/*
 * runs.c -- the best of n_init seeding runs, kept per k: the loop that kmeans_fit,
 * kmeans_labels and kmeans_elbow share.
 *
 * Each run is seeded afresh (KmeansSeedRun), iterated and given its final pass; per segment
 * the run with the lowest inertia is kept, the first on ties.  Two model sets are alive at a
 * time, the kept one and the run's, whatever n_init is (budget.c counts the second).
 */
#include "kmeans.h"

/* A run's iterations from its seeded centers: Lloyd's, or mini-batch steps (minibatch.c). */
static void
Iterate(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms, int run)
{
	if (opt->minibatch)
		KmeansMiniBatch(data, opt, ms, run);
	else
		KmeansLloyd(data, opt, ms);
}

/*
 * The fit of every k of ks together, best of n_init runs.  The kept centers' final pass hands
 * its labels to fn (when given); with one run that is the run's own final pass.
 */
KmeansModelSet *
KmeansRuns(KmeansData *data, const KmeansOptions *opt, int nseg, const int *ks,
		   KmeansLabelFn fn, void *arg)
{
	int			n_init = opt->n_init;
	KmeansModelSet *best;
	double	   *best_inertia;

	if (data->series != NULL)
		return KmeansDtwRuns(data, opt, nseg, ks, fn, arg);	/* dtw.c: series */
	best = KmeansModelSetMake(data->d, nseg, ks);
	if (n_init == 1)
	{
		KmeansStepLogRun(0);
		KmeansSeedRun(data, opt, best, 0);
		Iterate(data, opt, best, 0);
		KmeansFinalPass(data, best, fn, arg);
		return best;
	}
	best_inertia = palloc(sizeof(double) * nseg);
	for (int run = 0; run < n_init; run++)
	{
		KmeansModelSet *ms = KmeansModelSetMake(data->d, nseg, ks);

		KmeansStepLogRun(run);
		KmeansSeedRun(data, opt, ms, run);
		Iterate(data, opt, ms, run);
		KmeansFinalPass(data, ms, NULL, NULL);
		for (int s = 0; s < nseg; s++)
		{
			double		inertia = KmeansSegmentInertia(ms, s);

			/* one line per run for a single k; a range of k would print a line per k */
			if (KmeansTracing() && nseg == 1)
				ereport(NOTICE,
						(errmsg("kmeans: run %d of %d: inertia %.9g after %d iterations",
								run + 1, n_init, inertia, ms->n_iter[s])));
			if (run == 0 || inertia < best_inertia[s])
			{
				best_inertia[s] = inertia;
				KmeansModelSetKeep(best, ms, s);
			}
		}
		KmeansModelSetFree(ms);
	}
	pfree(best_inertia);
	/* the kept centers' labels, where the caller wants them */
	if (fn != NULL)
	{
		KmeansStepLogRun(-1);	/* the kept centers come from several runs */
		KmeansFinalPass(data, best, fn, arg);
	}
	return best;
}
