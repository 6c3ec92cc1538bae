/*
 * kmeans.h -- declarations shared by the PostgreSQL side of the extension.
 */
#ifndef KMEANS_H
#define KMEANS_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "access/tupdesc.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "km_kernels.h"

#define KMEANS_DEFAULT_BATCH_ROWS 65536
#define KMEANS_MAX_K 1000000
/* Compute threads one fit may start (kmeans.threads); more only cost memory and switches. */
#define KMEANS_MAX_THREADS 256

/*
 * Rows of one resident chunk on the CPU: a multiple of KM_SUB_ROWS, small enough to cancel
 * quickly.  The GPU takes KM_CUDA_BLOCK_ROWS: launches large enough to fill the device.
 */
#define KMEANS_CHUNK_ROWS (16 * KM_SUB_ROWS)

/*
 * Multiply-adds one backend call may do (rows x centers x dimension), so that a cancel, checked
 * between calls, is seen within a fraction of a second whatever k and d: 8.6 * 10^9, about 0.1 s
 * on two cores at 100 GFLOP/s each.  A call takes at least one run of KM_SUB_ROWS rows, and the
 * common cases (k x d up to 2^19, as 1,024 centers of 128 values) keep KMEANS_CHUNK_ROWS.
 */
#define KMEANS_WORK_PER_CALL ((double) ((int64) 1 << 33))
/* Multiply-adds per pass below which a fit starts no compute threads (session.c). */
#define KMEANS_WORK_PER_THREAD ((double) (1 << 22))
/* A resident chunk starts at about this size and doubles; a streamed batch stays near 64 MB. */
#define KMEANS_FIRST_CHUNK_BYTES (1024 * 1024)
#define KMEANS_BATCH_BYTES (64 * 1024 * 1024)
/* Squared distances must stay below this (float32's largest value / 4) and reach above this. */
#define KMEANS_MAX_SQUARE (3.4028234663852886e38 / 4)
#define KMEANS_MIN_SQUARE 1e-30

typedef enum KmeansDevice
{
	KMEANS_DEVICE_AUTO,
	KMEANS_DEVICE_CPU,
	KMEANS_DEVICE_GPU
} KmeansDevice;

typedef enum KmeansInit
{
	KMEANS_INIT_PLUSPLUS,
	KMEANS_INIT_RANDOM,
	KMEANS_INIT_EXPLICIT,
	KMEANS_INIT_PARALLEL		/* k-means|| (Bahmani et al. 2012): strategy => 'aggregate' */
} KmeansInit;

/* How a fit reads its source (strategy.c). */
typedef enum KmeansStrategy
{
	KMEANS_STRATEGY_AUTO,		/* the aggregate one where it is the only sensible one */
	KMEANS_STRATEGY_ENGINE,		/* the rows read into the engine, kept or streamed */
	KMEANS_STRATEGY_AGGREGATE	/* every pass an aggregate query over the source */
} KmeansStrategy;

/* GUCs (gucs.c) */
extern int	kmeans_device;
extern int	kmeans_batch_rows;
extern int	kmeans_memory_limit;	/* kB */
extern int	kmeans_max_memory;	/* kB */
extern int	kmeans_threads;
extern bool kmeans_trace;
extern bool kmeans_match_clusters;
extern bool kmeans_prune;
extern bool kmeans_verbose;
/* kmeans.trace, or its old name kmeans.verbose: a NOTICE per iteration */
#define KmeansTracing() (kmeans_trace || kmeans_verbose)
extern int	kmeans_gpu_id;
extern int	kmeans_gpu_memory_limit;	/* kB; 0: what the device has free */
extern int	KmeansThreads(void);

