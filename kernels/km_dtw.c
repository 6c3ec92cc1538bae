/*
 * km_dtw.c -- dynamic time warping: distances, the pruning bound, warping paths and the
 * threaded passes over rows (km_dtw.h).
 *
 * The recurrence.  With C(-1, -1) = 0 and C = +inf elsewhere outside the band,
 *     C(i, j) = (x_i - c_j)^2 + min(C(i-1, j), C(i, j-1), C(i-1, j-1)),
 * DTW^2 = C(lx - 1, lc - 1).  Rows of C are computed in order of i, each over its band only,
 * in float64 with tslearn's operations in tslearn's order, so the values are tslearn's bit for
 * bit on the same float64 inputs.  Two rows of C suffice for a distance; a warping path needs
 * all of them (lx * lc doubles, the band written and everything else read as +inf).
 *
 * Abandoning.  C only grows along a path and every path crosses every row i, so once the least
 * C(i, j) of a row exceeds the cutoff, DTW^2 does too, and the computation stops.
 *
 * The lower bound.  A warping path holds (0, 0) and (lx - 1, lc - 1), and for every inner
 * sample 0 < i < lx - 1 at least one more cell (i, j) with j in i's band: three disjoint sets
 * of cells.  The cost of (i, j) is at least the squared distance of x_i to [lo_i, hi_i], the
 * least and greatest center sample of the band, so
 *     LB = (x_0 - c_0)^2 + (x_last - c_last)^2 + sum_{0<i<lx-1} dist(x_i, [lo_i, hi_i])^2
 * is at most DTW^2: LB_Keogh (Keogh & Ratanamahatana 2005) with the corners exact.  Sums in
 * float64 round differently from C's, so the bound used is LB (1 - 2^-40), which keeps it below
 * DTW^2 by far more than their rounding can differ.  A center is skipped only when this bound
 * exceeds the best DTW^2 found for the row, or equals it for a higher index: the label and the
 * distance are those of computing every DTW, ties included.
 *
 * Threads.  Each pass cuts its rows into pieces that threads started for the call claim in
 * turn (the caller works too); every result is per row, and what is summed over rows
 * (km_dtw_dba_pass) is added by the calling thread in row order afterwards, so no result
 * depends on the thread count.  Threads start with every signal blocked; one that cannot start
 * leaves its work to the others.  Scratch is malloc'd per call and freed on every path.
 */
#include "km_dtw.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The margin that keeps the float64 bound below DTW^2 (see the header). */
#define LB_SHRINK (1.0 - 1.0 / 1099511627776.0)
/* Rows a piece of a pass: enough work to amortise a claim, few enough to balance. */
#define PIECE_ROWS 4

/*
 * C row by row over two buffers of lc + 1 columns (column j + 1 holds C(i, j), column 0 the
 * +inf left of the band, or C(-1, -1) = 0 in row -1).  A buffer keeps the band it held two
 * rows ago; bands only move right, so what the new row does not overwrite is columns wlo..lo,
 * cleared first.  x is xf or xd, whichever is not NULL.
 */
static inline double
DtwRows(const float *xf, const double *xd, int lx, const double *c, int lc, int band,
		double cutoff, double *work)
{
	double	   *prev = work,
			   *cur = work + lc + 1;
	int			wprev = 0,
				wcur = lc + 1;	/* first column each buffer may hold a stale value in */

	for (int j = 0; j <= lc; j++)
		prev[j] = cur[j] = INFINITY;
	prev[0] = 0.0;
	for (int i = 0; i < lx; i++)
	{
		int			lo,
					hi,
					t;
		double		xi = xf != NULL ? (double) xf[i] : xd[i];
		double		rowmin = INFINITY;
		double	   *swap;

		km_dtw_band(i, lx, lc, band, &lo, &hi);
		for (int j = wcur; j <= lo; j++)
			cur[j] = INFINITY;
		for (int j = lo; j <= hi; j++)
		{
			double		diff = xi - c[j];
			double		m = prev[j + 1];

			if (cur[j] < m)
				m = cur[j];
			if (prev[j] < m)
				m = prev[j];
			cur[j + 1] = diff * diff + m;
			if (cur[j + 1] < rowmin)
				rowmin = cur[j + 1];
		}
		if (rowmin > cutoff)
			return INFINITY;
		swap = prev;
		prev = cur;
		cur = swap;
		t = wprev;
		wprev = lo + 1;
		wcur = t;
	}
	return prev[lc];
}

