/*
 * session.c -- a fit's lifecycle: SPI and the scan settings, the choice of backend, starting it
 * and tying its release to the data's memory context, and the one place a compute-side status
 * becomes an ERROR.
 */
#include "kmeans.h"

#include <math.h>

#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* Turns a compute-side failure into one ERROR. */
void
KmeansCheckStatus(KmStatus st, const KmError *err)
{
	if (st == KM_OK)
		return;
	if (st == KM_ERR_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("kmeans: %s", err->message),
				 errhint("Lower kmeans.threads or k, or free memory on the server.")));
	if (st == KM_ERR_DEVICE_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("kmeans: %s", err->message),
				 errhint("Raise kmeans.gpu_memory_limit or lower k, or run on the CPU with device => 'cpu'.")));
	if (st == KM_ERR_THREAD)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("kmeans: %s", err->message),
				 errhint("Lower kmeans.threads (now %d; 0 means one per core), or raise the server's limit on processes.",
						 kmeans_threads)));
	if (st == KM_ERR_NO_DEVICE || st == KM_ERR_UNSUPPORTED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kmeans: %s", err->message)));
	if (st == KM_ERR_DEVICE)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("kmeans: GPU error: %s", err->message),
				 errdetail("Reported at %s:%d.", err->file ? err->file : "?", err->line),
				 errhint("Run on the CPU with device => 'cpu' meanwhile.")));
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("kmeans: %s: %s", km_status_name(st), err->message),
			 errdetail("Reported at %s:%d.", err->file ? err->file : "?", err->line)));
}

/* Stops the backend's threads and frees its memory; also run when an ERROR unwinds the fit. */
static void
ReleaseBackend(void *arg)
{
	KmeansData *data = arg;
	KmBackend  *be = data->be;

	if (be == NULL)
		return;
	KmeansDataDetach(data);
	be->ops->destroy(be);
}

/*
 * Whether the fit runs on the GPU: 'cpu' never, 'gpu' or an ERROR saying why not, 'auto' when
 * kmeans.gpu_id can be used.  Which device a fit took is reported at DEBUG1, as is why an
 * 'auto' fell back to the CPU (except in a build without the GPU backend, where the CPU is the
 * only choice): never at a level a client or the server log shows by default, because every
 * pg_cron job is a new session, and a GPU build on a server without a GPU would otherwise log
 * the fallback on every run.  The probe initialises CUDA in this backend process, never earlier.
 */
static bool
UseGpu(const KmeansOptions *opt)
{
	char		desc[256];
	KmError		err = {0};

	if (opt->device == KMEANS_DEVICE_CPU)
		return false;
	/*
	 * the GPU backend does not weigh rows yet (km_cuda_state.cuh); a DTW fit weighs them on the
	 * host, the GPU only assigns them
	 */
	if (opt->weight != NULL && !km_metric_series(opt->metric))
	{
		if (opt->device == KMEANS_DEVICE_GPU)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("weights are not supported on device \"gpu\" yet"),
					 errdetail("The fit was asked for weight => '%s'.", opt->weight),
					 errhint("Use device => 'cpu' or 'auto' for a weighted fit.")));
		elog(DEBUG1, "kmeans: a weighted fit runs on the CPU");
		return false;
	}
	if (km_cuda_probe(kmeans_gpu_id, desc, sizeof(desc), &err) == KM_OK)
	{
		elog(DEBUG1, "kmeans: running on %s", desc);
		return true;
	}
	if (opt->device == KMEANS_DEVICE_GPU)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("device \"gpu\" is not available"),
				 errdetail("%s.", err.message),
				 errhint("Use device => 'cpu' or 'auto', or set kmeans.device = 'auto'; "
						 "kmeans.gpu_id picks another GPU.")));
	if (km_cuda_built())
		ereport(DEBUG1,
				(errmsg("kmeans: no usable GPU, running on the CPU"),
				 errdetail("%s.", err.message),
				 errhint("Set kmeans.device = 'cpu' to choose the CPU without probing.")));
	return false;
}