/* The options every fitting function shares. */
typedef struct KmeansOptions
{
	int			max_iter;
	double		tol;
	KmeansInit	init;
	const char *init_name;
	bool		init_auto;		/* init not given: k-means++, or k-means|| where the engine
								 * reads the rows again every pass (KmeansBegin) */
	ArrayType  *init_centers;	/* k x d, when init is explicit */
	int			n_init;
	int64		seed;
	KmeansDevice device;
	const char *device_name;
	char	   *weight;			/* the weight column or expression, or NULL */
	KmMetric	metric;
	bool		median;			/* center => 'median': each center the per-dimension median */
	KmeansStrategy strategy;
	bool		minibatch;		/* algorithm => 'minibatch' (minibatch.c) */
	int			batch_size;		/* its rows per mini-batch */
	int			dtw_band;		/* metric => 'dtw': the Sakoe-Chiba radius, -1 for none */
	int			barycenter_iter;	/* its DBA steps per update at most (dtw.c), or under
								 * softdtw its L-BFGS iterations (softdtw.c) */
	double		gamma;			/* metric => 'softdtw': the softmin's smoothing */
	Oid			ext_namespace;	/* the extension's schema, for the aggregate strategy's queries */
} KmeansOptions;

/*
 * What a fit will hold besides the rows, known before it reads them: the memory estimate
 * (budget.c) and the size of a batch of work (reader.c) follow from it.
 */
typedef struct KmeansPlan
{
	const char *what;			/* the SQL function, for messages */
	int			k_max;			/* checked against the rows (KmeansCheckK) */
	int			k_min;			/* the smallest k (see KM_BOUNDS_MIN_K) */
	const char *k_name;			/* "k" or "k_max" */
	int			nseg;			/* k fitted together */
	int64		centers;		/* their k added up */
	int			n_init;			/* seeding runs: more than one keeps a second model set */
	bool		final_labels;	/* every row's final label per k is kept (kmeans_elbow) */
	bool		weighted;		/* every row's weight is kept */
	bool		median;			/* each pass gathers the rows by label for the medians */
	int64		silhouette_rows;	/* rows of the silhouette sample; 0 for none */
	int64		minibatch_rows; /* algorithm => 'minibatch': rows per mini-batch; 0 for Lloyd */
	bool		parallel_init;	/* init => 'k-means||' with the engine's passes (seed_parallel.c) */
	bool		plusplus_init;	/* greedy k-means++, or no init given (seed.c) */
	bool		init_auto;		/* init not given: k-means|| if the rows are streamed */
} KmeansPlan;

#define KMEANS_BUDGET_ITEMS 12

/* A fit's host memory, term by term (budget.c). */
typedef struct KmeansBudget
{
	const KmeansPlan *plan;
	int64		n;
	int			d;
	int			nitems;
	const char *names[KMEANS_BUDGET_ITEMS];
	int64		bytes[KMEANS_BUDGET_ITEMS];
	int64		total;
} KmeansBudget;

/* How the reader takes a row's vector: a real[], or pgvector's own binary form (pgvector.c). */
typedef enum KmeansInputKind
{
	KMEANS_INPUT_ARRAY,			/* cast to real[] by the query */
	KMEANS_INPUT_VECTOR,		/* pgvector's vector: float4 values */
	KMEANS_INPUT_HALFVEC		/* pgvector's halfvec: binary16 values */
} KmeansInputKind;

/* Where the rows come from: the query the reader runs, and names for messages. */
typedef struct KmeansSource
{
	char	   *source;			/* as the user wrote it */
	char	   *column;
	char	   *id_column;		/* NULL: no id */
	char	   *weight;			/* NULL: every row weighs 1 */
	char	   *query;			/* SELECT CAST((column) AS real[]) [, CAST((id) AS int8)]
								 * [, CAST((weight) AS float8)] FROM ... (source.c) */
	KmeansInputKind kind;		/* not an array: the column is read without the cast */
	Oid			vector_type;	/* then the column's type */
	KmMetric	metric;			/* what the reader does to each row (metric.c) */
	Oid			relid;			/* a relation source: the relation (InvalidOid for a query) */
	char		relkind;
} KmeansSource;