double
km_dtw_sq(const float *x, int lx, const double *c, int lc, int band, double cutoff, double *work)
{
	return DtwRows(x, NULL, lx, c, lc, band, cutoff, work);
}

double
km_dtw_sq_d(const double *x, int lx, const double *c, int lc, int band, double *work)
{
	return DtwRows(NULL, x, lx, c, lc, band, INFINITY, work);
}

/* C(i, j) of the full matrix, +inf outside i's band. */
static inline double
CumAt(const double *cum, int i, int j, int lx, int lc, int band)
{
	int			lo,
				hi;

	km_dtw_band(i, lx, lc, band, &lo, &hi);
	return j >= lo && j <= hi ? cum[(int64_t) i * lc + j] : INFINITY;
}

double
km_dtw_path(const float *x, int lx, const double *c, int lc, int band, double *cum,
			int32_t *path, int *len)
{
	int			i,
				j,
				n = 0;

	for (i = 0; i < lx; i++)
	{
		int			lo,
					hi,
					plo = 0,
					phi = -1;
		double		xi = (double) x[i];
		double	   *row = cum + (int64_t) i * lc;
		const double *up = row - lc;

		km_dtw_band(i, lx, lc, band, &lo, &hi);
		if (i > 0)
			km_dtw_band(i - 1, lx, lc, band, &plo, &phi);
		for (j = lo; j <= hi; j++)
		{
			double		diff = xi - c[j];
			double		m;

			if (i == 0)
				m = j == 0 ? 0.0 : row[j - 1];
			else
			{
				m = j <= phi ? up[j] : INFINITY;	/* C(i-1, j) */
				if (j > lo && row[j - 1] < m)		/* C(i, j-1) */
					m = row[j - 1];
				if (j > 0 && j - 1 >= plo && j - 1 <= phi && up[j - 1] < m)	/* C(i-1, j-1) */
					m = up[j - 1];
			}
			row[j] = diff * diff + m;
		}
	}

	/* back from the end, then reversed */
	i = lx - 1;
	j = lc - 1;
	path[0] = i;
	path[1] = j;
	n = 1;
	while (i > 0 || j > 0)
	{
		if (i == 0)
			j--;
		else if (j == 0)
			i--;
		else
		{
			double		diag = CumAt(cum, i - 1, j - 1, lx, lc, band),
						up = CumAt(cum, i - 1, j, lx, lc, band),
						left = CumAt(cum, i, j - 1, lx, lc, band);

			if (diag <= up && diag <= left)
			{
				i--;
				j--;
			}
			else if (up <= left)
				i--;
			else
				j--;
		}
		path[2 * n] = i;
		path[2 * n + 1] = j;
		n++;
	}
	for (int a = 0, b = n - 1; a < b; a++, b--)
	{
		int32_t		ti = path[2 * a],
					tj = path[2 * a + 1];

		path[2 * a] = path[2 * b];
		path[2 * a + 1] = path[2 * b + 1];
		path[2 * b] = ti;
		path[2 * b + 1] = tj;
	}
	*len = n;
	return cum[(int64_t) (lx - 1) * lc + lc - 1];
}

/*
 * lo[i], hi[i]: the least and greatest of c over sample i's band, for a row of lx samples.  The
 * bands' ends only rise with i, so two monotone queues of indexes (queue: 2 * lc ints) give
 * them in O(lx + lc).
 */
