/*
 * km_bounds.c -- Lloyd passes that skip the rows bounds prove cannot change cluster, with the
 * labels of the unpruned kernel bit for bit (km_bounds.h).
 *
 * The algorithm (Hamerly 2010, "Making k-means even faster").  Each row keeps, per segment, a
 * lower bound l on its true distance to every center but its own, a.  When the centers move,
 * by the triangle inequality l shrinks by at most the farthest any other center of the
 * segment moved.  A second bound comes from the centers alone: with s_a the distance from c_a
 * to its nearest other center, every other center is at least s_a - |x - c_a| from x.  A pass
 * computes |x - c_a| for each row (its distance is needed for the inertia anyway), and when
 * L = max(l, s_a - |x - c_a|) is far enough above it, the row keeps a; otherwise it is compared
 * with every center of the segment, which also gives a fresh l (the second least distance).
 *
 * Why the labels are exact.  The unpruned kernel's label is the argmin of the computed float32
 * distances D~_j = km_dist2_seq(x, c_j), lowest index on ties.  The row keeps a without a scan
 * only if D~_j > D~_a for every j != a, strictly, so neither a tie nor an order of indices
 * enters.  km_dist2_seq sums d non-negative squares of rounded differences, so for the true
 * squared distance D_j of the float values x and c_j,
 *
 *     D_j (1 - eps) - eta  <=  D~_j  <=  D_j (1 + eps) + eta,
 *
 * with eps = (1 + u)^2 (1 + gamma_m) - 1 for m roundings of the sum (m = d with fused
 * multiply-adds, 2d without), gamma_m = m u / (1 - m u), u = 2^-24; eta covers the absolute
 * error of subnormal results, a few units of 2^-149 per operation.  We use the simpler
 * eps = (2d + 4) u and eta = 2^-140, which exceed those.  Hence, with L a lower bound on every
 * true distance D_j^(1/2) (j != a):
 *
 *     L^2 (1 - eps) - eta > D~_a   implies   D~_j >= D_j (1 - eps) - eta > D~_a   for all j != a.
 *
 * The bounds themselves are kept in float64 from float32 inputs: a distance bound taken from a
 * computed D~ is sqrt((D~ + eta) / (1 - eps)) from above and sqrt((D~ - eta) / (1 + eps)) from
 * below, movements and center separations are float64 norms of exact float32 differences, and
 * every such value is moved outward by a relative 1e-12 (float64's own rounding over a few
 * thousand operations is below 1e-13), then stored in float32 rounded toward safety.  The
 * planted faults of test/engine/test_bounds.c (no margins; no loosening by movement) show
 * that the tests notice when any of this is missing.
 *
 * What is kept.  One float32 lower bound per row and segment (KM_BOUNDS_ROW_BYTES), for every
 * row of the fit whether resident or streamed, and a copy of each segment's centers.  Bounds
 * hold only against the centers of a segment's previous pass over every row: a pass that did
 * not see every row, a pass without bounds, a new seeding or a fresh state drop them, and the
 * next pass scans in full.  Each row is handled on its own, so nothing depends on the thread
 * count or the split of rows into blocks.
 */
#include "km_bounds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* counts[] entries per share: a cache line apart */
#define KM_BOUNDS_PAD 8

/* The relative slack every float64 bound is moved outward by. */
#define SLACK 1e-12

static double
Up(double v)
{
	return isfinite(v) ? v + fabs(v) * SLACK : v;
}

static double
Down(double v)
{
	return isfinite(v) ? v - fabs(v) * SLACK : v;
}

/*
 * A float32 at most v, for a lower bound on a distance (>= 0, so 0 is one): scaled down by
 * 2^-22 before float32's rounding to nearest (at most 2^-24 relative) it stays below v; +Inf
 * stays +Inf.  Values below 1e-30, where float32 is subnormal, become 0.
 */
static inline float
FloatDown(double v, int margin)
{
	if (!margin)
		return (float) v;		/* the planted fault: to nearest, up as often as down */
	return v > 1e-30 ? (float) (v * (1.0 - 0x1p-22)) : 0.0f;
}

static void
FreePass(KmBounds *b)
{
	free(b->segs);
	free(b->off);
	free(b->use);
	free(b->move_other);
	free(b->sep);
	free(b->counts);
	free(b->gx);
	free(b->gidx);
	free(b->glab);
	free(b->gbest);
	free(b->gsecond);
	b->segs = b->off = NULL;
	b->use = NULL;
	b->move_other = b->sep = NULL;
	b->counts = NULL;
	b->gx = b->gbest = b->gsecond = NULL;
	b->gidx = b->glab = NULL;
	b->open = 0;
}

