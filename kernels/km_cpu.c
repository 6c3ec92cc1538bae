/*
 * km_cpu.c -- the CPU backend: the engine's operations on a pool of compute threads.
 *
 * Threading protocol.  The backend owns threads-1 worker threads, started with every signal
 * blocked so that PostgreSQL's handlers only ever run in the backend's own thread.  The calling
 * thread runs share 0 of every parallel step itself and waits for the workers that joined the
 * step (Pool); workers touch only the buffers handed to them for that step and never call into
 * PostgreSQL.  Nothing here
 * allocates during a step, so a step cannot fail half way; the memory a step needs is reserved
 * before it starts.
 *
 * Scheduling.  Work is cut into pieces (runs of KM_SUB_ROWS rows, or columns) that threads claim
 * from an atomic counter, so a thread that the OS puts aside does not hold up the others.
 *
 * Determinism.  Row-wise results (labels, distances) do not depend on how rows are split.
 * Cluster sums, counts and inertia are added in row order, each cluster by one thread
 * (accumulate: threads split clusters or the counts, never the rows of one cluster); the
 * k-means++ sums are taken per run of KM_SUB_ROWS rows in fixed lanes and the runs added in
 * order.  No result depends on the number of threads.
 */
#include "km_bounds.h"
#include "km_dtw.h"
#include "km_kernels.h"
#include "km_quality.h"
#include "km_simd.h"
#include "km_state.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

typedef void (*StepFn) (void *arg, int share, int nshares);

/*
 * A fixed crew of worker threads that run one step at a time with the caller.  A step is
 * offered to the workers and each joins it when it wakes; the caller works through the
 * step's pieces meanwhile and, done with them, closes the step: a worker that has not joined
 * by then never does (the step's arguments may be gone by the time it wakes), and the caller
 * waits only for those that did.  So a worker that the OS has put aside, or that sleeps
 * while the caller does a few microseconds of work, costs the step nothing.  Every step cuts
 * its work into pieces that any thread may claim, so it does not matter which shares ran.
 *
 * The step's word (step): the step's number in its high 32 bits, then one bit while workers
 * may join, then the count of workers that joined and have not finished.
 */
#define STEP_OPEN ((uint64_t) 1 << 31)
#define STEP_RUNNING (STEP_OPEN - 1)

typedef struct Pool
{
	int			nthreads;		/* including the caller */
	pthread_t  *threads;
	int			started;		/* workers actually running */
	pthread_mutex_t mutex;
	pthread_cond_t wake;
	pthread_cond_t done;
	/* read without the mutex while a thread spins, written with it held */
	atomic_uint_fast64_t generation;
	atomic_uint_fast64_t step;
	atomic_int	quit;
	StepFn		fn;
	void	   *arg;
} Pool;

typedef struct WorkerStart
{
	Pool	   *pool;
	int			share;
} WorkerStart;

struct KmBlock
{
	const float *x;
	const float *w;				/* the rows' weights, or NULL for 1 */
	int64_t		n;
	float	   *norms;			/* |x_i|^2 */
};

typedef struct CpuBackend
{
	KmBackend	base;
	Pool		pool;
	WorkerStart *starts;

	/* installed centers */
	int			nseg;
	int		   *seg_off;
	float	   *c;
	float	   *cnorm;
	void	   *packed;			/* GEMM panel layout, when km_use_gemm */
	int			use_gemm;
	void	   *screen;			/* bfloat16 screen layout, when km_screen_usable */

	/* scratch for candidate scoring: per share, KM_SUB_ROWS * t labels and scores */
	int			scratch_t;
	int32_t    *scratch_labels;
	float	   *scratch_best;
	double	   *scratch_sums;	/* per run of rows: t partial sums */
	int64_t		scratch_runs;

	/* accumulation: entries grouped by label */
	int64_t    *order;
	int32_t    *order_row;
	int64_t		order_cap;
	int64_t    *start;
	int64_t		start_cap;

	/* each row's label and distance between passes, and its k-means++ distance */
	KmHostState state;
	int64_t    *share_changed;	/* a pass's changed labels per share and segment */
	int64_t		share_changed_cap;

	/* the open pass skips what its bounds settle (km_bounds.c) */
	int			pruning;
	KmBounds	bounds;
} CpuBackend;

/* ---------------------------------------------------------------------------------------------
 * The pool
 * ------------------------------------------------------------------------------------------- */

/*
 * Steps follow each other closely in a pass (an assignment, then its accumulation, block after
 * block), and waking a sleeping thread costs a system call on each side, tens of microseconds
 * on a virtual machine: more than a step of a small block.  So a thread that waits first
 * spins for about this many pause instructions (some tens of microseconds), watching the
 * counter it waits on, and sleeps on the condition variable only after that.
 */
#define POOL_SPINS 4096

static inline void
CpuRelax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Joins step number gen if it is still open: true when the worker is to run its share (and
 * then Leave the step).
 */
static bool
JoinStep(Pool *pool, uint64_t gen)
{
	uint64_t	word = atomic_load(&pool->step);

	while ((word >> 32) == (gen & 0xffffffffu) && (word & STEP_OPEN) != 0)
		if (atomic_compare_exchange_weak(&pool->step, &word, word + 1))
			return true;
	return false;
}

/* A worker's share is done: the last one out of a closed step wakes the caller. */
static void
LeaveStep(Pool *pool)
{
	uint64_t	word = atomic_fetch_sub(&pool->step, 1);

	if ((word & STEP_RUNNING) == 1 && (word & STEP_OPEN) == 0)
	{
		pthread_mutex_lock(&pool->mutex);
		pthread_cond_signal(&pool->done);
		pthread_mutex_unlock(&pool->mutex);
	}
}

/* Worker loop: wait for a new generation, join it while open, run its share, report back. */
static void *
WorkerMain(void *p)
{
	WorkerStart *ws = p;
	Pool	   *pool = ws->pool;
	uint64_t	seen = 0;

	for (;;)
	{
		for (int i = 0; i < POOL_SPINS && atomic_load(&pool->generation) == seen &&
			 !atomic_load(&pool->quit); i++)
			CpuRelax();
		pthread_mutex_lock(&pool->mutex);
		while (!atomic_load(&pool->quit) && atomic_load(&pool->generation) == seen)
			pthread_cond_wait(&pool->wake, &pool->mutex);
		if (atomic_load(&pool->quit))
			break;
		seen = atomic_load(&pool->generation);
		pthread_mutex_unlock(&pool->mutex);

		if (!JoinStep(pool, seen))
			continue;			/* closed before this thread woke: nothing left for it */
		pool->fn(pool->arg, ws->share, pool->nthreads);
		LeaveStep(pool);
	}
	pthread_mutex_unlock(&pool->mutex);
	return NULL;
}

/*
 * Runs fn on every share that joins in time, share 0 on the calling thread, and waits for
 * the shares that joined.
 */
static void
PoolRun(Pool *pool, StepFn fn, void *arg)
{
	uint64_t	gen;

	if (pool->nthreads == 1)
	{
		fn(arg, 0, 1);
		return;
	}
	pthread_mutex_lock(&pool->mutex);
	pool->fn = fn;
	pool->arg = arg;
	gen = atomic_load(&pool->generation) + 1;
	atomic_store(&pool->step, ((gen & 0xffffffffu) << 32) | STEP_OPEN);
	atomic_store(&pool->generation, gen);
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->mutex);

	fn(arg, 0, pool->nthreads);

	/* every piece is claimed: close the step, then wait for the workers in it */
	if ((atomic_fetch_and(&pool->step, ~STEP_OPEN) & STEP_RUNNING) == 0)
		return;
	for (int i = 0; i < POOL_SPINS && (atomic_load(&pool->step) & STEP_RUNNING) != 0; i++)
		CpuRelax();
	if ((atomic_load(&pool->step) & STEP_RUNNING) != 0)
	{
		pthread_mutex_lock(&pool->mutex);
		while ((atomic_load(&pool->step) & STEP_RUNNING) != 0)
			pthread_cond_wait(&pool->done, &pool->mutex);
		pthread_mutex_unlock(&pool->mutex);
	}
}

