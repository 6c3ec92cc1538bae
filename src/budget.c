/*
 * budget.c -- a fit's host memory, estimated before it is allocated.
 *
 * A fit's memory is a few large terms, each a product of sizes the user chooses: rows x
 * dimension (the cached rows), rows x number of k (each row's label and distance per k), centers
 * of every k x dimension (model sets, the backend's copies), and the per-batch buffers.  All of
 * them are known once the first row has fixed d, except the row count, which grows during the
 * first pass.  So the reader asks for the estimate as soon as d is known (centers alone may
 * already be too many), again every 1024 rows of the first pass (so that 10^8 rows are not read
 * only to be refused), and once more with the final count before anything else is allocated.
 * Every product and sum is overflow-checked; an overflowing term counts as unbounded.
 *
 * The terms follow the allocations they stand for (lloyd.c, seed.c, runs.c, elbow.c, reader.c,
 * and the CPU backend's in kernels/km_cpu.c); they are upper bounds, so that what is refused
 * would have needed more than the limit, and what runs stays within it.
 */
#include "kmeans.h"

#include "km_bounds.h"

#include <math.h>

#include "common/int.h"
#include "lib/stringinfo.h"

/* Adds count x unit bytes to the budget under name; an overflow makes the term unbounded. */
static void
Add(KmeansBudget *b, const char *name, int64 count, int64 unit)
{
	int64		bytes;

	if (count <= 0 || unit <= 0)
		return;
	if (pg_mul_s64_overflow(count, unit, &bytes))
		bytes = PG_INT64_MAX;
	for (int i = 0; i < b->nitems; i++)
		if (strcmp(b->names[i], name) == 0)
		{
			if (pg_add_s64_overflow(b->bytes[i], bytes, &b->bytes[i]))
				b->bytes[i] = PG_INT64_MAX;
			goto total;
		}
	Assert(b->nitems < KMEANS_BUDGET_ITEMS);
	b->names[b->nitems] = name;
	b->bytes[b->nitems] = bytes;
	b->nitems++;
total:
	if (pg_add_s64_overflow(b->total, bytes, &b->total))
		b->total = PG_INT64_MAX;
}

/*
 * The memory a fit of plan needs for n rows of dimension d, apart from the cached rows:
 * streamed when stream is true (then the batch buffer is counted), with batches or resident
 * chunks of block_rows rows.
 */