static void
FreeKept(KmBounds *b)
{
	if (b->prev != NULL)
		for (int s = 0; s < b->nseg; s++)
			free(b->prev[s]);
	free(b->prev);
	free(b->prev_k);
	free(b->valid);
	free(b->lower);
	free(b->last_scanned);
	b->last_scanned = b->last_changed = NULL;
	b->last_rows = 0;
	b->prev = NULL;
	b->prev_k = NULL;
	b->valid = NULL;
	b->lower = NULL;
	b->n = 0;
	b->nseg = 0;
}

void
km_bounds_free(KmBounds *b)
{
	FreePass(b);
	FreeKept(b);
}

void
km_bounds_forget(KmBounds *b)
{
	if (b->valid != NULL)
		memset(b->valid, 0, b->nseg);
}

/* The float64 distance of two float32 points. */
static double
Distance(const float *p, const float *q, int d)
{
	double		s = 0.0;

	for (int t = 0; t < d; t++)
	{
		double		diff = (double) p[t] - q[t];

		s += diff * diff;
	}
	return sqrt(s);
}

/*
 * Segment r's movements since its previous centers prev and its separations, for the pass:
 * move_other[j] bounds how far any center of the segment but j moved, sep[j] is at most the
 * distance from c_j to its nearest other center (0 where that would cost more than the pass).
 */
static void
SegmentBounds(KmBounds *b, int r, const float *c, const float *prev, int64_t n)
{
	int			lo = b->off[r];
	int			k = b->off[r + 1] - lo;
	int			d = b->d;
	double		m1 = 0.0,
				m2 = 0.0;
	int			i1 = -1;

	for (int j = 0; j < k; j++)
	{
		double		m = b->mode == KM_PRUNE_FAULT_MOVE ? 0.0 :
			Up(Distance(c + (int64_t) (lo + j) * d, prev + (int64_t) j * d, d));

		if (m > m1)
		{
			m2 = m1;
			m1 = m;
			i1 = j;
		}
		else if (m > m2)
			m2 = m;
	}
	for (int j = 0; j < k; j++)
	{
		b->move_other[lo + j] = j == i1 ? m2 : m1;
		b->sep[lo + j] = k == 1 ? INFINITY : 0.0;
	}
	/* k^2 d / 2 for the separations, against n k d for a full pass: worth it while k <= 4n */
	if (k < 2 || (int64_t) k * k > 4 * n)
		return;
	for (int j = 0; j < k; j++)
		b->sep[lo + j] = INFINITY;
	for (int j = 0; j < k; j++)
		for (int i = j + 1; i < k; i++)
		{
			double		dist = Distance(c + (int64_t) (lo + j) * d, c + (int64_t) (lo + i) * d, d);

			if (dist < b->sep[lo + j])
				b->sep[lo + j] = dist;
			if (dist < b->sep[lo + i])
				b->sep[lo + i] = dist;
		}
	if (b->mode != KM_PRUNE_FAULT_MARGIN)
		for (int j = 0; j < k; j++)
			b->sep[lo + j] = Down(b->sep[lo + j]);
}