/* Stops and joins the workers that were started. */
static void
PoolStop(Pool *pool)
{
	if (pool->threads == NULL)
		return;
	pthread_mutex_lock(&pool->mutex);
	atomic_store(&pool->quit, 1);
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->mutex);
	for (int i = 0; i < pool->started; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_mutex_destroy(&pool->mutex);
	pthread_cond_destroy(&pool->wake);
	pthread_cond_destroy(&pool->done);
	free(pool->threads);
	pool->threads = NULL;
}

/* Starts nthreads-1 workers with all signals blocked, so signals reach only the caller. */
static KmStatus
PoolStart(Pool *pool, WorkerStart *starts, int nthreads, KmError *err)
{
	sigset_t	all,
				old;
	int			rc = 0;

	memset(pool, 0, sizeof(*pool));
	pool->nthreads = nthreads;
	if (nthreads == 1)
		return KM_OK;
	pool->threads = calloc(nthreads - 1, sizeof(pthread_t));
	if (pool->threads == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %d thread handles", nthreads);
	pthread_mutex_init(&pool->mutex, NULL);
	pthread_cond_init(&pool->wake, NULL);
	pthread_cond_init(&pool->done, NULL);

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < nthreads - 1; i++)
	{
		starts[i].pool = pool;
		starts[i].share = i + 1;
		rc = pthread_create(&pool->threads[i], NULL, WorkerMain, &starts[i]);
		if (rc != 0)
			break;
		pool->started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (rc != 0)
	{
		PoolStop(pool);
		return KM_FAIL(err, KM_ERR_THREAD, "could not start compute thread: %s", strerror(rc));
	}
	return KM_OK;
}

/* Claims the next piece of a step, or returns -1 when all npieces are taken. */
static inline int64_t
ClaimPiece(atomic_int_fast64_t *next, int64_t npieces)
{
	int64_t		piece = atomic_fetch_add_explicit(next, 1, memory_order_relaxed);

	return piece < npieces ? piece : -1;
}

/* Rows [*lo, *hi) of piece p when n rows are cut into runs of KM_SUB_ROWS. */
static inline void
PieceRows(int64_t p, int64_t n, int64_t *lo, int64_t *hi)
{
	*lo = p * KM_SUB_ROWS;
	*hi = *lo + KM_SUB_ROWS < n ? *lo + KM_SUB_ROWS : n;
}

#define PIECES(n) (((n) + KM_SUB_ROWS - 1) / KM_SUB_ROWS)

/* ---------------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------------- */

/*
 * Nearest installed center per segment with its squared distance.  The small-d kernel's
 * distances are direct sums already.  After the GEMM kernel, an exact distance to the chosen
 * center is recomputed directly, so reported distances and inertia do not carry the expansion's
 * cancellation error (|x|^2 and |c|^2 can dwarf their difference); otherwise |x|^2 + score.
 */
static void
Nearest(CpuBackend *cb, const float *x, const float *norms, int64_t n, int exact, int screen,
		int32_t *labels, float *dist)
{
	int			d = cb->base.d;
	int			nseg = cb->nseg;

	if (cb->base.metric == KM_METRIC_IOU)
	{
		km_argmin_iou(x, n, cb->c, nseg, cb->seg_off, labels, dist);
		return;
	}
	if (!cb->use_gemm)
	{
		km_argmin_small(x, n, d, cb->c, cb->cnorm, nseg, cb->seg_off, labels, dist);
		return;
	}
	if (screen)
	{
		/* its distances are direct sums already */
		km_screen_argmin(x, norms, n, d, cb->screen, cb->c, labels, dist);
		return;
	}
	km_gemm_argmin(x, n, d, cb->packed, cb->cnorm, nseg, cb->seg_off, labels, dist);
	for (int64_t i = 0; i < n; i++)
		for (int s = 0; s < nseg; s++)
		{
			float		v;

			if (exact)
				v = km_dist2(x + i * d, cb->c + (int64_t) labels[i * nseg + s] * d, d);
			else
				v = norms[i] + dist[i * nseg + s];
			dist[i * nseg + s] = v > 0.0f ? v : 0.0f;
		}
}

static void
CpuDestroy(KmBackend *be)
{
	CpuBackend *cb = (CpuBackend *) be;

	if (cb == NULL)
		return;
	PoolStop(&cb->pool);
	free(cb->starts);
	free(cb->seg_off);
	free(cb->c);
	free(cb->cnorm);
	free(cb->packed);
	free(cb->screen);
	free(cb->scratch_labels);
	free(cb->scratch_best);
	free(cb->scratch_sums);
	free(cb->order);
	free(cb->order_row);
	free(cb->start);
	free(cb->share_changed);
	km_host_state_free(&cb->state);
	km_bounds_free(&cb->bounds);
	free(cb);
}

typedef struct NormsStep
{
	KmBlock    *blk;
	float	   *x;				/* the block's rows, writable while they are centred */
	const float *shift;
	int			d;
	atomic_int_fast64_t next;
} NormsStep;

static void
NormsShare(void *arg, int share, int nshares)
{
	NormsStep  *st = arg;
	int64_t		p,
				lo,
				hi;

	(void) share;
	(void) nshares;
	while ((p = ClaimPiece(&st->next, PIECES(st->blk->n))) >= 0)
	{
		PieceRows(p, st->blk->n, &lo, &hi);
		if (st->shift)
			for (int64_t i = lo; i < hi; i++)
				for (int t = 0; t < st->d; t++)
					st->x[i * st->d + t] -= st->shift[t];
		km_row_norms(st->blk->x + lo * st->d, hi - lo, st->d, st->blk->norms + lo);
	}
}

/* Centres n host rows in place, wraps them without copying and computes their norms once. */
static KmStatus
CpuBlockCreate(KmBackend *be, float *x, const float *w, int64_t n, const float *shift,
			   KmBlock **out, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	KmBlock    *blk = calloc(1, sizeof(KmBlock));
	NormsStep	st;

	if (blk == NULL || (n > 0 && (blk->norms = malloc(sizeof(float) * n)) == NULL))
	{
		free(blk);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate norms of %lld rows", (long long) n);
	}
	blk->x = x;
	blk->w = w;
	blk->n = n;
	st.blk = blk;
	st.x = x;
	st.shift = shift;
	st.d = be->d;
	atomic_init(&st.next, 0);
	if (n > 0)
		PoolRun(&cb->pool, NormsShare, &st);
	*out = blk;
	return KM_OK;
}

static void
CpuBlockDestroy(KmBackend *be, KmBlock *blk)
{
	(void) be;
	if (blk == NULL)
		return;
	free(blk->norms);
	free(blk);
}

/* Installs a copy of the centers with their norms (and GEMM panels for large d). */
static KmStatus
CpuSetCenters(KmBackend *be, const float *c, int d, int nseg, const int *seg_off, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	int			k = seg_off[nseg];

	if (d != be->d || nseg < 1 || k < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "bad center set: d=%d nseg=%d k=%d", d, nseg, k);
	free(cb->seg_off);
	free(cb->c);
	free(cb->cnorm);
	free(cb->packed);
	free(cb->screen);
	cb->packed = NULL;
	cb->screen = NULL;
	cb->seg_off = malloc(sizeof(int) * (nseg + 1));
	cb->c = malloc(sizeof(float) * (size_t) k * d);
	cb->cnorm = malloc(sizeof(float) * (size_t) k);
	cb->use_gemm = km_use_gemm(d, k);
	if (cb->use_gemm && km_screen_usable(d, k, nseg))
	{
		cb->screen = aligned_alloc(64, (km_screen_packed_size(k, d) + 63) & ~(size_t) 63);
		if (cb->screen != NULL && !km_screen_pack(c, k, d, cb->screen))
		{
			/* centers too large for the screen's bound: the float32 kernel takes them */
			free(cb->screen);
			cb->screen = NULL;
		}
	}
	/* the float32 panels too: an assignment that the screen does not suit takes them */
	if (cb->use_gemm)
		cb->packed = aligned_alloc(64, (km_gemm_packed_size(k, d) + 63) & ~(size_t) 63);
	if (cb->seg_off == NULL || cb->c == NULL || cb->cnorm == NULL ||
		(cb->use_gemm && cb->packed == NULL))
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %d centers of dimension %d", k, d);
	memcpy(cb->seg_off, seg_off, sizeof(int) * (nseg + 1));
	memcpy(cb->c, c, sizeof(float) * (size_t) k * d);
	km_row_norms(c, k, d, cb->cnorm);
	if (cb->packed != NULL)
		km_gemm_pack(c, k, d, cb->packed);
	cb->nseg = nseg;
	return KM_OK;
}

/* The screen serves an assignment whose sample needs at most k / this direct distances a row. */
#define SCREEN_WORK_SHARE 16

typedef struct AssignStep
{
	CpuBackend *cb;
	KmBlock    *blk;
	int32_t    *labels;
	float	   *dist;
	int			exact;
	int			screen;			/* through km_screen_argmin */
	KmHostState *record;		/* a pass's state to record the rows in, or NULL */
	int64_t		first;			/* the block's first row there */
	int64_t    *changed;		/* per share, nseg counts of changed labels */
	atomic_int_fast64_t next;
} AssignStep;

/* One share of an assignment: pieces of rows as they come. */
static void
AssignShare(void *arg, int share, int nshares)
{
	AssignStep *st = arg;
	int			nseg = st->cb->nseg;
	int64_t		p,
				lo,
				hi;

	(void) nshares;
	while ((p = ClaimPiece(&st->next, PIECES(st->blk->n))) >= 0)
	{
		PieceRows(p, st->blk->n, &lo, &hi);
		Nearest(st->cb, st->blk->x + lo * st->cb->base.d, st->blk->norms + lo, hi - lo, st->exact,
				st->screen, st->labels + lo * nseg, st->dist + lo * nseg);
		/* while the piece's labels are in cache: the rows are this share's alone */
		if (st->record)
			km_host_pass_record(st->record, st->first + lo, hi - lo, st->labels + lo * nseg,
								st->dist + lo * nseg, st->changed + (int64_t) share * nseg);
	}
}

/*
 * Nearest center per segment: labels and squared distances; with record, the pass's state of
 * the block's rows (from row first) replaced too and the changes counted, per share into
 * changed (nthreads x nseg).
 */
static KmStatus
Assign(CpuBackend *cb, KmBlock *blk, int32_t *labels, float *dist, int exact,
	   KmHostState *record, int64_t first, int64_t *changed, KmError *err)
{
	AssignStep	st = {.cb = cb, .blk = blk, .labels = labels, .dist = dist, .exact = exact,
	.record = record, .first = first, .changed = changed};

	atomic_init(&st.next, 0);
	if (cb->c == NULL)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "assign before set_centers");
	if (cb->screen && blk->n > 0)
	{
		/*
		 * The screen pays where few centers survive it.  Its first piece of rows tells: when
		 * they needed more than k / SCREEN_WORK_SHARE direct distances each on average, the
		 * float32 kernel takes this call.  The sample is the block's own first rows, so the
		 * choice, like the labels, depends on the data alone; kept when screened.
		 */
		int64_t		lo,
					hi;
		int64_t		work;

		int64_t		limit;

		PieceRows(0, blk->n, &lo, &hi);
		limit = hi * (cb->seg_off[1] / SCREEN_WORK_SHARE);
		/* stopped once over the limit: a sample where every center survives costs k per row */
		work = km_screen_argmin_capped(blk->x, blk->norms, hi, cb->base.d, cb->screen, cb->c,
									   labels, dist, limit);
		st.screen = work <= limit;
		if (st.screen)
		{
			atomic_init(&st.next, 1);
			if (record)
				km_host_pass_record(record, first, hi, labels, dist, changed);
		}
	}
	if (blk->n > 0)
		PoolRun(&cb->pool, AssignShare, &st);
	return KM_OK;
}