/* One batch of rows handed to a pass callback. */
typedef struct KmeansBatch
{
	int64		first;			/* global index (0-based, NULL rows excluded) of row 0 */
	int64		n;
	const float *x;				/* centred rows, n x d */
	const float *w;				/* their weights, or NULL for 1 */
	const int64 *ids;			/* NULL without an id column */
	KmBlock    *blk;
	bool		done;			/* set by the callback: the pass needs no more rows */
} KmeansBatch;

typedef void (*KmeansBatchFn) (KmeansBatch *batch, void *arg);

/* The data of one fit: resident chunks or a source re-read each pass. */
typedef struct KmeansData
{
	KmeansSource *src;
	MemoryContext cxt;
	int			d;
	int64		n;				/* non-NULL rows */
	int64		nulls;
	bool		resident;
	float	   *mean;			/* d: the offset subtracted from every row */
	double		mean_var;		/* mean of the per-dimension variances (unweighted) */

	/* weights (src->weight): every row's, kept in host memory whether or not the rows are */
	float	   *weights;		/* n, or NULL when unweighted */
	double		weight_total;	/* their sum, in row order */
	int64		weighted_rows;	/* rows of positive weight */

	/* resident chunks of chunk_rows rows (the last one may hold fewer) */
	int64		chunk_rows;
	int			nchunks;
	float	  **chunks;
	int64	  **chunk_ids;
	KmBlock   **blocks;

	/* streaming */
	int			batch_rows;
	void	   *plan;			/* SPIPlanPtr */

	/* the first pass's range of every dimension: later passes must stay within it */
	float	   *lo;
	float	   *hi;

	const KmeansPlan *fit;		/* what the fit will hold: sizes the batches and the budget */
	bool		gpu;
	KmBackend  *be;
	int			guc_nest;		/* the GUC nest level of the scan settings */
	bool		fed;			/* rows handed over one at a time: never read again */
	struct KmeansAggregate *agg;	/* strategy => 'aggregate': the passes are queries (strategy.c) */
	struct KmeansProgressClaim *progress;	/* what kmeans_progress shows of the fit */
	struct KmeansSeriesRows *series;	/* metric => 'dtw': the rows as series (reader.c) */
} KmeansData;

/*
 * Rows read as series (metric => 'dtw'): of any length >= 2, kept whole in host memory, never
 * centred.  Row i is values[off[i] .. off[i + 1] - 1].
 */
typedef struct KmeansSeriesRows
{
	int64		n;
	int64	   *off;			/* n + 1 */
	float	   *values;
	int64	   *ids;			/* n, or NULL without an id column */
	int			min_len;
	int			max_len;
	int			first_len;		/* the first row's, the usual length of all */
	int64		cap_values;		/* while reading: room in values */
	int64		cap_rows;		/* and in off and ids */
} KmeansSeriesRows;

/* budget.c */
extern void KmeansBudgetMake(KmeansBudget *b, const KmeansPlan *plan, int64 n, int d, bool stream,
							 int64 block_rows, bool has_id);
extern void KmeansBudgetAddCache(KmeansBudget *b, int64 cache_bytes, int64 n);
extern bool KmeansBudgetFits(const KmeansBudget *b);
extern void KmeansBudgetCheck(const KmeansBudget *b, bool rows_known);

/* source.c */
extern KmeansSource *KmeansSourceMake(text *source, text *column, text *id_column,
									  const char *weight);
extern text *KmeansSourceArg(FunctionCallInfo fcinfo, int argno);