void
km_dtw_envelope(const double *c, int lc, int lx, int band, double *lo, double *hi, int *queue)
{
	int		   *qmin = queue,
			   *qmax = queue + lc;
	int			fmin = 0,
				bmin = 0,
				fmax = 0,
				bmax = 0,
				next = 0;

	for (int i = 0; i < lx; i++)
	{
		int			a,
					b;

		km_dtw_band(i, lx, lc, band, &a, &b);
		for (; next <= b; next++)
		{
			while (bmin > fmin && c[qmin[bmin - 1]] >= c[next])
				bmin--;
			qmin[bmin++] = next;
			while (bmax > fmax && c[qmax[bmax - 1]] <= c[next])
				bmax--;
			qmax[bmax++] = next;
		}
		while (qmin[fmin] < a)
			fmin++;
		while (qmax[fmax] < a)
			fmax++;
		lo[i] = c[qmin[fmin]];
		hi[i] = c[qmax[fmax]];
	}
}

double
km_dtw_lower_bound(const float *x, int lx, const double *c, int lc, const double *lo,
				   const double *hi)
{
	double		d0 = (double) x[0] - c[0],
				d1 = (double) x[lx - 1] - c[lc - 1];
	double		sum = 0.0;

	if (lx == 1)
		return 0.0;				/* one sample: the corners are one cell */
	for (int i = 1; i < lx - 1; i++)
	{
		double		v = (double) x[i];
		double		e = v > hi[i] ? v - hi[i] : (v < lo[i] ? lo[i] - v : 0.0);

		sum += e * e;
	}
	return (d0 * d0 + d1 * d1 + sum) * LB_SHRINK;
}