KmStatus
km_bounds_begin(KmBounds *b, int64_t n, int nseg, const int *segs, int nrun, const int *off,
				const float *c, int d, int fresh, KmPrune mode, int nshares, KmError *err)
{
	int			k = off[nrun];
	size_t		g = (size_t) nshares * KM_SUB_ROWS;

	FreePass(b);
	if (n < 1 || nseg < 1 || nrun < 1 || nrun > nseg || k < 1 || d < 1 || nshares < 1 ||
		mode == KM_PRUNE_OFF)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "bounds_begin: n=%lld nseg=%d nrun=%d k=%d d=%d",
					   (long long) n, nseg, nrun, k, d);
	if (b->n != n || b->nseg != nseg || b->d != d)
	{
		FreeKept(b);
		b->lower = malloc(sizeof(float) * (size_t) n * nseg);
		b->prev = calloc(nseg, sizeof(float *));
		b->prev_k = calloc(nseg, sizeof(int));
		b->valid = calloc(nseg, 1);
		if (b->lower == NULL || b->prev == NULL || b->prev_k == NULL || b->valid == NULL)
		{
			FreeKept(b);
			return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the bounds of %lld rows for %d k",
						   (long long) n, nseg);
		}
		b->n = n;
		b->nseg = nseg;
		b->d = d;
	}
	if (fresh)
		km_bounds_forget(b);

	b->segs = malloc(sizeof(int) * nrun);
	b->off = malloc(sizeof(int) * (nrun + 1));
	b->use = calloc(nrun, 1);
	b->move_other = malloc(sizeof(double) * k);
	b->sep = malloc(sizeof(double) * k);
	b->stride = (1 + 2 * nrun + KM_BOUNDS_PAD - 1) / KM_BOUNDS_PAD * KM_BOUNDS_PAD;
	b->counts = calloc((size_t) nshares * b->stride, sizeof(int64_t));
	free(b->last_scanned);
	b->last_scanned = calloc(2 * (size_t) nrun, sizeof(int64_t));
	b->last_changed = b->last_scanned ? b->last_scanned + nrun : NULL;
	b->last_rows = 0;
	b->gx = malloc(sizeof(float) * g * d);
	b->gidx = malloc(sizeof(int32_t) * g);
	b->glab = malloc(sizeof(int32_t) * g);
	b->gbest = malloc(sizeof(float) * g);
	b->gsecond = malloc(sizeof(float) * g);
	if (b->segs == NULL || b->off == NULL || b->use == NULL || b->move_other == NULL ||
		b->sep == NULL || b->counts == NULL || b->gx == NULL || b->gidx == NULL ||
		b->glab == NULL || b->gbest == NULL || b->gsecond == NULL || b->last_scanned == NULL)
	{
		FreePass(b);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the bounds' buffers for %d centers",
					   k);
	}
	memcpy(b->segs, segs, sizeof(int) * nrun);
	memcpy(b->off, off, sizeof(int) * (nrun + 1));
	b->nrun = nrun;
	b->nshares = nshares;
	b->mode = mode;
	if (mode == KM_PRUNE_FAULT_MARGIN)
		b->eps = b->eta = 0.0;
	else
	{
		b->eps = (2.0 * d + 4.0) * 0x1p-24;
		b->eta = 0x1p-140;
	}

	for (int r = 0; r < nrun; r++)
	{
		int			s = segs[r];
		int			kr = off[r + 1] - off[r];
		size_t		bytes = sizeof(float) * (size_t) kr * d;

		if (s < 0 || s >= nseg)
		{
			FreePass(b);
			return KM_FAIL(err, KM_ERR_ARGUMENT, "bounds_begin: segment %d maps to %d of %d", r,
						   s, nseg);
		}
		b->use[r] = b->valid[s] && b->prev[s] != NULL && b->prev_k[s] == kr;
		if (b->use[r])
			SegmentBounds(b, r, c, b->prev[s], n);
		/* until this pass has seen every row, the segment's bounds are not to be trusted */
		b->valid[s] = 0;
		if (b->prev_k[s] != kr)
		{
			free(b->prev[s]);
			b->prev_k[s] = 0;
			if ((b->prev[s] = malloc(bytes)) == NULL)
			{
				FreePass(b);
				return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate a copy of %d centers", kr);
			}
			b->prev_k[s] = kr;
		}
		memcpy(b->prev[s], c + (int64_t) off[r] * d, bytes);
	}
	b->open = 1;
	return KM_OK;
}

/*
 * The rows of one installed segment, for a compile-time D (0: d at run time) so that the
 * distance and the gathering unroll.  Constants per pass: c_u turns D~_a + eta into the square
 * of an upper bound on |x - c_a| and c_l turns a squared lower bound L^2 into one on every
 * other D~_j, eta aside; both are widened by SLACK for float64's own rounding.
 */
static inline __attribute__((always_inline)) int
SegmentRows(KmBounds *b, int r, const int D, int d, const float *x, int64_t first, int64_t m,
			const float *c, const int32_t *state_labels, float *state_dist, int32_t *labels,
			float *dist, float *gx, int32_t *gidx)
{
	const int	nrun = b->nrun;
	const int	dd = D ? D : d;
	const int	lo = b->off[r];
	const int	s = b->segs[r];
	const int	nseg = b->nseg;
	const int	use = b->use[r];
	const int	margin = b->mode != KM_PRUNE_FAULT_MARGIN;
	const double eta = b->eta;
	const double c_u = margin ? (1.0 + 4 * SLACK) / (1.0 - b->eps) : 1.0;
	const double c_l = margin ? (1.0 - b->eps) * (1.0 - 4 * SLACK) : 1.0;
	const double keep = margin ? 1.0 - SLACK : 1.0;
	/* local copies: the stores below through int32_t and float pointers could alias b */
	float	   *restrict lower = b->lower;
	const double *restrict move_other = b->move_other;
	const double *restrict sep = b->sep;
	int			g = 0;

	for (int64_t i = 0; i < m; i++)
	{
		int64_t		at = (first + i) * nseg + s;
		int32_t		a = state_labels[at];
		const float *xi = x + i * dd;

		if (use && a >= 0)
		{
			int			j = lo + a;
			float		da = km_dist2_seq(xi, c + (int64_t) j * dd, dd);
			/* only a positive l matters, and a positive l is lowered by keep */
			double		l = ((double) lower[at] - move_other[j]) * keep;
			double		need = (double) da + eta;

			if (l > 0.0 && l * l * c_l > need)
			{
				labels[i * nrun + r] = j;
				dist[i * nrun + r] = da;
				state_dist[at] = da;
				lower[at] = FloatDown(l, margin);
				continue;
			}
			/* the centers' separation: every other center is at least s_a - |x - c_a| away */
			if (sep[j] > 0.0)
			{
				double		ls = (sep[j] - sqrt(need * c_u)) * keep;

				if (ls > 0.0 && ls * ls * c_l > need)
				{
					labels[i * nrun + r] = j;
					dist[i * nrun + r] = da;
					state_dist[at] = da;
					lower[at] = FloatDown(ls > l ? ls : l, margin);
					continue;
				}
			}
		}
		gidx[g] = (int32_t) i;
		memcpy(gx + (size_t) g * dd, xi, sizeof(float) * dd);
		g++;
	}
	return g;
}

