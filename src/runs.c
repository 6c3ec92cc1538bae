/*
 * runs.c -- the best of n_init seeding runs.
 */
#include "kmeans.h"

/* A complete fit for one k: n_init seedings, Lloyd on each, the lowest inertia kept. */
KmeansModelSet *
KmeansFitOne(KmeansData *data, const KmeansOptions *opt, int k)
{
	KmeansModelSet *best = NULL;
	double		best_inertia = 0.0;
	int			n_init = opt->init == KMEANS_INIT_EXPLICIT ? 1 : opt->n_init;

	for (int run = 0; run < n_init; run++)
	{
		KmeansModelSet *ms = KmeansModelSetMake(data->d, 1, &k);
		double		inertia;

		if (opt->init == KMEANS_INIT_EXPLICIT)
			KmeansExplicitCenters(data, opt, k, ms->centers);
		else
		{
			KmeansSeed(data, opt, k, run, ms->centers);
		}
		KmeansLloyd(data, opt, ms);
		KmeansFinalPass(data, ms, NULL, NULL);
		inertia = KmeansSegmentInertia(ms, 0);
		if (kmeans_verbose && n_init > 1)
			ereport(NOTICE,
					(errmsg("kmeans: run %d of %d: inertia %.9g after %d iterations",
							run + 1, n_init, inertia, ms->n_iter[0])));
		if (best == NULL || inertia < best_inertia)
		{
			if (best != NULL)
				KmeansModelSetFree(best);
			best = ms;
			best_inertia = inertia;
		}
		else
			KmeansModelSetFree(ms);
	}
	return best;
}