/*
 * Starts the chosen backend and hands it the data.  Its threads and memory live outside
 * PostgreSQL's allocator, so they are tied to the data's memory context: deleting the context,
 * as ERROR and cancel do, releases them.
 */
static void
EngineStart(KmeansData *data, bool gpu)
{
	MemoryContextCallback *cb;
	KmBackend  *be = NULL;
	KmError		err = {0};
	int			threads = KmeansThreads();

	/*
	 * A pass of less work than starting a thread costs (about half a millisecond) runs on this
	 * thread alone: a fit per GROUP BY group of a few thousand rows starts no threads.  Results
	 * do not depend on the thread count.
	 */
	if ((double) data->n * Max(data->fit->centers, 1) * Max(data->d, 1) < KMEANS_WORK_PER_THREAD)
		threads = 1;
	if (gpu)
		KmeansCheckStatus(km_cuda_backend_create(kmeans_gpu_id, data->d,
												 (size_t) kmeans_gpu_memory_limit * 1024,
												 &be, &err), &err);
	else
		KmeansCheckStatus(km_cpu_backend_create(threads, data->d, &be, &err), &err);

	/* the CPU backend prunes where its kernel allows (km_bounds.c); the GPU's ignores it */
	be->prune = kmeans_prune ? KM_PRUNE_ON : KM_PRUNE_OFF;
	cb = MemoryContextAlloc(data->cxt, sizeof(MemoryContextCallback));
	cb->func = ReleaseBackend;
	cb->arg = data;
	data->be = be;
	MemoryContextRegisterResetCallback(data->cxt, cb);
	KmeansCheckStatus(be->ops->set_metric(be, data->src->metric, &err), &err);
	KmeansDataAttach(data, be);
}

/*
 * Starts the GPU backend for a DTW fit, which takes only its series_assign (dtw.c): no blocks,
 * no metric, rows copied on every call.  Released with the data's memory context, as
 * EngineStart's backend is.
 */
static void
SeriesEngineStart(KmeansData *data)
{
	MemoryContextCallback *cb;
	KmBackend  *be = NULL;
	KmError		err = {0};

	KmeansCheckStatus(km_cuda_backend_create(kmeans_gpu_id, 1,
											 (size_t) kmeans_gpu_memory_limit * 1024, &be, &err),
					  &err);
	cb = MemoryContextAlloc(data->cxt, sizeof(MemoryContextCallback));
	cb->func = ReleaseBackend;
	cb->arg = data;
	data->be = be;
	data->gpu = true;
	MemoryContextRegisterResetCallback(data->cxt, cb);
}

/* Releases the backend at the end of a fit that went well. */
static void
EngineStop(KmeansData *data)
{
	ReleaseBackend(data);
	data->be = NULL;
}

/* Refuses k above the rows of positive weight (k above the rows is KmeansCheckK's). */
static void
CheckWeightedK(KmeansData *data, const KmeansPlan *plan)
{
	if (data->weights != NULL && plan->k_max > data->weighted_rows)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s (%d) is larger than the number of rows of positive weight (" INT64_FORMAT ")",
						plan->k_name, plan->k_max, data->weighted_rows),
				 errdetail("Rows of weight 0 are labelled but cannot hold a center."),
				 errhint("Ask for at most as many clusters as there are rows of positive weight.")));
}

/*
 * Rows the engine reads again on every pass (they did not fit kmeans.memory_limit) and no init
 * given: seeded by k-means||, a few passes, not greedy k-means++'s two or three per center
 * (seed_parallel.c).  The first pass counted its memory (budget.c's init_auto); the saved
 * options say 'k-means||'.
 */
static void
SeedStreamedRows(KmeansData *data, KmeansOptions *opt, KmeansPlan *plan)
{
	opt->init = KMEANS_INIT_PARALLEL;
	opt->init_name = "k-means||";
	plan->parallel_init = true;
	plan->plusplus_init = false;
	ereport(KmeansTracing() ? NOTICE : DEBUG1,
			(errmsg("kmeans: the rows are read again on every pass: seeded by k-means||"),
			 errdetail(INT64_FORMAT " rows of dimension %d are not kept in memory: they exceed "
					   "kmeans.memory_limit (%d kB) or, with the fit, kmeans.max_memory (%d kB).",
					   data->n, data->d, kmeans_memory_limit, kmeans_max_memory),
			 errhint("Pass init => 'k-means++' for greedy k-means++ seeding.")));
}