void
KmeansBudgetMake(KmeansBudget *b, const KmeansPlan *plan, int64 n, int d, bool stream,
				 int64 block_rows, bool has_id)
{
	int64		k = plan->centers;
	int64		nseg = plan->nseg;
	int64		kd;
	int64		rows = Min(n, block_rows);
	int64		threads = KmeansThreads();
	int64		model_sets = plan->n_init > 1 ? 2 : 1;
	int64		trials = 2 + (int64) log((double) Max(plan->k_max, 1));	/* k-means++ candidates */
	/* mini-batch keeps nothing per row in the backend (KmeansKeepsRowState) */
	bool		keep = KmeansKeepsRowState(plan);
	/* k-means|| seeds where no init was given and the rows are streamed (KmeansBegin) */
	bool		parallel = plan->parallel_init || (plan->init_auto && stream);
	/* greedy k-means++ keeps each row's distance to its nearest center (seed.c) */
	bool		plusplus = plan->plusplus_init && !parallel;
	/* the CPU backend's pruning bounds (km_bounds.h) */
	bool		bounds = keep && kmeans_prune && km_bounds_serve(d, plan->nseg, plan->k_min);

	memset(b, 0, sizeof(*b));
	b->plan = plan;
	b->n = n;
	b->d = d;
	if (pg_mul_s64_overflow(k, d, &kd))
		kd = PG_INT64_MAX;

	/* each row's label and distance per k between passes, and the k-means++ distances (the
	 * backend's, in host memory on the CPU or where the device has no room) */
	if (keep)
		Add(b, "per-row labels and distances", n, nseg * (int64) (sizeof(int32) + sizeof(float)));
	if (keep || plusplus)
		Add(b, "per-row labels and distances", n, sizeof(float));
	if (plan->final_labels)
		Add(b, "final labels for the quality indices", n, nseg * (int64) sizeof(int32));
	if (bounds)
		Add(b, "per-row labels and distances", n, KM_BOUNDS_ROW_BYTES(nseg));
	if (plan->weighted)
		Add(b, "per-row weights", n, sizeof(float));
	/* center => 'median': every row's values gathered by label each pass, and their counts */
	if (plan->median)
	{
		Add(b, "per-row labels and distances", n, nseg * (int64) d * sizeof(float));
		Add(b, "centers", k, 2 * sizeof(int64) + (int64) d * sizeof(double));
	}

	/*
	 * Centers: the model sets (float centers, float64 sums, sizes, inertia), the pass's run set
	 * (a copy and float64 accumulators), the backend's copy with norms and packed panels, and
	 * the backend's float64 totals of a pass.
	 */
	Add(b, "centers", kd, model_sets * (int64) (sizeof(float) + sizeof(double)) +
		(int64) (sizeof(float) + 2 * sizeof(double)) + 3 * (int64) sizeof(float));
	Add(b, "centers", k, model_sets * 16 + 32);
	if (plan->final_labels)
		Add(b, "centers", kd, sizeof(double));	/* the quality indices' label means */
	if (plan->weighted)
		Add(b, "centers", k, 2 * sizeof(double));	/* the run set's and the backend's mass */

	/*
	 * A batch's labels and distances per k in the backend, its grouping of them by label, and
	 * the engine's copy of them read back for the final labels and a repair.
	 */
	Add(b, "per-batch buffers", rows, nseg * (int64) (3 * sizeof(int32) + 2 * sizeof(float) +
												  sizeof(int64)));
	Add(b, "per-batch buffers", k + 1, sizeof(int64));
	/* the k-means++ candidates' scratch: a run of rows per thread and candidate, run sums */
	Add(b, "per-batch buffers", threads * KM_SUB_ROWS * trials, sizeof(int32) + sizeof(float));
	/* the pruning bounds' rows gathered for a full scan, a run per thread */
	if (bounds)
		Add(b, "per-batch buffers", threads * KM_SUB_ROWS, (int64) (d + 4) * sizeof(float));
	if (keep || plusplus)
		Add(b, "per-row labels and distances", n / KM_SUB_ROWS + 1, trials * (int64) sizeof(double));

	/* algorithm => 'minibatch': a window of rows with their permutation, and one batch */
	if (plan->minibatch_rows > 0)
	{
		int64		window = KmeansMiniBatchWindow(n, plan->minibatch_rows, d, plan->weighted);
		int64		batch = Min(n, plan->minibatch_rows);

		Add(b, "mini-batch window", window, (int64) d * sizeof(float) + 2 * sizeof(float) +
			2 * sizeof(int32));
		Add(b, "mini-batch window", batch, (int64) d * sizeof(float) + 2 * sizeof(float) +
			sizeof(int32));
		Add(b, "mini-batch window", k, sizeof(double) + (int64) d * sizeof(float));
	}

	/*
	 * init => 'k-means||' (seed_parallel.c): each row's D^2, the kept keys and rows (8 k), and
	 * at most 1 + 5 rounds of them as candidates, with their float64 weighing sums; without an
	 * init, streamed rows are seeded so (KmeansBegin).  A fit that keeps nothing per row
	 * recomputes D^2 instead where it would not fit kmeans.memory_limit (seed_parallel.c).
	 */
	if (parallel)
	{
		int64		kept = Min((int64) 8 * plan->k_max, (int64) 1000000);

		if (KmeansParallelKeepsD2(plan, n))
			Add(b, "k-means|| seeding", n, sizeof(float));
		Add(b, "k-means|| seeding", kept, (int64) d * sizeof(float) + 24);
		Add(b, "k-means|| seeding", 1 + KMEANS_PARALLEL_ROUNDS * kept,
			(int64) d * (sizeof(float) + 2 * sizeof(double)) + 32);
	}

	if (stream)
		Add(b, "stream buffer", rows, (int64) d * sizeof(float) + sizeof(float) +
			(has_id ? sizeof(int64) : 0));

	if (plan->silhouette_rows > 0)
	{
		int64		s = Min(n, plan->silhouette_rows);

		Add(b, "silhouette sample", s, (int64) d * sizeof(float) + sizeof(int64) +
			nseg * (int64) (sizeof(int32) + sizeof(double)));
		/* each thread's scratch (km_quality.c): label runs, and lanes per cluster and dimension */
		Add(b, "silhouette sample", threads * s, nseg * 8);
		Add(b, "silhouette sample", threads * k, 8 + 64);
		Add(b, "silhouette sample", threads * (d + 512), 64);
	}
}

/* Adds the cached rows: their values, ids and the backend's norms. */
void
KmeansBudgetAddCache(KmeansBudget *b, int64 cache_bytes, int64 n)
{
	Add(b, "cached rows", 1, cache_bytes);
	Add(b, "cached rows", n, sizeof(float));
}

/* Megabytes, rounded up, for messages. */
static int64
MB(int64 bytes)
{
	return bytes == PG_INT64_MAX ? PG_INT64_MAX / (1024 * 1024) : (bytes + 1024 * 1024 - 1) / (1024 * 1024);
}

/* Whether the budget fits kmeans.max_memory. */
bool
KmeansBudgetFits(const KmeansBudget *b)
{
	return b->total <= (int64) kmeans_max_memory * 1024;
}

/*
 * Refuses a fit whose budget exceeds kmeans.max_memory, naming every term in MB.  rows_known
 * says whether n is the final row count or the rows read so far.
 */
void
KmeansBudgetCheck(const KmeansBudget *b, bool rows_known)
{
	StringInfoData detail;

	if (KmeansBudgetFits(b))
		return;
	initStringInfo(&detail);
	if (b->n == 0 && !rows_known)
		appendStringInfo(&detail, "Before counting the rows, for dimension %d and " INT64_FORMAT
						 " centers in %d k: ", b->d, b->plan->centers, b->plan->nseg);
	else
		appendStringInfo(&detail, "For %s" INT64_FORMAT " rows of dimension %d and " INT64_FORMAT
						 " centers in %d k: ", rows_known ? "" : "at least ", b->n, b->d,
						 b->plan->centers, b->plan->nseg);
	for (int i = 0; i < b->nitems; i++)
		appendStringInfo(&detail, "%s%s " INT64_FORMAT " MB", i > 0 ? ", " : "", b->names[i],
						 MB(b->bytes[i]));
	appendStringInfoChar(&detail, '.');
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("%s needs " INT64_FORMAT " MB of memory, more than kmeans.max_memory (%d MB)",
					b->plan->what, MB(b->total), kmeans_max_memory / 1024),
			 errdetail("%s", detail.data),
			 errhint("Ask for fewer centers (a smaller k, a narrower k range or a larger k_step) or "
					 "fit a sample of the rows; a superuser can raise kmeans.max_memory.")));
}