/* reader.c */
extern KmeansData *KmeansDataLoad(KmeansSource *src, const KmeansPlan *plan, bool gpu);
extern KmeansData *KmeansSeriesLoad(KmeansSource *src, const KmeansPlan *plan);
extern void KmeansDataAttach(KmeansData *data, KmBackend *be);
extern void KmeansDataDetach(KmeansData *data);
extern void KmeansScan(KmeansData *data, KmeansBatchFn fn, void *arg);
extern char *KmeansRowName(int64 rowno, bool has_id, int64 id);
typedef struct KmeansFeed KmeansFeed;
extern KmeansFeed *KmeansFeedBegin(KmeansSource *src, const KmeansPlan *plan, bool gpu);
extern void KmeansFeedRow(KmeansFeed *f, Datum value, bool isnull);
extern KmeansData *KmeansFeedEnd(KmeansFeed *f);
extern void KmeansFeedRowWeighted(KmeansFeed *f, Datum value, float w);
extern void KmeansDataOutside(KmeansData *data, const KmeansPlan *plan, bool gpu, int d, int64 n);

/* vector.c: every real[] checked in one place */
typedef struct KmeansArrayView
{
	int			ndim;
	int			dims[2];		/* the first two dimensions */
	int64		nitems;
	const bits8 *nulls;			/* the NULL bitmap, or NULL */
	const char *values;			/* float4 values, unaligned in a short varlena */
} KmeansArrayView;

extern const char *KmeansNonFiniteName(float v);
extern void KmeansArrayViewRaw(const char *p, KmeansArrayView *v);
extern void KmeansArrayViewOf(ArrayType *a, KmeansArrayView *v);
extern int64 KmeansArrayFirstNull(const KmeansArrayView *v);
extern int64 KmeansCopyFinite(const char *values, int64 m, float *dst);
extern const float *KmeansCheckStartCenters(ArrayType *a, int k, int d);
extern const float *KmeansCheckPredictCenters(ArrayType *a, int *k, int *d);
extern const float *KmeansCheckVector(ArrayType *x, int d, const char *against);
extern const float *KmeansCheckVectorHint(ArrayType *x, int d, const char *against,
										  const char *length_hint);
extern void KmeansReadVector(Datum x, int d, float *dst, const char *against,
							 const char *length_hint);
extern const float *KmeansCheckModelCenters(ArrayType *a, const char *name, const char *table,
											int k, int d);

/* metric.c */
extern KmMetric KmeansMetricByName(const char *name);
extern const char *KmeansMetricName(KmMetric metric);
extern void KmeansMetricVectorOnly(KmMetric metric, const char *what);
extern const char *KmeansMetricPrepareRow(KmMetric metric, float *x, int d);
extern const char *KmeansMetricRowHint(KmMetric metric);
extern bool KmeansMetricCentred(KmMetric metric);
extern void KmeansMetricFinishCenter(KmMetric metric, float *c, const float *prev,
									 const float *mean, int d);
extern double KmeansMetricDistance(KmMetric metric, float squared);
extern double KmeansMetricInertia(KmMetric metric, double squared_sum);
extern int	KmeansMetricNearest(KmMetric metric, const float *centers, int k, int d,
								const float *x);

/* pgvector.c */
extern KmeansInputKind KmeansPgvectorKind(Oid typid);
extern const char *KmeansPgvectorValues(const struct varlena *v, KmeansInputKind kind, int *dim);
extern int64 KmeansHalfCopyFinite(const char *values, int64 m, float *dst);

/* dtw.c: metric => 'dtw' */
struct KmeansModelSet;
extern struct KmeansModelSet *KmeansDtwRuns(KmeansData *data, const KmeansOptions *opt, int nseg,
											const int *ks,
											void (*fn) (KmeansBatch *batch, const int32 *labels,
														const float *dist, int nseg, void *arg),
											void *arg);
extern int	KmeansDtwCenterLength(const KmeansData *data, const KmeansOptions *opt);
extern void KmeansDtwQuality(KmeansData *data, struct KmeansModelSet *ms, const KmeansOptions *opt,
							 const int *ks, const int32 *labels, const double *spread,
							 int64 sample_size, double *sil, double *db);