/*
 * Opens a fit: connects to SPI, opens a GUC nest level for the scan settings, reads the source
 * once, checks k_max against its rows and starts the backend.  KmeansEnd closes it.
 */
KmeansData *
KmeansBegin(text *source, text *column, text *id_column, KmeansOptions *opt, KmeansPlan *plan)
{
	KmeansData *data;
	KmeansSource *src;
	int			nest;
	bool		gpu;
	double		start;
	KmeansProgressClaim *claim;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kmeans: SPI_connect failed");
	nest = NewGUCNestLevel();
	/*
	 * the device comes first: it sets how many rows a resident chunk holds.  Soft-DTW has no
	 * GPU kernels: kmeans.device = 'gpu' alone leaves it on the CPU (device => 'gpu' is
	 * refused in options.c).
	 */
	gpu = opt->metric != KM_METRIC_SOFTDTW && UseGpu(opt);
	KmeansStepLogReset();
	claim = KmeansProgressBegin(plan->what, plan->k_min, plan->k_max, opt->n_init);
	start = KmeansStepStart();
	src = KmeansSourceMake(source, column, id_column, opt->weight);
	src->metric = opt->metric;
	if (km_metric_series(opt->metric))
		data = KmeansSeriesLoad(src, plan);	/* fitted by dtw.c, the GPU's assignment aside */
	else if (KmeansUseAggregate(src, opt))
	{
		/* its seeding is aggregate queries (strategy.c), which keep no D^2 per row */
		plan->init_auto = false;
		data = KmeansAggregateOpen(src, plan, opt, gpu);	/* strategy.c */
	}
	else
	{
		data = KmeansDataLoad(src, plan, gpu);
		if (opt->init_auto && !data->resident)
			SeedStreamedRows(data, opt, plan);
	}
	KmeansStepEnd(KMEANS_PHASE_READ, start, 0, plan->nseg, NAN);
	data->guc_nest = nest;
	data->progress = claim;
	KmeansCheckK(plan->k_max, data->n, plan->k_name);
	CheckWeightedK(data, plan);
	if (data->series == NULL)
		EngineStart(data, gpu);
	else if (gpu)
		SeriesEngineStart(data);
	return data;
}

/*
 * Opens a fit of rows that an aggregate or a window hands over (KmeansFeedRow) rather than a
 * source: what (the SQL function) names them in messages.  The device is chosen now, because
 * it sets how the rows are kept.  The feed lives in the current memory context.
 */
KmeansFeed *
KmeansFeedOpen(const char *what, const KmeansOptions *opt, const KmeansPlan *plan)
{
	KmeansSource *src = palloc0(sizeof(KmeansSource));

	src->source = pstrdup(what);
	src->column = "x";
	src->kind = KMEANS_INPUT_ARRAY;
	src->metric = opt->metric;
	return KmeansFeedBegin(src, plan, UseGpu(opt));
}

/* The fit of the rows handed over: checks k against them and starts the backend. */
KmeansData *
KmeansFeedStart(KmeansFeed *feed, const KmeansPlan *plan)
{
	KmeansData *data;

	data = KmeansFeedEnd(feed);
	data->progress = KmeansProgressBegin(plan->what, plan->k_min, plan->k_max, plan->n_init);
	KmeansCheckK(plan->k_max, data->n, plan->k_name);
	CheckWeightedK(data, plan);
	EngineStart(data, data->gpu);
	return data;
}

/* Closes a fit that went well: the backend and, for a source, the scan settings and SPI. */
void
KmeansEnd(KmeansData *data)
{
	int			nest = data->guc_nest;

	KmeansProgressEnd(data->progress);
	data->progress = NULL;
	EngineStop(data);
	if (data->fed)
		return;
	AtEOXact_GUC(true, nest);
	SPI_finish();
}
