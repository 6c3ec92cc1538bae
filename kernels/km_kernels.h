/*
 * km_kernels.h -- the compute side of kmeans: a small C API with no PostgreSQL in it.
 *
 * The PostgreSQL side (src/) reads rows, validates them and drives the Lloyd loop; everything
 * that touches many rows at once goes through a KmBackend, whose operations are the same for
 * the CPU backend (km_cpu.c) and a GPU twin, and which owns each row's state between calls.  Functions here never call exit/abort and never
 * report errors themselves: they return a KmStatus and fill a KmError with file, line and a
 * message, which the caller turns into one ereport.
 *
 * Conventions shared by every operation:
 *   - data rows are float32, row-major, d values each, already centred by the caller;
 *   - centers are grouped in nseg segments (one per k of an elbow, one for a plain fit);
 *     segment s owns centers seg_off[s] .. seg_off[s+1]-1 and labels are global center indices;
 *   - nearest-center kernels return, per row and segment, the label and a "best" value: the
 *     squared distance itself for the small-d kernel (direct sum of (x - c)^2), and the score
 *     |c|^2 - 2 x.c for the GEMM kernel, whose squared distance is max(0, |x|^2 + score);
 *   - every reduction over rows is in float64 in an order fixed by the rows alone (row order
 *     per cluster, or fixed lanes within each run of KM_SUB_ROWS rows), so results depend
 *     neither on the thread count nor on how rows are split into batches.
 */
#ifndef KM_KERNELS_H
#define KM_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A multiply-add, fused where the target has FMA instructions.  Every kernel and its reference
 * twin use it, so they stay bit-identical within a build; without FMA (a portable x86-64 build)
 * it is a plain multiply and add rather than a libm call per operation.
 */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#define KM_FMAF(a, b, c) fmaf((a), (b), (c))
#else
#define KM_FMAF(a, b, c) ((a) * (b) + (c))
#endif

/*
 * Squared distance of x to c summed directly: sixteen float lanes (one vector register) added
 * in a fixed order, so it vectorises and gives the same bits on every call and every ISA with
 * the same KM_FMAF.  Without cancellation its relative error is a few units of float precision.
 */
static inline float
km_dist2(const float *__restrict x, const float *__restrict c, int d)
{
	float		lane[16] = {0};
	float		sum = 0.0f;
	int			t = 0;

	for (; t + 16 <= d; t += 16)
		for (int l = 0; l < 16; l++)
		{
			float		diff = x[t + l] - c[t + l];

			lane[l] = KM_FMAF(diff, diff, lane[l]);
		}
	for (; t < d; t++)
	{
		float		diff = x[t] - c[t];

		sum = KM_FMAF(diff, diff, sum);
	}
	/* a fixed tree over the lanes, which compiles to a few shuffles rather than 16 adds */
	for (int w = 8; w > 0; w /= 2)
		for (int l = 0; l < w; l++)
			lane[l] += lane[l + w];
	return sum + lane[0];
}

/*
 * Squared distance of x to c summed in index order, (x_0 - c_0)^2 first and then one fused
 * multiply-add per coordinate: the distance the small-d kernels (km_argmin.c) report, which
 * km_bounds.c recomputes for one center with the same bits.
 */
static inline float
km_dist2_seq(const float *x, const float *c, int d)
{
	float		diff = x[0] - c[0];
	float		sum = diff * diff;

	for (int t = 1; t < d; t++)
	{
		diff = x[t] - c[t];
		sum = KM_FMAF(diff, diff, sum);
	}
	return sum;
}

typedef enum KmStatus
{
	KM_OK = 0,
	KM_ERR_NOMEM,				/* host allocation failed */
	KM_ERR_DEVICE_NOMEM,		/* device memory (or its budget) exhausted */
	KM_ERR_THREAD,				/* a compute thread could not be started */
	KM_ERR_ARGUMENT,			/* the caller broke an invariant: a bug */
	KM_ERR_NO_DEVICE,			/* the requested device is not available */
	KM_ERR_DEVICE,				/* the device reported an error */
	KM_ERR_UNSUPPORTED			/* the backend does not implement what was asked */
} KmStatus;

typedef struct KmError
{
	KmStatus	status;
	const char *file;
	int			line;
	char		message[256];
} KmError;

/* Records a failure in err (may be NULL) and returns its status. */
KmStatus	km_fail(KmError *err, KmStatus status, const char *file, int line,
					const char *fmt,...) __attribute__((format(printf, 5, 6)));