extern const float *KmeansCheckSeries(ArrayType *x, const char *what, int *len);
extern int	KmeansDtwBandArg(FunctionCallInfo fcinfo, int argno);
extern int	KmeansSeriesNearest(KmMetric metric, const float *centers, int k, int lc,
								const float *x, int lx, int band, double gamma);
extern void KmeansCheckGamma(double gamma);

/* modelset.c, seed.c, fetch.c, lloyd.c, runs.c, session.c */

/* A set of models iterated together: one segment per k. */
typedef struct KmeansModelSet
{
	MemoryContext cxt;			/* holds the set and its arrays */
	int			nseg;
	int			d;
	int		   *seg_off;		/* nseg + 1 */
	float	   *centers;		/* seg_off[nseg] x d, centred */
	int		   *n_iter;			/* per segment */
	bool	   *converged;
	int64	   *sizes;			/* per center, after the final pass */
	double	   *inertia;		/* per center, after the final pass */
	double	   *sums;			/* per center x d, after the final pass: the label means' sums */
} KmeansModelSet;

/* Takes a batch's final labels: labels[i * nseg + s] in 0 .. k_s - 1, dist its squared distance. */
typedef void (*KmeansLabelFn) (KmeansBatch *batch, const int32 *labels, const float *dist,
							   int nseg, void *arg);

extern KmeansModelSet *KmeansModelSetMake(int d, int nseg, const int *ks);
extern void KmeansModelSetFree(KmeansModelSet *ms);
extern void KmeansModelSetKeep(KmeansModelSet *best, const KmeansModelSet *run, int s);
extern void KmeansRenumberSegment(KmeansModelSet *ms, int seg, const int *place);
extern void KmeansOrderByArea(KmeansModelSet *ms, int seg);
extern void KmeansSeedRun(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms, int run);
extern void KmeansFetchRows(KmeansData *data, const int64 *rows, int64 m, float *out);
extern void KmeansLloyd(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms);
extern void KmeansMiniBatch(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms, int run);
extern bool KmeansMiniBatchRunning(const KmeansModelSet *ms);
extern int64 KmeansMiniBatchWindow(int64 n, int64 batch, int d, bool weighted);
extern void KmeansFinalPass(KmeansData *data, KmeansModelSet *ms, KmeansLabelFn fn, void *arg);

/*
 * Whether the passes over the rows keep each row's state in the backend (pass_begin's keep):
 * Lloyd's do, between iterations; mini-batch keeps none, so that its memory does not grow
 * with the rows: its final pass and its k-means|| rounds keep only a block's labels.
 */
static inline bool
KmeansKeepsRowState(const KmeansPlan *plan)
{
	return plan == NULL || plan->minibatch_rows == 0;
}

/*
 * Whether k-means|| keeps each row's D^2 (4 bytes a row) for n rows: always where the passes
 * keep their state; under mini-batch while it fits kmeans.memory_limit, the memory its rows
 * may take (beyond it, seed_parallel.c recomputes D^2 from every candidate each round).
 */
static inline bool
KmeansParallelKeepsD2(const KmeansPlan *plan, int64 n)
{
	return KmeansKeepsRowState(plan) || n <= (int64) kmeans_memory_limit * 1024 / (int64) sizeof(float);
}
extern KmeansModelSet *KmeansRuns(KmeansData *data, const KmeansOptions *opt, int nseg, const int *ks,
								  KmeansLabelFn fn, void *arg);
extern double KmeansSegmentInertia(const KmeansModelSet *ms, int s);
extern void KmeansCheckStatus(KmStatus st, const KmError *err);
extern KmeansData *KmeansBegin(text *source, text *column, text *id_column, KmeansOptions *opt,
								KmeansPlan *plan);
extern void KmeansEnd(KmeansData *data);
extern KmeansFeed *KmeansFeedOpen(const char *what, const KmeansOptions *opt, const KmeansPlan *plan);
extern KmeansData *KmeansFeedStart(KmeansFeed *feed, const KmeansPlan *plan);