static KmStatus
CpuAssign(KmBackend *be, KmBlock *blk, int32_t *labels, float *dist, int exact, KmError *err)
{
	return Assign((CpuBackend *) be, blk, labels, dist, exact, NULL, 0, NULL, err);
}

typedef struct AccumStep
{
	KmBlock    *blk;
	int			d;
	int			nseg;
	const int32_t *labels;
	const float *dist;
	KmAccum    *acc;
	const int64_t *order;		/* (row * nseg + seg) entries grouped by label, rows ascending */
	const int32_t *order_row;	/* the row of each of those entries */
	const int64_t *start;		/* k + 1: where each label's entries begin in order */
	/* narrow rows: pieces of segments (AccumNarrow) */
	int			npieces;
	int			split;			/* pieces are (segment, sums or the rest) */
	atomic_int_fast64_t next;
} AccumStep;

/* Columns summed together in registers: a cache line of floats. */
#define ACCUM_COLUMNS 16

typedef float Floats8 __attribute__((vector_size(32)));
typedef double Doubles8 __attribute__((vector_size(64)));

/* Adds one cluster's rows, sixteen columns from lo, to its sums: two vectors of doubles. */
static inline void
SumColumns16(const float *x, int d, int lo, const int32_t *rows, int64_t m, double *sp)
{
#if defined(__AVX512F__)
	/* spelled out: the generic form below is split into halves when 256-bit vectors are preferred */
	__m512d		s0 = _mm512_loadu_pd(sp),
				s1 = _mm512_loadu_pd(sp + 8);

	for (int64_t e = 0; e < m; e++)
	{
		const float *r = x + (int64_t) rows[e] * d + lo;

		s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm256_loadu_ps(r)));
		s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_loadu_ps(r + 8)));
	}
	_mm512_storeu_pd(sp, s0);
	_mm512_storeu_pd(sp + 8, s1);
#else
	Doubles8	s0,
				s1;

	memcpy(&s0, sp, sizeof(s0));
	memcpy(&s1, sp + 8, sizeof(s1));
	for (int64_t e = 0; e < m; e++)
	{
		const float *r = x + (int64_t) rows[e] * d + lo;
		Floats8		a,
					b;

		memcpy(&a, r, sizeof(a));
		memcpy(&b, r + 8, sizeof(b));
		s0 += __builtin_convertvector(a, Doubles8);
		s1 += __builtin_convertvector(b, Doubles8);
	}
	memcpy(sp, &s0, sizeof(s0));
	memcpy(sp + 8, &s1, sizeof(s1));
#endif
}

/*
 * SumColumns16 for weighted rows: w x in float64 (the product of two floats is exact there),
 * added in the same order.
 */
static inline void
SumColumns16W(const float *x, const float *w, int d, int lo, const int32_t *rows, int64_t m,
			  double *sp)
{
#if defined(__AVX512F__)
	__m512d		s0 = _mm512_loadu_pd(sp),
				s1 = _mm512_loadu_pd(sp + 8);

	for (int64_t e = 0; e < m; e++)
	{
		const float *r = x + (int64_t) rows[e] * d + lo;
		__m512d		we = _mm512_set1_pd((double) w[rows[e]]);

		s0 = _mm512_add_pd(s0, _mm512_mul_pd(we, _mm512_cvtps_pd(_mm256_loadu_ps(r))));
		s1 = _mm512_add_pd(s1, _mm512_mul_pd(we, _mm512_cvtps_pd(_mm256_loadu_ps(r + 8))));
	}
	_mm512_storeu_pd(sp, s0);
	_mm512_storeu_pd(sp + 8, s1);
#else
	Doubles8	s0,
				s1;

	memcpy(&s0, sp, sizeof(s0));
	memcpy(&s1, sp + 8, sizeof(s1));
	for (int64_t e = 0; e < m; e++)
	{
		const float *r = x + (int64_t) rows[e] * d + lo;
		double		we = w[rows[e]];
		Floats8		a,
					b;

		memcpy(&a, r, sizeof(a));
		memcpy(&b, r + 8, sizeof(b));
		s0 += we * __builtin_convertvector(a, Doubles8);
		s1 += we * __builtin_convertvector(b, Doubles8);
	}
	memcpy(sp, &s0, sizeof(s0));
	memcpy(sp + 8, &s1, sizeof(s1));
#endif
}