void
km_bounds_rows(KmBounds *b, int share, const float *x, int64_t first, int64_t m,
			   const float *c, int32_t *state_labels, float *state_dist, int32_t *labels,
			   float *dist)
{
	int			d = b->d;
	int			nrun = b->nrun;
	double		eps = b->eps;
	double		eta = b->eta;
	int			margin = b->mode != KM_PRUNE_FAULT_MARGIN;
	float	   *gx = b->gx + (size_t) share * KM_SUB_ROWS * d;
	int32_t    *gidx = b->gidx + (size_t) share * KM_SUB_ROWS;
	int32_t    *glab = b->glab + (size_t) share * KM_SUB_ROWS;
	float	   *gbest = b->gbest + (size_t) share * KM_SUB_ROWS;
	float	   *gsecond = b->gsecond + (size_t) share * KM_SUB_ROWS;
	int64_t    *counts = b->counts + (size_t) share * b->stride;

	for (int r = 0; r < nrun; r++)
	{
		int			s = b->segs[r];
		int64_t		changed = 0;
		int			g;

#define ROWS_D(DV) SegmentRows(b, r, DV, d, x, first, m, c, state_labels, state_dist, labels, \
							   dist, gx, gidx)
		switch (d)
		{
			case 1: g = ROWS_D(1); break;
			case 2: g = ROWS_D(2); break;
			case 3: g = ROWS_D(3); break;
			case 4: g = ROWS_D(4); break;
			case 5: g = ROWS_D(5); break;
			case 6: g = ROWS_D(6); break;
			case 7: g = ROWS_D(7); break;
			case 8: g = ROWS_D(8); break;
			case 10: g = ROWS_D(10); break;
			case 16: g = ROWS_D(16); break;
			default: g = ROWS_D(0); break;
		}
#undef ROWS_D
		if (g == 0)
			continue;
		/* the rows the bounds could not settle: every center, and the second least distance */
		km_argmin_small2(gx, g, d, c, 1, b->off + r, glab, gbest, gsecond);
		for (int q = 0; q < g; q++)
		{
			int64_t		i = gidx[q];
			int64_t		at = (first + i) * b->nseg + s;
			int32_t		local = glab[q] - b->off[r];
			double		second = ((double) gsecond[q] - eta) / (1.0 + eps);
			double		l = second > 0.0 ? sqrt(second) : 0.0;

			labels[i * nrun + r] = glab[q];
			dist[i * nrun + r] = gbest[q];
			changed += state_labels[at] != local;
			state_labels[at] = local;
			state_dist[at] = gbest[q];
			b->lower[at] = FloatDown(margin ? Down(l) : l, margin);
		}
		counts[1 + r] += g;
		counts[1 + nrun + r] += changed;
	}
	counts[0] += m;
}

void
km_bounds_end(KmBounds *b)
{
	if (!b->open)
		return;
	b->last_rows = 0;
	for (int q = 0; q < b->nshares; q++)
	{
		const int64_t *counts = b->counts + (size_t) q * b->stride;

		b->last_rows += counts[0];
		for (int r = 0; r < b->nrun; r++)
		{
			b->last_scanned[r] += counts[1 + r];
			b->last_changed[r] += counts[1 + b->nrun + r];
		}
	}
	/* a pass over every row leaves bounds against the centers it was given */
	if (b->last_rows == b->n)
		for (int r = 0; r < b->nrun; r++)
			b->valid[b->segs[r]] = 1;
	FreePass(b);
}