/* groupfit.c: rows handed over by an aggregate or a window, fitted as one group */
typedef struct KmeansGroupFit
{
	MemoryContext cxt;			/* everything below */
	KmeansOptions opt;
	KmeansPlan	plan;
	int			k;
	Jsonb	   *options;		/* as given, NULL for none: every row must give the same */
	KmeansFeed *feed;
	int64		rows;			/* rows handed over, NULL vectors included */
	int64		vectors;		/* those not NULL */
	KmeansData *data;			/* after KmeansGroupFitRun */
	KmeansModelSet *ms;
} KmeansGroupFit;

extern KmeansGroupFit *KmeansGroupFitBegin(MemoryContext parent, const char *what, int k,
										   Jsonb *options);
extern void KmeansGroupFitCheckArgs(KmeansGroupFit *g, int k, Jsonb *options);
extern void KmeansGroupFitRow(KmeansGroupFit *g, Datum x, bool isnull);
extern void KmeansGroupFitRun(KmeansGroupFit *g, KmeansLabelFn fn, void *arg);
extern void KmeansGroupFitFree(KmeansGroupFit *g);
extern void KmeansNotAggregate(const char *function, const char *aggregate) pg_attribute_noreturn();

/* step.c: a kmeans_step_state read into arrays */
typedef struct KmeansStepSums
{
	int			k;
	int			d;
	int64		rows;
	int64	   *counts;			/* k */
	double	   *sums;			/* k x d */
	double	   *inertia;		/* k, before KmeansMetricInertia */
	float	   *far;			/* k x d: each cluster's farthest row */
	float	   *far_dist;		/* k: its distance, -1 for an empty cluster */
} KmeansStepSums;

extern void KmeansStepStateRead(Datum state, KmeansStepSums *out);
extern char *KmeansStateTextOut(bytea *binary);
extern bool KmeansStateTextIn(const char *in, StringInfo buf);

/* sample.c: a kmeans_sample_state read into arrays */
typedef struct KmeansSample
{
	int			d;
	int64		rows;
	double	   *sums;			/* d: the values' sums */
	double		sumsq;			/* the sum of their squares */
	double		phi;			/* the sum of D^2 to the centers (0 without centers) */
	int			n;				/* sampled rows, first key first */
	double	   *keys;
	float	   *x;				/* n x d */
} KmeansSample;

extern void KmeansSampleStateRead(Datum state, KmeansSample *out);

/* strategy.c: strategy => 'aggregate' */
struct LloydState;
extern bool KmeansUseAggregate(const KmeansSource *src, const KmeansOptions *opt);
extern KmeansData *KmeansAggregateOpen(KmeansSource *src, const KmeansPlan *plan,
									   const KmeansOptions *opt, bool gpu);
extern void KmeansAggregatePass(KmeansData *data, struct LloydState *ls);
extern void KmeansAggregateRepair(KmeansData *data, struct LloydState *ls);
extern void KmeansAggregateSeed(KmeansData *data, const KmeansOptions *opt, int k, int run,
								float *centers);
extern uint64 KmeansRunSeed(const KmeansOptions *opt, int run);
extern void KmeansAddCandidates(float **c, int *nc, int *cap, const float *x, int n, int d);
extern void KmeansPlusPlusOnCandidates(const KmeansOptions *opt, const float *c, const double *w,
									   int nc, int d, int k, uint64 seed, float *centers);

/* k-means|| (Bahmani et al. 2012): rounds of rows drawn by D^2 (strategy.c, seed_parallel.c) */
#define KMEANS_PARALLEL_ROUNDS 5
extern void KmeansSeedRandom(KmeansData *data, int k, uint64 seed, float *centers);
extern void KmeansSampleRows(KmeansData *data, int k, uint64 seed, int64 *rows);
extern int64 KmeansFirstCenterRow(KmeansData *data, KmRng *rng);
extern void KmeansSeedParallel(KmeansData *data, const KmeansOptions *opt, int k, int run,
							   float *centers);