#if defined(__AVX512F__)
/*
 * sp[0 .. D) += r (D float64 in r0, then r1): unmasked loads and stores for the common D,
 * masked ones (m0, m1) for the others (D = 0), which cost half as much again.
 */
static inline __attribute__((always_inline)) void
AddRow(double *sp, const int D, __m512d r0, __m512d r1, __mmask8 m0, __mmask8 m1)
{
	switch (D)
	{
		case 2:
			_mm_storeu_pd(sp, _mm_add_pd(_mm_loadu_pd(sp), _mm512_castpd512_pd128(r0)));
			break;
		case 4:
			_mm256_storeu_pd(sp, _mm256_add_pd(_mm256_loadu_pd(sp), _mm512_castpd512_pd256(r0)));
			break;
		case 8:
		case 10:
		case 16:
			_mm512_storeu_pd(sp, _mm512_add_pd(_mm512_loadu_pd(sp), r0));
			if (D == 10)
				_mm_storeu_pd(sp + 8, _mm_add_pd(_mm_loadu_pd(sp + 8), _mm512_castpd512_pd128(r1)));
			else if (D == 16)
				_mm512_storeu_pd(sp + 8, _mm512_add_pd(_mm512_loadu_pd(sp + 8), r1));
			break;
		default:
			_mm512_mask_storeu_pd(sp, m0, _mm512_add_pd(_mm512_maskz_loadu_pd(m0, sp), r0));
			if (m1)
				_mm512_mask_storeu_pd(sp + 8, m1,
									  _mm512_add_pd(_mm512_maskz_loadu_pd(m1, sp + 8), r1));
	}
}
#endif

/*
 * Narrow rows (d <= ACCUM_COLUMNS) into the sums of segments [s0, s1) of nseg, rows in order:
 * row i adds w_i x_i (x_i without weights) to the sums of its cluster in each segment, each
 * coordinate one float64 addition (w_i x_i is exact in float64).  Compiled for whether rows
 * carry weights and for the common d (D; 0 for any other), so that the loop holds no tests.
 */
static inline __attribute__((always_inline)) void
SumRows(const AccumStep *st, int s0, int s1, const int weighted, const int D)
{
	const int	d = D ? D : st->d;
	const int	nseg = st->nseg;
	const int64_t n = st->blk->n;
	const float *restrict x = st->blk->x;
	const float *restrict w = st->blk->w;
	const int32_t *restrict labels = st->labels;
	double	   *restrict sums = st->acc->sums;
#if defined(__AVX512F__)
	/* the row as two vectors of float64, zero past d */
	const __mmask8 m0 = (__mmask8) ((1u << (d < 8 ? d : 8)) - 1);
	const __mmask8 m1 = (__mmask8) ((1u << (d > 8 ? d - 8 : 0)) - 1);

	for (int64_t i = 0; i < n; i++)
	{
		const float *r = x + i * d;
		__m512d		r0 = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m0, r));
		__m512d		r1 = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m1, r + 8));

		if (weighted)
		{
			r0 = _mm512_mul_pd(r0, _mm512_set1_pd((double) w[i]));
			r1 = _mm512_mul_pd(r1, _mm512_set1_pd((double) w[i]));
		}
		for (int s = s0; s < s1; s++)
			AddRow(sums + (int64_t) labels[i * nseg + s] * d, D, r0, r1, m0, m1);
	}
#else
	for (int64_t i = 0; i < n; i++)
	{
		double		rd[ACCUM_COLUMNS];

		for (int t = 0; t < d; t++)
			rd[t] = weighted ? (double) w[i] * x[i * d + t] : (double) x[i * d + t];
		for (int s = s0; s < s1; s++)
		{
			double	   *sp = sums + (int64_t) labels[i * nseg + s] * d;

			for (int t = 0; t < d; t++)
				sp[t] += rd[t];
		}
	}
#endif
}

/* Counts, inertia (and mass) of segments [s0, s1), rows in order. */
static void
CountRows(const AccumStep *st, int s0, int s1)
{
	const int	nseg = st->nseg;
	const int64_t n = st->blk->n;
	const float *restrict w = st->blk->w;
	const int32_t *restrict labels = st->labels;
	const float *restrict dist = st->dist;
	int64_t    *restrict counts = st->acc->counts;
	double	   *restrict inertia = st->acc->inertia;
	double	   *restrict mass = st->acc->mass;

	for (int64_t i = 0; i < n; i++)
		for (int s = s0; s < s1; s++)
		{
			int64_t		e = i * nseg + s;
			int32_t		j = labels[e];

			counts[j]++;
			if (w != NULL)
			{
				inertia[j] += (double) w[i] * dist[e];
				mass[j] += w[i];
			}
			else
				inertia[j] += dist[e];
		}
}

/* The sums of segments [s0, s1), by the kind of rows. */
static void
SumSegments(const AccumStep *st, int s0, int s1)
{
	if (st->blk->w != NULL)
		SumRows(st, s0, s1, 1, 0);
	else
		switch (st->d)
		{
			case 2:
				SumRows(st, s0, s1, 0, 2);
				break;
			case 4:
				SumRows(st, s0, s1, 0, 4);
				break;
			case 8:
				SumRows(st, s0, s1, 0, 8);
				break;
			case 10:
				SumRows(st, s0, s1, 0, 10);
				break;
			case 16:
				SumRows(st, s0, s1, 0, 16);
				break;
			default:
				SumRows(st, s0, s1, 0, 0);
		}
}

/*
 * Narrow rows: one column piece holds the whole row, so each (row, segment) adds its row
 * straight into its cluster's sums, rows in order; grouping first would cost more than it
 * saves.  A piece is a range of segments, whose clusters no other piece touches: with many
 * segments (an elbow) each piece takes its segments' sums and counts, so the threads share
 * the segments; with few, a segment's sums and its counts are two pieces.  Either way every
 * cluster is added row by row in order, by one thread.
 */
static void
AccumNarrow(AccumStep *st)
{
	int64_t		p;

	while ((p = ClaimPiece(&st->next, st->npieces)) >= 0)
	{
		int			s0 = st->split ? (int) (p / 2) : (int) (st->nseg * p / st->npieces);
		int			s1 = st->split ? s0 + 1 : (int) (st->nseg * (p + 1) / st->npieces);

		if (!st->split || p % 2 == 0)
			SumSegments(st, s0, s1);
		if (!st->split || p % 2 == 1)
			CountRows(st, s0, s1);
	}
}