void
km_dtw_resample(const float *x, int lx, double *out, int len)
{
	if (lx == 1 || len == 1)
	{
		for (int t = 0; t < len; t++)
			out[t] = (double) x[0];
		return;
	}
	for (int t = 0; t < len; t++)
	{
		double		pos = (double) t * (lx - 1) / (len - 1);
		int			a = (int) pos;
		double		f;

		if (a >= lx - 1)
		{
			out[t] = (double) x[lx - 1];
			continue;
		}
		f = pos - a;
		out[t] = (double) x[a] + f * ((double) x[a + 1] - (double) x[a]);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------------------------- */

typedef void (*PieceFn) (void *arg, int64_t piece, int share);

typedef struct Crew
{
	PieceFn		fn;
	void	   *arg;
	int64_t		npieces;
	atomic_int_fast64_t next;
} Crew;

typedef struct CrewStart
{
	Crew	   *crew;
	int			share;
} CrewStart;

static void
CrewWork(Crew *crew, int share)
{
	for (;;)
	{
		int64_t		p = atomic_fetch_add_explicit(&crew->next, 1, memory_order_relaxed);

		if (p >= crew->npieces)
			return;
		crew->fn(crew->arg, p, share);
	}
}

static void *
CrewMain(void *arg)
{
	CrewStart  *st = arg;

	CrewWork(st->crew, st->share);
	return NULL;
}

/*
 * Runs fn on every piece with up to nthreads threads (the caller one of them); share tells a
 * thread its scratch.  A thread that cannot start leaves its pieces to the others.
 */
static void
RunCrew(int nthreads, int64_t npieces, PieceFn fn, void *arg)
{
	Crew		crew;
	pthread_t	threads[256];
	CrewStart	starts[256];
	int			started = 0;

	crew.fn = fn;
	crew.arg = arg;
	crew.npieces = npieces;
	atomic_init(&crew.next, 0);
	if (nthreads > 256)
		nthreads = 256;
	if (nthreads > npieces)
		nthreads = (int) (npieces > 0 ? npieces : 1);
	if (nthreads > 1)
	{
		sigset_t	all,
					old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		for (int t = 1; t < nthreads; t++)
		{
			starts[started].crew = &crew;
			starts[started].share = t;
			if (pthread_create(&threads[started], NULL, CrewMain, &starts[started]) != 0)
				break;
			started++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	CrewWork(&crew, 0);
	for (int t = 0; t < started; t++)
		pthread_join(threads[t], NULL);
}

/* The threads a pass of m rows may use: none beyond its pieces. */
static int
CrewSize(int nthreads, int64_t pieces)
{
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > 256)
		nthreads = 256;
	return pieces < nthreads ? (int) (pieces > 0 ? pieces : 1) : nthreads;
}

/* ---------------------------------------------------------------------------------------------
 * Assignment
 * ------------------------------------------------------------------------------------------- */

typedef struct AssignArg
{
	const KmSeries *s;
	int64_t		r0,
				r1;
	const KmDtwCenters *cs;
	int			prune;
	const double *cutoff;
	int32_t    *labels;
	double	   *dist;
	int			maxlen;			/* longest row of the pass */
	/* per share: DTW rows, envelope, bounds and the order they give */
	double	   *work;
	size_t		work_stride;
	int64_t    *computed;		/* per share */
} AssignArg;

typedef struct Bound
{
	double		lb;
	int			j;
} Bound;

static int
BoundCmp(const void *a, const void *b)
{
	const Bound *x = a,
			   *y = b;

	if (x->lb != y->lb)
		return x->lb < y->lb ? -1 : 1;
	return x->j - y->j;
}

static void
AssignRow(AssignArg *a, int64_t r, int share)
{
	const KmDtwCenters *cs = a->cs;
	const float *x = a->s->values + a->s->off[r];
	int			lx = (int) (a->s->off[r + 1] - a->s->off[r]);
	int			lc = cs->lc,
				k = cs->k;
	double	   *w = a->work + a->work_stride * share;
	double	   *rows = w;		/* 2 (lc + 1) */
	double	   *lo = rows + 2 * (lc + 1);	/* maxlen */
	double	   *hi = lo + a->maxlen;
	Bound	   *order = (Bound *) (hi + a->maxlen);	/* k */
	int		   *queue = (int *) (order + k);	/* 2 lc */
	double		best = a->cutoff != NULL ? a->cutoff[r] : INFINITY;
	int			bestj = a->cutoff != NULL ? -1 : 0;

	if (!a->prune)
	{
		for (int j = 0; j < k; j++)
		{
			double		v = km_dtw_sq(x, lx, cs->c + (int64_t) j * lc, lc, cs->band, INFINITY, rows);

			if (v < best || (j == 0 && a->cutoff == NULL))
			{
				best = v;
				bestj = j;
			}
		}
		a->computed[share * 8] += k;
		a->labels[r] = bestj;
		a->dist[r] = best;
		return;
	}
	for (int j = 0; j < k; j++)
	{
		const double *c = cs->c + (int64_t) j * lc;

		if (lx == cs->env_len && cs->env_lo != NULL)
			order[j].lb = km_dtw_lower_bound(x, lx, c, lc, cs->env_lo + (int64_t) j * lx,
											 cs->env_hi + (int64_t) j * lx);
		else
		{
			km_dtw_envelope(c, lc, lx, cs->band, lo, hi, queue);
			order[j].lb = km_dtw_lower_bound(x, lx, c, lc, lo, hi);
		}
		order[j].j = j;
	}
	if (k > 1)
		qsort(order, k, sizeof(Bound), BoundCmp);
	for (int q = 0; q < k; q++)
	{
		int			j = order[q].j;
		double		v;

		if (order[q].lb > best)
			break;
		/* an equal bound can only tie: it wins only at a lower index than a center found */
		if (order[q].lb == best && (bestj < 0 || j > bestj))
			continue;
		v = km_dtw_sq(x, lx, cs->c + (int64_t) j * lc, lc, cs->band, best, rows);
		a->computed[share * 8]++;
		if (v < best || (v == best && j < bestj && bestj >= 0) || (q == 0 && a->cutoff == NULL))
		{
			best = v;
			bestj = j;
		}
	}
	a->labels[r] = bestj;
	a->dist[r] = best;
}

static void
AssignPiece(void *arg, int64_t piece, int share)
{
	AssignArg  *a = arg;
	int64_t		lo = a->r0 + piece * PIECE_ROWS,
				hi = lo + PIECE_ROWS < a->r1 ? lo + PIECE_ROWS : a->r1;

	for (int64_t r = lo; r < hi; r++)
		AssignRow(a, r, share);
}

static int
LongestRow(const KmSeries *s, int64_t r0, int64_t r1)
{
	int64_t		m = 1;

	for (int64_t r = r0; r < r1; r++)
		if (s->off[r + 1] - s->off[r] > m)
			m = s->off[r + 1] - s->off[r];
	return (int) m;
}

KmStatus
km_dtw_assign(const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs, int prune,
			  const double *cutoff, int nthreads, int32_t *labels, double *dist,
			  int64_t *computed, KmError *err)
{
	AssignArg	a;
	int64_t		pieces = (r1 - r0 + PIECE_ROWS - 1) / PIECE_ROWS;
	int			nt = CrewSize(nthreads, pieces);
	size_t		stride;

	if (r1 <= r0)
		return KM_OK;
	if (cs->k < 1 || cs->lc < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "no centers to assign to");
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.r0 = r0;
	a.r1 = r1;
	a.cs = cs;
	a.prune = prune;
	a.cutoff = cutoff;
	a.labels = labels;
	a.dist = dist;
	a.maxlen = LongestRow(s, r0, r1);
	/* in doubles: rows, lo, hi, the bounds (2 doubles each) and the queue (ints) */
	stride = 2 * ((size_t) cs->lc + 1) + 2 * (size_t) a.maxlen + 2 * (size_t) cs->k +
		(size_t) cs->lc + 8;
	a.work_stride = stride;
	a.work = malloc(sizeof(double) * stride * nt);
	a.computed = calloc((size_t) nt * 8, sizeof(int64_t));
	if (a.work == NULL || a.computed == NULL)
	{
		free(a.work);
		free(a.computed);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DTW scratch",
					   sizeof(double) * stride * nt);
	}
	RunCrew(nt, pieces, AssignPiece, &a);
	for (int t = 0; t < nt && computed != NULL; t++)
		*computed += a.computed[t * 8];
	free(a.work);
	free(a.computed);
	return KM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * DBA
 * ------------------------------------------------------------------------------------------- */

typedef struct DbaArg
{
	const KmSeries *s;
	int64_t		r0;
	const int32_t *labels;
	const KmDtwCenters *cs;
	const uint8_t *active;
	double	   *cum;			/* per share: maxlen x lc */
	size_t		cum_stride;
	int32_t    *paths;			/* per row of the slice: 2 (maxlen + lc) ints */
	size_t		path_stride;
	int		   *plen;			/* per row: pairs, 0 for a row left out */
	double	   *sq;				/* per row: DTW^2 */
} DbaArg;

static void
DbaPiece(void *arg, int64_t piece, int share)
{
	DbaArg	   *a = arg;
	int64_t		i = piece;		/* a row of the slice */
	int64_t		r = a->r0 + i;
	int			j = a->labels[r];
	const KmDtwCenters *cs = a->cs;

	a->plen[i] = 0;
	if (j < 0 || j >= cs->k || !a->active[j])
		return;
	a->sq[i] = km_dtw_path(a->s->values + a->s->off[r], (int) (a->s->off[r + 1] - a->s->off[r]),
						   cs->c + (int64_t) j * cs->lc, cs->lc, cs->band,
						   a->cum + a->cum_stride * share, a->paths + a->path_stride * i,
						   &a->plen[i]);
}

/* Rows whose paths one slice of a DBA pass keeps at a time. */
#define DBA_SLICE_ROWS 1024

KmStatus
km_dtw_dba_pass(const KmSeries *s, int64_t r0, int64_t r1, const int32_t *labels,
				const KmDtwCenters *cs, const uint8_t *active, int nthreads, double *sums,
				double *counts, double *cost, KmError *err)
{
	DbaArg		a;
	int			maxlen;
	int			nt;
	int64_t		slice;

	if (r1 <= r0)
		return KM_OK;
	maxlen = LongestRow(s, r0, r1);
	slice = r1 - r0 < DBA_SLICE_ROWS ? r1 - r0 : DBA_SLICE_ROWS;
	nt = CrewSize(nthreads, slice);
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.labels = labels;
	a.cs = cs;
	a.active = active;
	a.cum_stride = (size_t) maxlen * cs->lc;
	a.path_stride = 2 * ((size_t) maxlen + cs->lc);
	a.cum = malloc(sizeof(double) * a.cum_stride * nt);
	a.paths = malloc(sizeof(int32_t) * a.path_stride * slice);
	a.plen = malloc(sizeof(int) * slice);
	a.sq = malloc(sizeof(double) * slice);
	if (a.cum == NULL || a.paths == NULL || a.plen == NULL || a.sq == NULL)
	{
		free(a.cum);
		free(a.paths);
		free(a.plen);
		free(a.sq);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DBA scratch",
					   sizeof(double) * a.cum_stride * nt +
					   sizeof(int32_t) * a.path_stride * slice);
	}
	for (int64_t s0 = r0; s0 < r1; s0 += slice)
	{
		int64_t		m = r1 - s0 < slice ? r1 - s0 : slice;

		a.r0 = s0;
		RunCrew(nt, m, DbaPiece, &a);
		/* in row order, then path order: independent of the threads */
		for (int64_t i = 0; i < m; i++)
		{
			int64_t		r = s0 + i;
			int			j = labels[r];
			const float *x = s->values + s->off[r];
			double		w = s->w != NULL ? (double) s->w[r] : 1.0;
			const int32_t *p = a.paths + a.path_stride * i;
			double	   *sj,
					   *cj;

			if (a.plen[i] == 0)
				continue;
			sj = sums + (int64_t) j * cs->lc;
			cj = counts + (int64_t) j * cs->lc;
			for (int q = 0; q < a.plen[i]; q++)
			{
				sj[p[2 * q + 1]] += w * (double) x[p[2 * q]];
				cj[p[2 * q + 1]] += w;
			}
			cost[j] += w * a.sq[i];
		}
	}
	free(a.cum);
	free(a.paths);
	free(a.plen);
	free(a.sq);
	return KM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Pairwise distances
 * ------------------------------------------------------------------------------------------- */

typedef struct PairArg
{
	const KmSeries *s;
	const int64_t *rows;
	int64_t		m;
	int64_t		a0;
	int			band;
	double	   *out;
	double	   *work;			/* per share: 2 (maxlen + 1) doubles, the row as float64 */
	size_t		stride;
	int			maxlen;
} PairArg;

static void
PairPiece(void *arg, int64_t piece, int share)
{
	PairArg    *p = arg;
	int64_t		a = p->a0 + piece;
	int64_t		ra = p->rows[a];
	const float *xa = p->s->values + p->s->off[ra];
	int			la = (int) (p->s->off[ra + 1] - p->s->off[ra]);
	double	   *w = p->work + p->stride * share;
	double	   *ca = w + 2 * ((size_t) p->maxlen + 1);

	/* the row as the "center": DTW is symmetric, and its float64 copy is exact */
	for (int t = 0; t < la; t++)
		ca[t] = (double) xa[t];
	for (int64_t b = 0; b < p->m; b++)
	{
		int64_t		rb = p->rows[b];

		p->out[piece * p->m + b] = b == a ? 0.0 :
			sqrt(km_dtw_sq(p->s->values + p->s->off[rb], (int) (p->s->off[rb + 1] - p->s->off[rb]),
						   ca, la, p->band, INFINITY, w));
	}
}

KmStatus
km_dtw_pairwise(const KmSeries *s, const int64_t *rows, int64_t m, int64_t a0, int64_t a1,
				int band, int nthreads, double *out, KmError *err)
{
	PairArg		p;
	int			nt = CrewSize(nthreads, a1 - a0);
	int			maxlen = 1;

	if (a1 <= a0)
		return KM_OK;
	for (int64_t i = 0; i < m; i++)
		if (s->off[rows[i] + 1] - s->off[rows[i]] > maxlen)
			maxlen = (int) (s->off[rows[i] + 1] - s->off[rows[i]]);
	memset(&p, 0, sizeof(p));
	p.s = s;
	p.rows = rows;
	p.m = m;
	p.a0 = a0;
	p.band = band;
	p.out = out;
	p.maxlen = maxlen;
	p.stride = 3 * ((size_t) maxlen + 1);
	p.work = malloc(sizeof(double) * p.stride * nt);
	if (p.work == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DTW scratch",
					   sizeof(double) * p.stride * nt);
	RunCrew(nt, a1 - a0, PairPiece, &p);
	free(p.work);
	return KM_OK;
}