/* steplog.c: the steps of this session's last fit, for kmeans_last_fit() */
typedef enum KmeansPhase
{
	KMEANS_PHASE_READ,			/* the first pass over the source */
	KMEANS_PHASE_SEED,			/* one seeding run */
	KMEANS_PHASE_ITERATE,		/* one Lloyd iteration: a pass and the centers' update */
	KMEANS_PHASE_FINAL,			/* the final assignment of a run */
	KMEANS_PHASE_QUALITY		/* kmeans_elbow's quality indices */
} KmeansPhase;

extern void KmeansStepLogReset(void);
extern void KmeansStepLogRun(int run);
extern double KmeansStepStart(void);
extern void KmeansStepEnd(KmeansPhase phase, double start, int iteration, int k_running,
						  double inertia);

/* progress.c: what kmeans_progress shows of a running fit */
typedef enum KmeansProgressPhase
{
	KMEANS_PROGRESS_READING,
	KMEANS_PROGRESS_SEEDING,
	KMEANS_PROGRESS_ITERATING,
	KMEANS_PROGRESS_LABELLING,
	KMEANS_PROGRESS_QUALITY
} KmeansProgressPhase;

typedef struct KmeansProgressClaim KmeansProgressClaim;
extern void KmeansProgressInit(void);
extern KmeansProgressClaim *KmeansProgressBegin(const char *what, int k_min, int k_max, int n_init);
extern void KmeansProgressEnd(KmeansProgressClaim *c);
extern void KmeansProgressSetPhase(KmeansProgressPhase phase, int run, int iteration);
extern void KmeansProgressRows(int64 rows, int64 total);
extern void KmeansProgressInertia(double inertia);

/* options.c */

/* Where each option sits in a function's arguments; -1 when the function has no such option. */
typedef struct KmeansArgPos
{
	int			max_iter;
	int			tol;
	int			init;
	int			init_centers;
	int			n_init;
	int			seed;
	int			device;
	int			weight;
	int			metric;
	int			center;
	int			strategy;
	int			algorithm;
	int			batch_size;
	int			dtw_band;
	int			barycenter_iter;
	int			gamma;
} KmeansArgPos;

extern void KmeansParseOptions(FunctionCallInfo fcinfo, const KmeansArgPos *pos,
							   KmeansOptions *opt);
extern void KmeansParseJsonOptions(Jsonb *options, const char *what, KmeansOptions *opt);
extern void KmeansRequireArgs(FunctionCallInfo fcinfo, int nargs, const char *names,
							  const char *hint);
extern void KmeansCheckK(int k, int64 n, const char *what);
extern char *KmeansOptionsJson(const KmeansOptions *opt, const KmeansSource *src, bool aggregate);

/* models.c */
extern char *KmeansModelsTable(FunctionCallInfo fcinfo);
extern void KmeansModelCheckSave(FunctionCallInfo fcinfo, const char *name);
extern const float *KmeansModelPrevious(const char *table, const char *name, int *k, int *d);

/* match.c */
extern bool KmeansMatchClusters(KmeansData *data, KmeansModelSet *ms, const float *old, int old_k,
								int old_d);
extern void KmeansModelSave(const char *table, const char *name, const KmeansSource *src, const KmeansOptions *opt,
							KmeansData *data, KmeansModelSet *ms, int seg);

/* results.c */
extern struct Tuplestorestate *KmeansResultStore(FunctionCallInfo fcinfo, TupleDesc *desc);
extern Datum KmeansVectorDatum(const float *v, int d);
extern Datum KmeansCentersDatum(const float *c, int k, int d);
extern float *KmeansCentersOut(KmeansData *data, KmeansModelSet *ms, int seg);

#endif							/* KMEANS_H */