/* Adds one cluster's grouped rows (all d columns), its count and its inertia. */
static void
AccumCluster(AccumStep *st, int j)
{
	int			d = st->d;
	const float *x = st->blk->x;
	const int32_t *rows = st->order_row + st->start[j];
	int64_t		m = st->start[j + 1] - st->start[j];
	const float *w = st->blk->w;
	double	   *sp = st->acc->sums + (int64_t) j * d;
	double		inertia = st->acc->inertia[j];
	int			g = 0;

	if (m == 0)
		return;
	/* sixteen-column groups in registers; the cluster's rows stay in cache between groups */
	for (; g + ACCUM_COLUMNS <= d; g += ACCUM_COLUMNS)
		if (w == NULL)
			SumColumns16(x, d, g, rows, m, sp + g);
		else
			SumColumns16W(x, w, d, g, rows, m, sp + g);
	if (g < d)
	{
		double		sum[ACCUM_COLUMNS];
		int			rest = d - g;

		for (int t = 0; t < rest; t++)
			sum[t] = sp[g + t];
		for (int64_t e = 0; e < m; e++)
		{
			const float *r = x + (int64_t) rows[e] * d + g;
			double		we = w == NULL ? 1.0 : w[rows[e]];

			if (w == NULL)
				for (int t = 0; t < rest; t++)
					sum[t] += r[t];
			else
				for (int t = 0; t < rest; t++)
					sum[t] += we * r[t];
		}
		for (int t = 0; t < rest; t++)
			sp[g + t] = sum[t];
	}
	if (w == NULL)
		for (int64_t e = st->start[j]; e < st->start[j + 1]; e++)
			inertia += st->dist[st->order[e]];
	else
	{
		double		mass = st->acc->mass[j];

		for (int64_t e = st->start[j]; e < st->start[j + 1]; e++)
		{
			inertia += (double) w[rows[e - st->start[j]]] * st->dist[st->order[e]];
			mass += w[rows[e - st->start[j]]];
		}
		st->acc->mass[j] = mass;
	}
	st->acc->inertia[j] = inertia;
	st->acc->counts[j] += m;
}

/*
 * One share of the accumulation for wide rows: pieces are ranges of clusters holding about the
 * same number of entries, each cluster summed whole by one piece, its rows in order (grouped by
 * a stable counting sort): the same additions in the same order as adding row by row, without a
 * read-modify-write of the sums per row.  The piece boundaries follow only the labels.
 */
static void
AccumShare(void *arg, int share, int nshares)
{
	AccumStep  *st = arg;
	int			k = st->acc->k;
	int64_t		total,
				npieces,
				p;

	(void) share;
	if (st->order == NULL)
	{
		AccumNarrow(st);
		return;
	}
	total = st->start[k];
	npieces = 8 * (int64_t) nshares < k ? 8 * (int64_t) nshares : k;
	while ((p = ClaimPiece(&st->next, npieces)) >= 0)
	{
		int64_t		from = total * p / npieces,
					to = total * (p + 1) / npieces;
		int			lo = 0,
					hi = k;

		/* the clusters whose first entry lies in [from, to) */
		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (st->start[mid] < from)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (int j = lo; j < k && st->start[j] < to; j++)
			AccumCluster(st, j);
	}
}

/* Groups the (row, segment) entries of a block by label, rows ascending within a label. */
static KmStatus
GroupByLabel(CpuBackend *cb, int64_t n, int nseg, const int32_t *labels, int k, KmError *err)
{
	int64_t		entries = n * nseg;

	if (entries > cb->order_cap)
	{
		free(cb->order);
		free(cb->order_row);
		cb->order = malloc(sizeof(int64_t) * (size_t) entries);
		cb->order_row = malloc(sizeof(int32_t) * (size_t) entries);
		cb->order_cap = cb->order && cb->order_row ? entries : 0;
	}
	if (k + 1 > cb->start_cap)
	{
		free(cb->start);
		cb->start = malloc(sizeof(int64_t) * (size_t) (k + 1));
		cb->start_cap = cb->start ? k + 1 : 0;
	}
	if (cb->order_cap < entries || cb->start == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the grouping of %lld labels",
					   (long long) entries);
	memset(cb->start, 0, sizeof(int64_t) * (size_t) (k + 1));
	for (int64_t e = 0; e < entries; e++)
		cb->start[labels[e] + 1]++;
	for (int j = 0; j < k; j++)
		cb->start[j + 1] += cb->start[j];
	for (int64_t e = 0; e < entries; e++)
	{
		int64_t		pos = cb->start[labels[e]]++;

		cb->order[pos] = e;
		cb->order_row[pos] = (int32_t) (e / nseg);
	}
	/* the placement advanced each start to the next label's: shift back */
	for (int j = k; j > 0; j--)
		cb->start[j] = cb->start[j - 1];
	cb->start[0] = 0;
	return KM_OK;
}

/*
 * Segment pieces per thread for narrow rows: enough that a thread the OS puts aside leaves
 * its share to the others, few enough that each piece converts its rows to float64 rarely.
 */
#define ACCUM_PIECES_PER_THREAD 4

/* Adds rows into the accumulators by label, in row order. */
static KmStatus
CpuAccumulate(KmBackend *be, KmBlock *blk, int nseg, const int32_t *labels, const float *dist,
			  KmAccum *acc, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	AccumStep	st = {.blk = blk, .d = be->d, .nseg = nseg, .labels = labels, .dist = dist,
	.acc = acc};
	int			nshares = cb->pool.nthreads;
	KmStatus	status;

	atomic_init(&st.next, 0);
	if (acc->d != be->d)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator dimension %d, data %d", acc->d, be->d);
	if (blk->w != NULL && acc->mass == NULL)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "weighted rows for an accumulator without mass");
	if (blk->n == 0)
		return KM_OK;
	if (be->d > ACCUM_COLUMNS)
	{
		if ((status = GroupByLabel(cb, blk->n, nseg, labels, acc->k, err)) != KM_OK)
			return status;
		st.order = cb->order;
		st.order_row = cb->order_row;
		st.start = cb->start;
	}
	else if (nseg >= 2 * nshares)
		st.npieces = nseg < ACCUM_PIECES_PER_THREAD * nshares ? nseg :
			ACCUM_PIECES_PER_THREAD * nshares;
	else
	{
		st.split = 1;
		st.npieces = 2 * nseg;
	}
	PoolRun(&cb->pool, AccumShare, &st);
	return KM_OK;
}

/* Candidate scoring shared by mindist_update and potentials. */
typedef struct CandStep
{
	CpuBackend *cb;
	KmBlock    *blk;
	const float *cand;
	const float *cnorm;
	const void *packed;
	int			t;
	const int  *seg_off;		/* 0, 1, .., t: one candidate per segment */
	const float *mindist;
	float	   *mindist_out;	/* mindist_update: where the new minimum goes */
	double	   *run_sums;		/* per run: t sums */
	atomic_int_fast64_t next;
} CandStep;

/* Most candidates the fused small-d path takes at once (k-means++ draws 2 + ln k). */
#define CAND_MAX 16

/*
 * Candidates against a run of m rows for d <= KM_SMALL_D_MAX, fused: for each candidate j,
 * v_i = min(mindist_i, |x_i - cand_j|^2) summed over the run (and, for mindist_update, written
 * back).  Rows go sixteen at a time into vector lanes; each lane sums in float64 and the lanes
 * are added by a fixed tree, so a run's sum depends on nothing but the run.  The distance is
 * the same arithmetic as km_argmin_small's.
 */
