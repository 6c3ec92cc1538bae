/*
 * match.c -- a refit of a saved model keeps its cluster numbers: the new centers are numbered
 * after the previous model's by an optimal matching, so labels stored from the old model keep
 * their meaning (kmeans.match_clusters, on by default).
 *
 * The matching minimises the total squared distance between each old center and the new center
 * given its number: the assignment problem on the k x k matrix of squared distances, solved
 * exactly by the Hungarian method (Kuhn 1955; Munkres 1957) in its O(k^3) form with row and
 * column potentials.  A greedy pairing of nearest centers can be far from optimal (old 0 and 3,
 * new 2 and 5: greedy pairs 3 with 2 first and leaves 0 with 5, cost 26, where 0-2 and 3-5 cost
 * 8), so it is not used.  Above KMEANS_MATCH_MAX_K centers the cubic cost is too much for a
 * save, and the fit keeps its own numbering with a NOTICE.
 */
#include "kmeans.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/memutils.h"

/* The most centers matched: 2,048^3 is about 9 * 10^9 steps, a few seconds at worst. */
#define KMEANS_MATCH_MAX_K 2048

/*
 * The assignment of n rows to n columns of cost (n x n, row-major) of least total cost:
 * col_of[i] is row i's column.  Potentials u (rows) and v (columns) keep every reduced cost
 * cost[i][j] - u[i] - v[j] >= 0 and zero on the matching; each row is added by a shortest
 * augmenting path in the reduced costs (Dijkstra-like over columns), so the matching stays
 * optimal for the rows added so far.  Index 0 of the 1-based work arrays is a virtual column.
 */
static void
Assign(const double *cost, int n, int *col_of)
{
	double	   *u = palloc0(sizeof(double) * (n + 1));
	double	   *v = palloc0(sizeof(double) * (n + 1));
	double	   *minv = palloc(sizeof(double) * (n + 1));
	int		   *row_at = palloc0(sizeof(int) * (n + 1));	/* column -> row (1-based), 0: free */
	int		   *way = palloc(sizeof(int) * (n + 1));
	bool	   *used = palloc(sizeof(bool) * (n + 1));

	for (int i = 1; i <= n; i++)
	{
		int			j0 = 0;

		CHECK_FOR_INTERRUPTS();
		row_at[0] = i;
		for (int j = 0; j <= n; j++)
		{
			minv[j] = INFINITY;
			used[j] = false;
		}
		do
		{
			int			i0 = row_at[j0];
			int			j1 = 0;
			double		delta = INFINITY;

			used[j0] = true;
			for (int j = 1; j <= n; j++)
				if (!used[j])
				{
					double		cur = cost[(int64) (i0 - 1) * n + (j - 1)] - u[i0] - v[j];

					if (cur < minv[j])
					{
						minv[j] = cur;
						way[j] = j0;
					}
					if (minv[j] < delta)
					{
						delta = minv[j];
						j1 = j;
					}
				}
			for (int j = 0; j <= n; j++)
				if (used[j])
				{
					u[row_at[j]] += delta;
					v[j] -= delta;
				}
				else
					minv[j] -= delta;
			j0 = j1;
		} while (row_at[j0] != 0);
		/* flip the augmenting path */
		do
		{
			int			j1 = way[j0];

			row_at[j0] = row_at[j1];
			j0 = j1;
		} while (j0 != 0);
	}
	for (int j = 1; j <= n; j++)
		col_of[row_at[j] - 1] = j - 1;
	pfree(u);
	pfree(v);
	pfree(minv);
	pfree(row_at);
	pfree(way);
	pfree(used);
}

/*
 * Renumbers segment 0 of ms (k clusters) after the previous model's centers (k x d, as saved,
 * un-centred): new cluster j becomes number perm[j], the old center it is matched to.  Returns
 * false, changing nothing, where the shapes differ or k is too large to match.
 */
bool
KmeansMatchClusters(KmeansData *data, KmeansModelSet *ms, const float *old, int old_k, int old_d)
{
	int			k = ms->seg_off[1] - ms->seg_off[0];
	int			d = ms->d;
	float	   *fresh;
	double	   *cost;
	int		   *old_of;

	if (old_k != k || old_d != d || ms->nseg != 1)
		return false;
	if (k > KMEANS_MATCH_MAX_K)
	{
		ereport(NOTICE,
				(errmsg("kmeans: the refit keeps its own cluster numbers: %d clusters are more than the %d matched to the previous model",
						k, KMEANS_MATCH_MAX_K)));
		return false;
	}
	fresh = KmeansCentersOut(data, ms, 0);
	cost = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * k * k);
	for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++)
		{
			double		s = 0.0;

			for (int t = 0; t < d; t++)
			{
				double		diff = (double) old[(int64) i * d + t] - fresh[(int64) j * d + t];

				s += diff * diff;
			}
			cost[(int64) i * k + j] = s;
		}
	old_of = palloc(sizeof(int) * k);
	{
		int		   *new_of_old = palloc(sizeof(int) * k);

		Assign(cost, k, new_of_old);
		for (int i = 0; i < k; i++)
			old_of[new_of_old[i]] = i;
		pfree(new_of_old);
	}

	/* new cluster j moves to place old_of[j], with everything the results read of it */
	KmeansRenumberSegment(ms, 0, old_of);
	pfree(fresh);
	pfree(cost);
	pfree(old_of);
	return true;
}