#define KM_FAIL(err, status, ...) km_fail((err), (status), __FILE__, __LINE__, __VA_ARGS__)

/* A short English name for a status. */
const char *km_status_name(KmStatus status);

/*
 * Deterministic random numbers: xoshiro256** seeded through splitmix64, so that a seed means
 * the same stream on every platform and build.
 */
typedef struct KmRng
{
	uint64_t	s[4];
} KmRng;

void		km_rng_seed(KmRng *rng, uint64_t seed);
uint64_t	km_rng_next(KmRng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double		km_rng_uniform(KmRng *rng);
/* Uniform integer in [0, bound), without modulo bias. */
uint64_t	km_rng_below(KmRng *rng, uint64_t bound);

/* ---------------------------------------------------------------------------------------------
 * Single-threaded building blocks, each with a plain reference twin used by the tests.
 * ------------------------------------------------------------------------------------------- */

/* |row|^2 of every row, summed in index order in float32. */
void		km_row_norms(const float *x, int64_t n, int d, float *norms);

/*
 * Nearest center in each segment for rows x[0..n): labels[i*nseg+s] is the global index of the
 * nearest center (lowest index on ties), best[i*nseg+s] its squared distance (cnorm is unused
 * here; the GEMM kernel below needs it).  Which kernel serves (d, k) depends on nothing else
 * (km_use_gemm), so a given input always takes the same arithmetic.
 */
void		km_argmin_ref(const float *x, int64_t n, int d, const float *c, const float *cnorm,
						  int nseg, const int *seg_off, int32_t *labels, float *best);
void		km_argmin_small(const float *x, int64_t n, int d, const float *c, const float *cnorm,
							int nseg, const int *seg_off, int32_t *labels, float *best);

/*
 * km_argmin_small with, in second, each row's least distance to another center of the segment
 * (the least again where two tie; +Inf in a segment of one center).  labels and best are
 * km_argmin_small's bits.
 */
void		km_argmin_small2(const float *x, int64_t n, int d, const float *c, int nseg,
							 const int *seg_off, int32_t *labels, float *best, float *second);

/* Largest d served by km_argmin_small's register-blocked kernel. */
#define KM_SMALL_D_MAX 16

/*
 * The large-d path: the scores are a matrix product, computed tile by tile by a register-blocked
 * SGEMM micro-kernel with the argmin fused over each tile (km_gemm.c).
 */
size_t		km_gemm_packed_size(int k, int d);
void		km_gemm_pack(const float *c, int k, int d, void *packed);
void		km_gemm_argmin(const float *x, int64_t n, int d, const void *packed, const float *cnorm,
						   int nseg, const int *seg_off, int32_t *labels, float *best);

/* True when (d, k) goes to the GEMM kernel rather than the small-d one. */
int			km_use_gemm(int d, int k);

/*
 * The bfloat16 screen (km_screen.c), for one segment of many centers where the CPU has
 * AVX512-BF16: the product in bfloat16 at twice the float32 rate, a proven bound to drop the
 * centers that cannot be nearest, and km_dist2 to decide among the rest.  labels[i] is the
 * argmin of km_dist2 (lowest index on ties) and dist[i] that distance; norms[i] = |x_i|^2 as
 * km_row_norms gives it.  km_screen_pack returns 0 (use km_gemm.c) for centers whose norms are
 * too large for the bound.  km_screen_argmin returns its work: the km_dist2 calls it made, k
 * for a row it had to compare with every center.  Where that is a large share of k per row
 * (near ties everywhere, as in uniform data with random centers), km_gemm.c is faster.
 */
#define KM_SCREEN_MIN_K 64
#define KM_SCREEN_D_MAX 1024
int			km_screen_usable(int d, int k, int nseg);
size_t		km_screen_packed_size(int k, int d);
int			km_screen_pack(const float *c, int k, int d, void *packed);
int64_t		km_screen_argmin(const float *x, const float *norms, int64_t n, int d,
							 const void *packed, const float *c, int32_t *labels, float *dist);
/*
 * The same, stopping after the group of rows at which the work passes max_work: a caller that
 * samples the screen's work to choose a kernel learns "too much" without paying for it all (the
 * work only grows with rows, so the choice is the same).  Rows after the stop are not labelled.
 */
int64_t		km_screen_argmin_capped(const float *x, const float *norms, int64_t n, int d,
									const void *packed, const float *c, int32_t *labels,
									float *dist, int64_t max_work);

/*
 * The distance a fit clusters by.  Under cosine the rows and centers a backend is given are
 * unit vectors (the caller normalises them), so assignment, accumulation and seeding are the
 * Euclidean kernels: for unit x and c, |x - c|^2 = 2 (1 - cos(x, c)), the same argmin, and the
 * spherical k-means update is the mean normalised (Dhillon & Modha 2001), which the caller does.
 * Only what reports a distance between two rows converts: the silhouette takes
 * 1 - cos = |x - y|^2 / 2 where Euclidean takes |x - y|.
 *
 * Under IoU the rows are boxes (w, h), d = 2, w and h > 0, not centred (the caller passes no
 * shift), and a row's cost is km_iou_cost, 1 - IoU of two boxes that share a corner (Redmon &
 * Farhadi 2017).  It replaces the squared distance everywhere the kernels use one: the argmin
 * and the distances an assignment gives (so inertia sums 1 - IoU), the k-means++ distance
 * (the square of the cost: D^2 sampling with D = 1 - IoU) and the silhouette's distance.
 */
typedef enum KmMetric
{
	KM_METRIC_EUCLIDEAN = 0,
	KM_METRIC_COSINE,
	KM_METRIC_IOU,
	KM_METRIC_DTW,				/* series, not vectors: no backend's metric (km_dtw.h) */
	KM_METRIC_SOFTDTW			/* series too (km_softdtw.h) */
} KmMetric;

/*
 * Whether the metric takes series of any length, fitted outside the backends' passes (DTW's
 * assignment alone is a backend operation: series_assign).
 */
static inline int
km_metric_series(KmMetric metric)
{
	return metric == KM_METRIC_DTW || metric == KM_METRIC_SOFTDTW;
}

/*
 * 1 - IoU of boxes x = (w, h) and c = (w, h) placed at a common corner; both of positive area.
 * The union is written with KM_FMAF, so that no compiler contracts it its own way: every
 * caller, the GPU's IouCost included, gets the same bits.
 */
static inline float
km_iou_cost(const float *x, const float *c)
{
	float		iw = x[0] < c[0] ? x[0] : c[0];
	float		ih = x[1] < c[1] ? x[1] : c[1];
	float		inter = iw * ih;
	float		uni = KM_FMAF(x[0], x[1], KM_FMAF(c[0], c[1], -inter));

	return 1.0f - inter / uni;
}

/*
 * Nearest center per segment by km_iou_cost (lowest index on ties), for rows of d = 2:
 * labels as km_argmin_small's, best the cost itself (km_iou.c).
 */
void		km_argmin_iou(const float *x, int64_t n, const float *c, int nseg, const int *seg_off,
						  int32_t *labels, float *best);

/*
 * One row at a time (km_rowwise.c), for the aggregate forms: the centers packed once, then each
 * row's nearest center (lowest index on ties) and its squared distance, bit for bit those of
 * km_argmin_ref.
 */
#define KM_ROW_LANES 16
size_t		km_row_packed_floats(int k, int d);
void		km_row_pack(const float *c, int k, int d, float *packed);
int32_t		km_row_nearest(const float *x, int d, const float *packed, int k, float *dist);

/* ---------------------------------------------------------------------------------------------
 * Backends: the operations the engine needs, implemented once per device.
 * ------------------------------------------------------------------------------------------- */

typedef struct KmBackend KmBackend;
typedef struct KmBlock KmBlock;
/* km_dtw.h's series and DTW centers, which series_assign takes */
struct KmSeries;
struct KmDtwCenters;

/*
 * Rows are reduced in runs of this many: each run is summed in row order and the runs are
 * added in order, which keeps results independent of the thread count.
 */
#define KM_SUB_ROWS 1024

/* Per-center accumulators of a Lloyd pass, owned by the caller. */
typedef struct KmAccum
{
	int			d;
	int			k;				/* total centers over all segments */
	double	   *sums;			/* k * d */
	int64_t    *counts;			/* k */
	double	   *inertia;		/* k: sum of squared distances of the center's rows */
	/*
	 * k, or NULL: the weight of the center's rows.  Where blocks carry weights (block_create),
	 * mass must be given; each row then adds w x to sums, w |x - c|^2 to inertia and w to
	 * mass, and still 1 to counts.
	 */
	double	   *mass;
} KmAccum;

/*
 * The engine's interface to a backend: every operation is required, and the engine calls no
 * other, so it has one Lloyd path and one seeding path whatever the device.
 *
 * Each row's state between calls (its label and distance per segment between Lloyd passes,
 * its k-means++ distance while seeding) belongs to the backend: the CPU backend keeps it in
 * host memory, the GPU backend on the device, or in host memory when the device has no room
 * (km_state.h serves both).  The engine reads it back only where it needs it (a repair, the
 * final labels), in ranges of rows.
 */
typedef struct KmBackendOps
{
	const char *name;

	/* Releases everything the backend holds, blocks and state included. */
	void		(*destroy) (KmBackend *be);

	/*
	 * Makes n rows available to the backend, first subtracting shift (d values, or NULL for
	 * none) from every row in place; the CPU backend then uses x without copying it.  w gives
	 * each row a weight (n finite values >= 0, read in place for the block's life like x), or
	 * is NULL for weight 1: a weighted row counts w times in sums, inertia and mass, and its
	 * k-means++ distance is w |x - c|^2 (w min = min w for w >= 0, so the state can keep it
	 * weighted).  A backend that does not weigh rows fails with KM_ERR_UNSUPPORTED.
	 */
	KmStatus	(*block_create) (KmBackend *be, float *x, const float *w, int64_t n,
								 const float *shift, KmBlock **blk, KmError *err);

	/*
	 * block_create for a batch that lives for one callback only (rows streamed from the
	 * source).  The backend reads x (after centring it in place) only before it returns:
	 * the GPU backend gives the batch no device memory of its own but starts its copy through
	 * a staging slot at once, so the caller reads the next batch while the rows travel.
	 */
	KmStatus	(*batch_create) (KmBackend *be, float *x, const float *w, int64_t n,
								 const float *shift, KmBlock **blk, KmError *err);
	void		(*block_destroy) (KmBackend *be, KmBlock *blk);

	/*
	 * The metric of the following calls (KM_METRIC_EUCLIDEAN until set); KM_ERR_UNSUPPORTED
	 * for one the backend does not implement.
	 */
	KmStatus	(*set_metric) (KmBackend *be, KmMetric metric, KmError *err);

	/* Installs the centers for the following passes: seg_off[nseg] centers of dimension d. */
	KmStatus	(*set_centers) (KmBackend *be, const float *c, int d, int nseg, const int *seg_off,
								KmError *err);

	/*
	 * Lloyd passes.  pass_begin opens a pass over rows 0..n-1 whose state has nseg segments;
	 * installed segment r is state segment segs[r].  The state is allocated when n or nseg
	 * change, and then, or with reset (a fit's first pass), every label starts as -1.  With
	 * exact, each distance is summed directly from the row and its center; without, it may
	 * come from the expansion |x|^2 - 2 x.c + |c|^2 (the labels are the same either way).
	 * pass_block takes one block whose row 0 is row first: nearest centers, the rows whose
	 * segment-local label differs from the state's counted per installed segment, the state
	 * updated, the block accumulated in row order.  The caller may destroy the block and reuse
	 * its rows as soon as it returns.  pass_end waits for the pass, adds its sums, counts and
	 * inertia into acc (over every installed center) and sets changed[r] for each installed
	 * segment.  A block's totals do not depend on the device's memory or on how the rows are
	 * split into blocks of whole runs of KM_SUB_ROWS.  Without keep, the caller reads no row's
	 * state after the pass but the last block's, right after its pass_block, and wants no
	 * changes (changed[] is then unspecified), with every segment installed: the backend may
	 * keep no per-row state (the CPU backend keeps none, and no bounds), and the totals are
	 * the same bits.  A pass with keep after one without must reset.
	 */
	KmStatus	(*pass_begin) (KmBackend *be, int64_t n, int nseg, const int *segs, int reset,
							   int exact, int keep, KmError *err);
	KmStatus	(*pass_block) (KmBackend *be, KmBlock *blk, int64_t first, KmError *err);
	KmStatus	(*pass_end) (KmBackend *be, KmAccum *acc, int64_t *changed, KmError *err);

	/*
	 * Copies rows first .. first + m - 1 of the state as the last pass_block left it into
	 * labels and dist (m * nseg each, row-major, segment-local labels).
	 */
	KmStatus	(*state_fetch) (KmBackend *be, int64_t first, int64_t m, int32_t *labels,
								float *dist, KmError *err);

	/*
	 * k-means++ with each row's distance to its nearest chosen center (mindist), rows
	 * addressed by their global index.  seed_begin makes room for n rows, all +Inf, and starts
	 * a new fit (the Lloyd state gives its room back, the first pass resets it anyway).
	 * seed_update lowers mindist with the distances to center c and gives the sum of the new
	 * mindist over each run of KM_SUB_ROWS rows of the block in sub_sums (each in row order);
	 * seed_potentials adds sum_i min(mindist[i], |x_i - cand_j|^2) into pot[j] for t
	 * candidates, per run in row order and the runs in order.  Both take a block whose row 0 is
	 * row first (a multiple of KM_SUB_ROWS).  seed_fetch copies mindist[first .. first + m).
	 */
	KmStatus	(*seed_begin) (KmBackend *be, int64_t n, KmError *err);
	KmStatus	(*seed_update) (KmBackend *be, KmBlock *blk, int64_t first, const float *c,
								double *sub_sums, KmError *err);
	KmStatus	(*seed_potentials) (KmBackend *be, KmBlock *blk, int64_t first, const float *cand,
									int t, double *pot, KmError *err);
	KmStatus	(*seed_fetch) (KmBackend *be, int64_t first, int64_t m, float *out, KmError *err);

	/*
	 * Silhouette value of rows [row_begin, row_end) of s rows (x on the host, s x d) under nlab
	 * labellings at once: labels[i*nlab+m] in 0..ks[m]-1; out[i*nlab+m] as scikit-learn's
	 * silhouette_samples, with the distance of the backend's metric.  Each row costs a pass over all s rows, so callers go in slices.
	 */
	KmStatus	(*silhouette) (KmBackend *be, const float *x, int64_t s, const int32_t *labels,
							   int nlab, const int *ks, int64_t row_begin, int64_t row_end,
							   double *out, KmError *err);

	/*
	 * DTW assignment (km_dtw.h): for every row i of [r0, r1) of s, the nearest center of cs by
	 * DTW^2 within cs->band (lowest index on ties) into labels[i] and that DTW^2 into dist[i]
	 * (i global, as km_dtw_assign indexes them), bit for bit km_dtw_assign's without a cutoff.
	 * Everything is on the host, in and out, and nothing is kept between calls: the GPU
	 * backend copies the rows' samples and offsets and the centers to the device on every
	 * call, and the labels and distances back (km_cuda_series.cuh).  Independent of blocks,
	 * centers and metric set before; rows need no weights (s->w is not read).
	 */
	KmStatus	(*series_assign) (KmBackend *be, const struct KmSeries *s, int64_t r0, int64_t r1,
								  const struct KmDtwCenters *cs, int32_t *labels, double *dist,
								  KmError *err);
} KmBackendOps;

/*
 * A device's steps on one block, with the per-row arrays on the host: what km_state.c composes
 * into passes and seeding where the state lives in host memory, and what the engine tests
 * compare twin against twin.  The engine never calls them.
 */
typedef struct KmStepOps
{
	/* Nearest center per segment: labels (global indices) and squared distances, n * nseg. */
	KmStatus	(*assign) (KmBackend *be, KmBlock *blk, int32_t *labels, float *dist, int exact,
						   KmError *err);

	/* Adds rows into acc by label (n * nseg labels and distances), in row order. */
	KmStatus	(*accumulate) (KmBackend *be, KmBlock *blk, int nseg, const int32_t *labels,
							   const float *dist, KmAccum *acc, KmError *err);

	/* assign, then accumulate into acc (which covers every installed center): the same results. */
	KmStatus	(*assign_accumulate) (KmBackend *be, KmBlock *blk, int32_t *labels, float *dist,
									  int exact, KmAccum *acc, KmError *err);

	/*
	 * mindist[i] = min(mindist[i], w_i |x_i - c|^2) for one center c (mindist starts at +Inf;
	 * w_i is the row's weight, 1 in a block without weights), and
	 * the sum of the new mindist over each run of KM_SUB_ROWS rows in sub_sums
	 * (ceil(n / KM_SUB_ROWS) entries), each summed in row order.
	 */
	KmStatus	(*mindist_update) (KmBackend *be, KmBlock *blk, const float *c, float *mindist,
								   double *sub_sums, KmError *err);

	/*
	 * pot[j] += sum_i min(mindist[i], w_i |x_i - cand_j|^2) for t candidates (the k-means++
	 * trials), summed per run of KM_SUB_ROWS rows in row order and the runs added in order.
	 */
	KmStatus	(*potentials) (KmBackend *be, KmBlock *blk, const float *cand, int t,
							   const float *mindist, double *pot, KmError *err);
} KmStepOps;

/*
 * Whether a backend's passes may skip distance computations that bounds prove unnecessary
 * (km_bounds.h): the CPU backend does for the small-d kernel; labels, distances and totals are
 * the same bits either way.  The FAULT modes plant a defect that the engine tests must catch.
 */
typedef enum KmPrune
{
	KM_PRUNE_OFF = 0,
	KM_PRUNE_ON,
	KM_PRUNE_FAULT_MARGIN,		/* bounds without their rounding margins */
	KM_PRUNE_FAULT_MOVE			/* bounds not loosened by the centers' movement */
} KmPrune;

/*
 * Which kernel the GPU backend's series_assign runs (km_cuda_series.cuh): its choice by the
 * shape of the call, or one of them forced, for the tests; the CPU backend ignores it.
 */
typedef enum KmSeriesKernel
{
	KM_SERIES_AUTO = 0,
	KM_SERIES_PAIR,				/* a thread per (row, center) pair */
	KM_SERIES_WAVE				/* a block per pair, its tiles in anti-diagonal waves */
} KmSeriesKernel;

/* A defect the GPU's series_assign can plant, which the engine tests must catch. */
typedef enum KmSeriesFault
{
	KM_SERIES_FAULT_NONE = 0,
	KM_SERIES_FAULT_BAND,		/* the Sakoe-Chiba band ignored */
	KM_SERIES_FAULT_FMA			/* each cell's square and add fused into one rounding */
} KmSeriesFault;

struct KmBackend
{
	const KmBackendOps *ops;
	const KmStepOps *steps;
	int			d;
	KmMetric	metric;
	/* set by the caller before a pass; read at pass_begin */
	KmPrune		prune;
	/* set by the caller (the tests) before series_assign; zero otherwise */
	KmSeriesKernel series_kernel;
	KmSeriesFault series_fault;
	/*
	 * After pass_end: the rows of each installed segment compared with every center of it
	 * (pass_scanned[r], owned by the backend until its next pass_begin) out of pass_rows; NULL
	 * where the pass kept no bounds.
	 */
	const int64_t *pass_scanned;
	int64_t		pass_rows;
};

/*
 * set_metric as both backends implement it: Euclidean and cosine always (cosine runs on unit
 * rows with the Euclidean kernels, only the silhouette differs), IoU for d = 2 (km_iou.c and
 * CandRunIou on the CPU, IouCost on the GPU); KM_ERR_UNSUPPORTED otherwise.
 */
KmStatus	km_backend_set_metric(KmBackend *be, KmMetric metric, KmError *err);

/* The CPU backend on threads compute threads (>= 1); threads block all signals. */
KmStatus	km_cpu_backend_create(int threads, int d, KmBackend **be, KmError *err);

/* Number of online CPUs, at least 1. */
int			km_cpu_count(void);

/*
 * The GPU backend (km_cuda.cu, built where nvcc is found; km_nocuda.c otherwise, whose
 * functions fail with KM_ERR_NO_DEVICE).  km_cuda_probe checks that a device can be used and
 * describes it in desc; it initialises CUDA in the calling process, so it must never run in
 * the postmaster.  memory_limit caps the device memory in bytes (0: only what is free).
 */
KmStatus	km_cuda_probe(int device, char *desc, size_t desclen, KmError *err);
int			km_cuda_built(void);	/* 1 where the GPU backend was compiled in */
KmStatus	km_cuda_backend_create(int device, int d, size_t memory_limit, KmBackend **be,
								   KmError *err);

/*
 * Rows per resident block the GPU backend is given: large, so that each kernel launch has
 * work enough for the whole device (an iteration waits once however many blocks it has, see
 * pass_begin), and small enough that two blocks of work bound a cancel; a multiple of
 * KM_SUB_ROWS.
 */
#define KM_CUDA_BLOCK_ROWS (1024 * KM_SUB_ROWS)

#ifdef __cplusplus
}
#endif

#endif							/* KM_KERNELS_H */