static void
CandRunSmall(const float *x, const float *w, int64_t m, int d, const float *cand, int t,
			 const float *mindist, float *mindist_out, double *sums)
{
#if defined(__AVX512F__)
	__m512d		acc[CAND_MAX][2];

	__mmask16	cols = (__mmask16) ((1u << d) - 1);

	for (int j = 0; j < t; j++)
		acc[j][0] = acc[j][1] = _mm512_setzero_pd();
	for (int64_t i0 = 0; i0 < m; i0 += 16)
	{
		int			rows = m - i0 < 16 ? (int) (m - i0) : 16;
		__mmask16	live = (__mmask16) ((1u << rows) - 1);
		__m512		xt[16];
		__m512		md = _mm512_maskz_loadu_ps(live, mindist + i0);	/* padding adds nothing */
		__m512		wt = w ? _mm512_maskz_loadu_ps(live, w + i0) : _mm512_setzero_ps();

		/*
		 * The rows into lanes: each row a masked load, then a register transpose.  Copying
		 * them through memory a value at a time stalled each vector load on the stores before
		 * it, and took most of a k-means++ step with few candidates.
		 */
		for (int l = 0; l < 16; l++)
			xt[l] = l < rows ? _mm512_maskz_loadu_ps(cols, x + (i0 + l) * d) : _mm512_setzero_ps();
		km_transpose16(xt);
		for (int j = 0; j < t; j++)
		{
			const float *c = cand + (int64_t) j * d;
			__m512		diff = _mm512_sub_ps(xt[0], _mm512_set1_ps(c[0]));
			__m512		v = _mm512_mul_ps(diff, diff);

			for (int tt = 1; tt < d; tt++)
			{
				diff = _mm512_sub_ps(xt[tt], _mm512_set1_ps(c[tt]));
				v = _mm512_fmadd_ps(diff, diff, v);
			}
			if (w)
				v = _mm512_mul_ps(v, wt);
			v = _mm512_min_ps(v, md);
			acc[j][0] = _mm512_add_pd(acc[j][0], _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
			acc[j][1] = _mm512_add_pd(acc[j][1],
									  _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
			if (mindist_out)
				_mm512_mask_storeu_ps(mindist_out + i0, live, v);
		}
	}
	for (int j = 0; j < t; j++)
	{
		double		lane[8];

		_mm512_storeu_pd(lane, _mm512_add_pd(acc[j][0], acc[j][1]));
		for (int w = 4; w > 0; w /= 2)
			for (int l = 0; l < w; l++)
				lane[l] += lane[l + w];
		sums[j] = lane[0];
	}
#else
	double		acc[CAND_MAX][16];

	memset(acc, 0, sizeof(acc));
	for (int64_t i0 = 0; i0 < m; i0 += 16)
	{
		int			rows = m - i0 < 16 ? (int) (m - i0) : 16;
		float		xt[KM_SMALL_D_MAX][16];
		float		md[16];

		for (int tt = 0; tt < d; tt++)
			for (int l = 0; l < 16; l++)
				xt[tt][l] = l < rows ? x[(i0 + l) * d + tt] : 0.0f;
		for (int l = 0; l < 16; l++)
			md[l] = l < rows ? mindist[i0 + l] : 0.0f;	/* padding adds nothing */
		for (int j = 0; j < t; j++)
		{
			const float *c = cand + (int64_t) j * d;
			float		v[16];

			for (int l = 0; l < 16; l++)
			{
				float		diff = xt[0][l] - c[0];

				v[l] = diff * diff;
			}
			for (int tt = 1; tt < d; tt++)
				for (int l = 0; l < 16; l++)
				{
					float		diff = xt[tt][l] - c[tt];

					v[l] = KM_FMAF(diff, diff, v[l]);
				}
			if (w)
				for (int l = 0; l < 16; l++)
					v[l] *= l < rows ? w[i0 + l] : 0.0f;
			for (int l = 0; l < 16; l++)
			{
				v[l] = v[l] < md[l] ? v[l] : md[l];
				acc[j][l] += v[l];
			}
			if (mindist_out)
				for (int l = 0; l < rows; l++)
					mindist_out[i0 + l] = v[l];
		}
	}
	for (int j = 0; j < t; j++)
	{
		for (int w = 8; w > 0; w /= 2)
			for (int l = 0; l < w; l++)
				acc[j][l] += acc[j][l + w];
		sums[j] = acc[j][0];
	}
#endif
}

/*
 * CandRunSmall under IoU: each row's k-means++ distance is the square of its cost,
 * (1 - IoU)^2, times its weight; summed in row order over the run.
 */
static void
CandRunIou(const float *x, const float *w, int64_t m, const float *cand, int t,
		   const float *mindist, float *mindist_out, double *sums)
{
	for (int j = 0; j < t; j++)
	{
		double		sum = 0.0;

		for (int64_t i = 0; i < m; i++)
		{
			float		cost = km_iou_cost(x + i * 2, cand + (int64_t) j * 2);
			float		v = cost * cost;

			if (w)
				v *= w[i];
			v = v < mindist[i] ? v : mindist[i];
			if (mindist_out)
				mindist_out[i] = v;
			sum += v;
		}
		sums[j] = sum;
	}
}

static void
CandShare(void *arg, int share, int nshares)
{
	CandStep   *st = arg;
	int			d = st->cb->base.d;
	int			t = st->t;
	int64_t		runs = (st->blk->n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	int32_t    *labels = st->cb->scratch_labels + (int64_t) share * KM_SUB_ROWS * t;
	float	   *best = st->cb->scratch_best + (int64_t) share * KM_SUB_ROWS * t;
	int64_t		r;

	(void) nshares;
	while ((r = ClaimPiece(&st->next, runs)) >= 0)
	{
		int64_t		i0 = r * KM_SUB_ROWS;
		int64_t		m = st->blk->n - i0 < KM_SUB_ROWS ? st->blk->n - i0 : KM_SUB_ROWS;
		const float *x = st->blk->x + i0 * d;

		if (st->cb->base.metric == KM_METRIC_IOU)
		{
			CandRunIou(x, st->blk->w ? st->blk->w + i0 : NULL, m, st->cand, t, st->mindist + i0,
					   st->mindist_out ? st->mindist_out + i0 : NULL, st->run_sums + r * t);
			continue;
		}
		if (!st->packed && d <= KM_SMALL_D_MAX && t <= CAND_MAX)
		{
			CandRunSmall(x, st->blk->w ? st->blk->w + i0 : NULL, m, d, st->cand, t, st->mindist + i0,
						 st->mindist_out ? st->mindist_out + i0 : NULL, st->run_sums + r * t);
			continue;
		}
		if (st->packed)
			km_gemm_argmin(x, m, d, st->packed, st->cnorm, t, st->seg_off, labels, best);
		else
			km_argmin_small(x, m, d, st->cand, st->cnorm, t, st->seg_off, labels, best);
		for (int j = 0; j < t; j++)
		{
			double		sum = 0.0;

			for (int64_t i = 0; i < m; i++)
			{
				/* the GEMM kernel gives scores, the small one distances */
				float		v = st->packed ? st->blk->norms[i0 + i] + best[i * t + j] : best[i * t + j];
				float		old = st->mindist[i0 + i];

				v = v > 0.0f ? v : 0.0f;
				if (st->blk->w)
					v *= st->blk->w[i0 + i];
				v = v < old ? v : old;
				if (st->mindist_out)
					st->mindist_out[i0 + i] = v;
				sum += v;
			}
			st->run_sums[r * t + j] = sum;
		}
	}
}

/* Makes sure the candidate scratch holds t candidates and runs for n rows. */
static KmStatus
CandScratch(CpuBackend *cb, int t, int64_t n, int d, KmError *err)
{
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	size_t		per = (size_t) KM_SUB_ROWS * t * cb->pool.nthreads;

	if (t > cb->scratch_t)
	{
		free(cb->scratch_labels);
		free(cb->scratch_best);
		cb->scratch_labels = malloc(sizeof(int32_t) * per);
		cb->scratch_best = malloc(sizeof(float) * per);
		cb->scratch_t = t;
		free(cb->scratch_sums);
		cb->scratch_sums = NULL;
		cb->scratch_runs = 0;
	}
	if (runs > cb->scratch_runs || cb->scratch_sums == NULL)
	{
		free(cb->scratch_sums);
		cb->scratch_sums = malloc(sizeof(double) * (size_t) (runs > 0 ? runs : 1) * cb->scratch_t);
		cb->scratch_runs = runs;
	}
	if (cb->scratch_labels == NULL || cb->scratch_best == NULL || cb->scratch_sums == NULL)
	{
		cb->scratch_t = 0;
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate scratch for %d candidates of %d values",
					   t, d);
	}
	return KM_OK;
}

/* Scores every row against t candidates and sums min(mindist, distance) per run of rows. */
static KmStatus
CandRun(CpuBackend *cb, KmBlock *blk, const float *cand, int t, const float *mindist,
		float *mindist_out, KmError *err)
{
	int			d = cb->base.d;
	int		   *seg_off = malloc(sizeof(int) * (t + 1));
	float	   *cnorm = malloc(sizeof(float) * t);
	void	   *packed = NULL;
	KmStatus	st = KM_OK;
	CandStep	step;

	if (seg_off == NULL || cnorm == NULL)
	{
		st = KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %d candidates", t);
		goto out;
	}
	for (int j = 0; j <= t; j++)
		seg_off[j] = j;
	km_row_norms(cand, t, d, cnorm);
	if (km_use_gemm(d, t))
	{
		packed = aligned_alloc(64, (km_gemm_packed_size(t, d) + 63) & ~(size_t) 63);
		if (packed == NULL)
		{
			st = KM_FAIL(err, KM_ERR_NOMEM, "could not pack %d candidates", t);
			goto out;
		}
		km_gemm_pack(cand, t, d, packed);
	}
	if ((st = CandScratch(cb, t, blk->n, d, err)) != KM_OK)
		goto out;

	step.cb = cb;
	step.blk = blk;
	step.cand = cand;
	step.cnorm = cnorm;
	step.packed = packed;
	step.t = t;
	step.seg_off = seg_off;
	step.mindist = mindist;
	step.mindist_out = mindist_out;
	step.run_sums = cb->scratch_sums;
	atomic_init(&step.next, 0);
	if (blk->n > 0)
		PoolRun(&cb->pool, CandShare, &step);
out:
	free(seg_off);
	free(cnorm);
	free(packed);
	return st;
}

static KmStatus
CpuMindistUpdate(KmBackend *be, KmBlock *blk, const float *c, float *mindist, double *sub_sums,
				 KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	int64_t		runs = (blk->n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	KmStatus	st = CandRun(cb, blk, c, 1, mindist, mindist, err);

	if (st != KM_OK)
		return st;
	for (int64_t r = 0; r < runs; r++)
		sub_sums[r] = cb->scratch_sums[r];
	return KM_OK;
}

static KmStatus
CpuPotentials(KmBackend *be, KmBlock *blk, const float *cand, int t, const float *mindist,
			  double *pot, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	int64_t		runs = (blk->n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	KmStatus	st = CandRun(cb, blk, cand, t, mindist, NULL, err);

	if (st != KM_OK)
		return st;
	for (int64_t r = 0; r < runs; r++)
		for (int j = 0; j < t; j++)
			pot[j] += cb->scratch_sums[r * t + j];
	return KM_OK;
}

typedef struct SilhouetteStep
{
	const KmSilhouette *sample;
	int64_t		row_begin;
	int64_t		row_end;
	double	   *out;
	KmStatus   *status;			/* per share */
	KmError    *errs;
	atomic_int_fast64_t next;
} SilhouetteStep;

/* Rows per silhouette piece: each row costs a pass over all s sample rows. */
#define SILHOUETTE_PIECE 128

static void
SilhouetteShare(void *arg, int share, int nshares)
{
	SilhouetteStep *st = arg;
	int64_t		rows = st->row_end - st->row_begin;
	int64_t		pieces = (rows + SILHOUETTE_PIECE - 1) / SILHOUETTE_PIECE;
	int64_t		p;

	(void) nshares;
	st->status[share] = KM_OK;
	while (st->status[share] == KM_OK && (p = ClaimPiece(&st->next, pieces)) >= 0)
	{
		int64_t		lo = st->row_begin + p * SILHOUETTE_PIECE;
		int64_t		hi = lo + SILHOUETTE_PIECE < st->row_end ? lo + SILHOUETTE_PIECE : st->row_end;

		st->status[share] = km_silhouette_prepared_rows(st->sample, lo, hi, st->out,
														&st->errs[share]);
	}
}

/*
 * Silhouette values of a slice of the s rows, split between the threads; the sample is sorted
 * by label once for the slice, not once per piece.
 */
static KmStatus
CpuSilhouette(KmBackend *be, const float *x, int64_t s, const int32_t *labels, int nlab,
			  const int *ks, int64_t row_begin, int64_t row_end, double *out, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	int			nt = cb->pool.nthreads;
	SilhouetteStep st = {.row_begin = row_begin, .row_end = row_end, .out = out};
	KmSilhouette *sample = NULL;
	KmStatus	failed = KM_OK;

	if (row_end <= row_begin)
		return KM_OK;
	if (row_begin < 0 || row_end > s || nlab < 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT,
					   "silhouette: bad sizes (s=%lld d=%d nlab=%d rows %lld..%lld)",
					   (long long) s, be->d, nlab, (long long) row_begin, (long long) row_end);
	if (nlab == 0)
		return KM_OK;
	atomic_init(&st.next, 0);
	st.status = calloc(nt, sizeof(KmStatus));
	st.errs = calloc(nt, sizeof(KmError));
	if (st.status == NULL || st.errs == NULL)
		failed = KM_FAIL(err, KM_ERR_NOMEM, "could not allocate silhouette state");
	else
		failed = km_silhouette_prepare(x, s, be->d, be->metric, labels, nlab, ks, &sample, err);
	if (failed == KM_OK)
	{
		st.sample = sample;
		PoolRun(&cb->pool, SilhouetteShare, &st);
		for (int i = 0; i < nt && failed == KM_OK; i++)
			if (st.status[i] != KM_OK)
			{
				failed = st.status[i];
				*err = st.errs[i];
			}
	}
	km_silhouette_free(sample);
	free(st.status);
	free(st.errs);
	return failed;
}

/* Assign, then accumulate: on the CPU the two steps hand the labels over in memory. */
static KmStatus
CpuAssignAccumulate(KmBackend *be, KmBlock *blk, int32_t *labels, float *dist, int exact,
					KmAccum *acc, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	KmStatus	st;

	if (cb->c != NULL && acc->k != cb->seg_off[cb->nseg])
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator for %d centers, %d installed", acc->k,
					   cb->seg_off[cb->nseg]);
	if ((st = CpuAssign(be, blk, labels, dist, exact, err)) != KM_OK)
		return st;
	return CpuAccumulate(be, blk, cb->nseg, labels, dist, acc, err);
}

/*
 * The passes and the seeding keep each row's state in host memory (km_state.c); a pass of the
 * small-d kernel also keeps and tests each row's bounds (km_bounds.c) unless told not to.
 */
static KmStatus
CpuPassBegin(KmBackend *be, int64_t n, int nseg, const int *segs, int reset, int exact,
			 int keep, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	KmStatus	st;

	if (cb->c == NULL)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin before set_centers");
	if ((st = km_host_pass_begin(&cb->state, n, nseg, segs, cb->nseg, cb->seg_off, be->d, reset,
								 exact, keep, err)) != KM_OK)
		return st;
	be->pass_scanned = NULL;
	be->pass_rows = 0;
	{
		int			k_min = cb->seg_off[1] - cb->seg_off[0];

		for (int r = 1; r < cb->nseg; r++)
			if (cb->seg_off[r + 1] - cb->seg_off[r] < k_min)
				k_min = cb->seg_off[r + 1] - cb->seg_off[r];
		/* bounds are per row: a pass that keeps no state keeps none */
		cb->pruning = keep && be->prune != KM_PRUNE_OFF && be->metric != KM_METRIC_IOU &&
			km_bounds_serve(be->d, cb->nseg, k_min);
	}
	if (!cb->pruning)
	{
		/* this pass's labels leave any kept bounds behind */
		km_bounds_forget(&cb->bounds);
		return KM_OK;
	}
	return km_bounds_begin(&cb->bounds, n, nseg, segs, cb->nseg, cb->seg_off, cb->c, be->d,
						   cb->state.fresh, be->prune, cb->pool.nthreads, err);
}

typedef struct BoundsStep
{
	CpuBackend *cb;
	KmBlock    *blk;
	int64_t		first;
	atomic_int_fast64_t next;
} BoundsStep;

static void
BoundsShare(void *arg, int share, int nshares)
{
	BoundsStep *st = arg;
	CpuBackend *cb = st->cb;
	KmHostState *hs = &cb->state;
	int			d = cb->base.d;
	int64_t		p,
				lo,
				hi;

	(void) nshares;
	while ((p = ClaimPiece(&st->next, PIECES(st->blk->n))) >= 0)
	{
		PieceRows(p, st->blk->n, &lo, &hi);
		km_bounds_rows(&cb->bounds, share, st->blk->x + lo * d, st->first + lo, hi - lo, cb->c,
					   hs->labels, hs->dist, hs->blk_labels + lo * cb->nseg,
					   hs->blk_dist + lo * cb->nseg);
	}
}

/*
 * An unpruned pass's block: km_host_pass_block's assignment and record, with the state of each
 * piece of rows recorded by the thread that assigned it, while its labels are in cache, where
 * km_state.c would walk every entry on one thread afterwards.  Each thread counts the changed
 * labels apart (share_changed), added up here.
 */
static KmStatus
AssignRecorded(CpuBackend *cb, KmBlock *blk, int64_t first, KmError *err)
{
	KmHostState *hs = &cb->state;
	int			nrun = cb->nseg;
	int64_t		entries = (int64_t) cb->pool.nthreads * nrun;
	KmStatus	s;

	if (hs->acc.k != cb->seg_off[nrun])
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator for %d centers, %d installed",
					   hs->acc.k, cb->seg_off[nrun]);
	if (entries > cb->share_changed_cap)
	{
		free(cb->share_changed);
		cb->share_changed = malloc(sizeof(int64_t) * (size_t) entries);
		cb->share_changed_cap = cb->share_changed ? entries : 0;
		if (cb->share_changed == NULL)
			return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %lld label counts",
						   (long long) entries);
	}
	memset(cb->share_changed, 0, sizeof(int64_t) * (size_t) entries);
	if ((s = Assign(cb, blk, hs->blk_labels, hs->blk_dist, hs->exact, hs, first,
					cb->share_changed, err)) != KM_OK)
		return s;
	for (int q = 0; q < cb->pool.nthreads; q++)
		for (int r = 0; r < nrun; r++)
			hs->changed[r] += cb->share_changed[(int64_t) q * nrun + r];
	return KM_OK;
}

static KmStatus
CpuPassBlock(KmBackend *be, KmBlock *blk, int64_t first, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;
	KmHostState *hs = &cb->state;
	KmStatus	s;

	if ((s = km_host_pass_prepare(hs, first, blk->n, err)) != KM_OK || blk->n == 0)
		return s;
	if (cb->pruning)
	{
		/* each row's state is read, compared and replaced by the thread that assigns it */
		BoundsStep	st = {.cb = cb, .blk = blk, .first = first};

		atomic_init(&st.next, 0);
		PoolRun(&cb->pool, BoundsShare, &st);
	}
	else if ((s = AssignRecorded(cb, blk, first, err)) != KM_OK)
		return s;
	return CpuAccumulate(be, blk, cb->nseg, hs->blk_labels, hs->blk_dist, &hs->acc, err);
}

static KmStatus
CpuPassEnd(KmBackend *be, KmAccum *acc, int64_t *changed, KmError *err)
{
	CpuBackend *cb = (CpuBackend *) be;

	if (cb->pruning)
	{
		km_bounds_end(&cb->bounds);
		be->pass_scanned = cb->bounds.last_scanned;
		be->pass_rows = cb->bounds.last_rows;
		if (cb->state.open && cb->bounds.last_changed != NULL)
			for (int r = 0; r < cb->state.nrun; r++)
				cb->state.changed[r] += cb->bounds.last_changed[r];
	}
	cb->pruning = 0;
	return km_host_pass_end(&cb->state, acc, changed, err);
}

static KmStatus
CpuStateFetch(KmBackend *be, int64_t first, int64_t m, int32_t *labels, float *dist,
			  KmError *err)
{
	return km_host_state_fetch(&((CpuBackend *) be)->state, first, m, labels, dist, err);
}

static KmStatus
CpuSeedBegin(KmBackend *be, int64_t n, KmError *err)
{
	/* a new fit: its first pass starts the labels afresh, and the bounds with them */
	km_bounds_forget(&((CpuBackend *) be)->bounds);
	return km_host_seed_begin(&((CpuBackend *) be)->state, n, err);
}

static KmStatus
CpuSeedUpdate(KmBackend *be, KmBlock *blk, int64_t first, const float *c, double *sub_sums,
			  KmError *err)
{
	return km_host_seed_update(&((CpuBackend *) be)->state, be, blk, first, blk->n, c, sub_sums,
							   err);
}

static KmStatus
CpuSeedPotentials(KmBackend *be, KmBlock *blk, int64_t first, const float *cand, int t,
				  double *pot, KmError *err)
{
	return km_host_seed_potentials(&((CpuBackend *) be)->state, be, blk, first, blk->n, cand, t,
								   pot, err);
}

static KmStatus
CpuSeedFetch(KmBackend *be, int64_t first, int64_t m, float *out, KmError *err)
{
	return km_host_seed_fetch(&((CpuBackend *) be)->state, first, m, out, err);
}

/*
 * DTW assignment on the pool's thread count, pruned by LB_Keogh where the backend prunes:
 * km_dtw_assign, whose labels and distances are the same bits either way.
 */
static KmStatus
CpuSeriesAssign(KmBackend *be, const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs,
				int32_t *labels, double *dist, KmError *err)
{
	if (r0 < 0 || r1 > s->n || r0 > r1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "series_assign: rows %lld..%lld of %lld",
					   (long long) r0, (long long) r1, (long long) s->n);
	return km_dtw_assign(s, r0, r1, cs, be->prune != KM_PRUNE_OFF, NULL,
						 ((CpuBackend *) be)->pool.nthreads, labels, dist, NULL, err);
}

static const KmBackendOps CpuOps = {
	.name = "cpu",
	.set_metric = km_backend_set_metric,
	.destroy = CpuDestroy,
	.block_create = CpuBlockCreate,
	.batch_create = CpuBlockCreate, /* rows are used in place either way */
	.block_destroy = CpuBlockDestroy,
	.set_centers = CpuSetCenters,
	.pass_begin = CpuPassBegin,
	.pass_block = CpuPassBlock,
	.pass_end = CpuPassEnd,
	.state_fetch = CpuStateFetch,
	.seed_begin = CpuSeedBegin,
	.seed_update = CpuSeedUpdate,
	.seed_potentials = CpuSeedPotentials,
	.seed_fetch = CpuSeedFetch,
	.silhouette = CpuSilhouette,
	.series_assign = CpuSeriesAssign,
};

static const KmStepOps CpuSteps = {
	.assign = CpuAssign,
	.accumulate = CpuAccumulate,
	.assign_accumulate = CpuAssignAccumulate,
	.mindist_update = CpuMindistUpdate,
	.potentials = CpuPotentials,
};

/* The CPU backend on threads compute threads (>= 1); threads block all signals. */
KmStatus
km_cpu_backend_create(int threads, int d, KmBackend **out, KmError *err)
{
	CpuBackend *cb;
	KmStatus	st;

	*out = NULL;
	if (threads < 1 || d < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "threads=%d d=%d", threads, d);
	cb = calloc(1, sizeof(CpuBackend));
	if (cb == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the CPU backend");
	cb->base.ops = &CpuOps;
	cb->base.steps = &CpuSteps;
	cb->base.d = d;
	cb->base.metric = KM_METRIC_EUCLIDEAN;
	cb->base.prune = KM_PRUNE_ON;
	cb->starts = calloc(threads, sizeof(WorkerStart));
	if (cb->starts == NULL)
	{
		free(cb);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %d thread records", threads);
	}
	if ((st = PoolStart(&cb->pool, cb->starts, threads, err)) != KM_OK)
	{
		free(cb->starts);
		free(cb);
		return st;
	}
	*out = &cb->base;
	return KM_OK;
}
