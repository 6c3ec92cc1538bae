/*
 * km_softdtw.c -- soft-DTW values, gradients and the threaded passes over rows (km_softdtw.h).
 *
 * The cell.  R is computed in float64, each row over its band only.  The softmin of three
 * values takes out their least, m, so that no exponential overflows:
 *     softmin(a, b, c) = m - gamma log(1 + exp((m - o) / gamma) + exp((m - h) / gamma)),
 * o and h the other two (by min and max, without a branch); +inf (outside the band) contributes
 * exp(-inf) = 0.  This is tslearn's _softmin3 up to rounding, not bit for bit.
 *
 * exp and log.  They are the only transcendental functions, and ours, so that the scalar and
 * the vector code can run the same operations (libm has no vector form to match):
 *   Exp(x), x <= 0: x = k ln2 + r, k = round(x / ln2), |r| <= ln2 / 2, ln2 in two parts of
 *     which the first has 32 bits, so that k ln2_hi and x - k ln2_hi (Sterbenz) are exact and r
 *     has one rounding; exp(r) is a degree-11 minimax polynomial (relative error 3e-18), times
 *     2^k.  At or below -708, where exp(x) < 2^-1021, Exp gives 0 rather than a subnormal
 *     (subnormals cost microcode assists): such a weight only ever meets sums >= 1 in the
 *     forward pass, and in the backward pass it changes E by less than 2^-1021 of a successor's
 *     E, nowhere near what the gradient can show.
 *   Log(s), 1 <= s < 4 (1 plus two weights): s's mantissa rounded to 4 bits gives the nearest
 *     C = 2^e c, c = 1 + i/16 (the rounding may carry into e); s - C is exact (Sterbenz), so
 *     r = (s - C) / C, by a tabulated 1/C, has |r| <= 1/32 and two roundings, and
 *     log s = log C + log1p(r), log1p(r) = r + r^2 q(r), q a degree-7 minimax polynomial
 *     (absolute error 7e-16, so relative 2e-17 on log1p).
 *   Measured against long double over those ranges: Exp within 1.0 ulp (1.3 without FMA), Log
 *   within 1.8 (libm: 0.52), the most where log C and log1p(r) nearly cancel.  With hardware
 *   FMA the scalar code fuses exactly where the vector code does; without it (the portable
 *   build, which has no vector code) it multiplies and adds.  Nothing else may fuse, hence
 *   fp-contract=off.
 *
 * Strips.  A cell waits for its left neighbour through ~40 dependent operations (min, two exp,
 * log), so a row computed left to right is bound by latency, not by the arithmetic.  Rows are
 * computed in strips (STRIP_ONE rows, STRIP_LANES in the lanes), row i + s one column behind
 * row i + s - 1: the cells of a step are then independent, and each reads only what the step before produced, from
 * registers; only the strip's last row goes to memory, for the next strip.  The order in which
 * cells are computed changes no value.
 *
 * Lanes.  With AVX-512, LANES (row, center) pairs of one row length and one center length go
 * through the same strips in the lanes of a vector, with the same operations in the same order
 * as the scalar code, so a pair gets the same bits in a lane or alone: which rows share a
 * vector (it depends on the lengths in a piece) changes nothing.  test_softdtw checks it.
 * Unused lanes repeat the first pair.
 *
 * The gradient.  The forward pass keeps, for every cell of the band (stored row after row,
 * nothing outside), its softmin sm = R - cost.  The backward recursion's factor of E(s) in
 * E(p), exp((R(s) - cost(s) - R(p)) / gamma) for a successor s of p, is exp((sm(s) - R(p)) /
 * gamma): p's weight in s's softmin, free of the cancellation in R(s) - cost(s), and its
 * argument is <= 0 exactly, R(p) being one of the values sm(s) softly minimises.  A row's
 * sum over i of E(i, j) (c_j - x_i) collects in a buffer of its own, from 0, and 2 w times it
 * is added to the caller's gradient, on either path.  Keeping the three weights of each cell
 * instead, which spares the backward pass its three Exp a cell, was measured slower (the
 * forward pass then needs a third Exp and a division, and the traffic triples) and takes
 * three times the memory.
 *
 * Threads (km_crew.h): each pass cuts its rows into pieces; per-row results go to their rows,
 * and the objective's sums are added piece by piece, in row order within a piece, by the
 * caller's thread, so no result depends on the thread count.
 *
 * Resources.  Scratch is malloc'd per call and freed on every path.  Per thread, in doubles,
 * with L = LANES (1 without AVX-512), n the longest row, cells the most band cells of a row
 * (n lc without a band, about n (2 band + 1 + |n - lc|) with one):
 *     assign      L (n + 2 lc) + PIECE_ROWS k
 *     objective   L (n + cells + 4 lc) + PIECE_ROWS lc, so about 64 n lc bytes without a band
 *     pairwise    3 L n
 * and the objective shares L lc + ROUND_PIECES (lc + 1) more among its threads.  Where the
 * objective's lanes cannot have their scratch, its rows go one at a time (the same bits), in
 * cells + n + 4 lc + PIECE_ROWS lc.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC optimize ("fp-contract=off")
#endif

#include "km_softdtw.h"
#include "km_crew.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows of a piece of a pass: one vector of rows for the objective. */
#define PIECE_ROWS 8
/* Pieces of the objective summed together: their sums wait in scratch until added in order. */
#define ROUND_PIECES 256
/* Rows of R computed together, one column apart: independent chains for the core to overlap. */
#define STRIP_ONE 6
#define STRIP_LANES 4

#if defined(__AVX512F__)
#define LANES 8
/* Fewer pairs of one shape than this go one by one: a vector costs about as much as this many. */
#define LANE_MIN 2
#else
#define LANES 1
#endif

/* The vector code's fused multiply-add, exactly rounded; without FMA hardware, unfused. */
#if defined(__AVX512F__) || defined(__FMA__) || defined(FP_FAST_FMA)
#define FMA(a, b, c) fma(a, b, c)
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#endif

/* ---------------------------------------------------------------------------------------------
 * exp and log (see the header)
 * ------------------------------------------------------------------------------------------- */

#define EXP_CUT (-708.0)
#define LOG2E 1.4426950408889634
/* ln2 in two parts, the first of 32 bits so that k LN2_HI is exact for |k| < 2^21 */
#define LN2_HI 0.6931471803691238
#define LN2_LO 1.9082149292705877e-10
/* 1.5 2^52: adding and subtracting it rounds |t| < 2^51 to the nearest integer, ties to even */
#define ROUND_SHIFT 6755399441055744.0

/* exp(r) on [-ln2/2, ln2/2], c0 .. c11 */
static const double ExpPoly[12] = {
	1.0, 1.0, 0.50000000000000178, 0.16666666666666169, 0.04166666666649263,
	0.0083333333335594527, 0.0013888888951261221, 0.0001984126943243111,
	2.4801486481262875e-05, 2.7557622655147988e-06, 2.7632308232444558e-07,
	2.4994292310179795e-08
};

/* q(r) = (log1p(r) - r) / r^2 on [-1/32, 1/32], c0 .. c7 */
static const double LogPoly[8] = {
	-0.49999999999999928, 0.3333333333333281, -0.25000000002346345, 0.20000000005867949,
	-0.1666665467965634, 0.14285695754480732, -0.12519592800222876, 0.11133380945443687
};

/*
 * By bits 48 .. 52 of s's bits with 2^47 added: i (the mantissa's top 4 bits, rounded) and the
 * exponent's lowest bit, 0 for e = 1 (entries 0 .. 15) and 1 for e = 0 (16 .. 31).  With
 * c = 1 + i/16, LogInvC is 2^-e times 1/c rounded, LogC is log(2^e c) rounded.
 */
static const double LogInvC[32] __attribute__((aligned(64))) = {
	0.5, 0.47058823529411764, 0.44444444444444442, 0.42105263157894735, 0.40000000000000002,
	0.38095238095238093, 0.36363636363636365, 0.34782608695652173, 0.33333333333333331,
	0.32000000000000001, 0.30769230769230771, 0.29629629629629628, 0.2857142857142857,
	0.27586206896551724, 0.26666666666666666, 0.25806451612903225, 1, 0.94117647058823528,
	0.88888888888888884, 0.84210526315789469, 0.80000000000000004, 0.76190476190476186,
	0.72727272727272729, 0.69565217391304346, 0.66666666666666663, 0.64000000000000001,
	0.61538461538461542, 0.59259259259259256, 0.5714285714285714, 0.55172413793103448,
	0.53333333333333333, 0.5161290322580645
};
static const double LogC[32] __attribute__((aligned(64))) = {
	0.69314718055994529, 0.7537718023763802, 0.81093021621632877, 0.86499743748660451,
	0.91629073187415511, 0.96508089604358704, 1.0116009116784799, 1.0560526742493137,
	1.0986122886681098, 1.1394342831883648, 1.1786549963416462, 1.2163953243244932,
	1.2527629684953681, 1.2878542883066382, 1.3217558399823195, 1.3545456628053103, 0,
	0.06062462181643484, 0.11778303565638346, 0.17185025692665923, 0.22314355131420976,
	0.27193371548364176, 0.31845373111853459, 0.36290549368936847, 0.40546510810816438,
	0.44628710262841953, 0.48550781578170082, 0.52324814376454787, 0.55961578793542266,
	0.59470710774669278, 0.62860865942237409, 0.66139848224536502
};

/* exp(x) for x <= 0; 0 at or below EXP_CUT, and for NaN. */
static inline __attribute__((always_inline)) double
Exp1(double x)
{
	double		xc = x > EXP_CUT ? x : EXP_CUT;
	double		k = (xc * LOG2E + ROUND_SHIFT) - ROUND_SHIFT;
	double		r = FMA(k, -LN2_HI, xc);
	double		p = ExpPoly[11],
				scale;
	uint64_t	bits = (uint64_t) ((int64_t) k + 1023) << 52;

	r = FMA(k, -LN2_LO, r);
#pragma GCC unroll 11
	for (int q = 10; q >= 0; q--)
		p = FMA(p, r, ExpPoly[q]);
	memcpy(&scale, &bits, sizeof(scale));
	return x > EXP_CUT ? p * scale : 0.0;
}

/* log(s) for 1 <= s < 4. */
static inline __attribute__((always_inline)) double
Log1(double s)
{
	uint64_t	u;
	int			i;
	double		c,
				r,
				q = LogPoly[7];

	memcpy(&u, &s, sizeof(u));
	u += (uint64_t) 1 << 47;
	i = (int) (u >> 48) & 31;
	u &= ~(((uint64_t) 1 << 48) - 1);
	memcpy(&c, &u, sizeof(c));
	r = (s - c) * LogInvC[i];
#pragma GCC unroll 7
	for (int t = 6; t >= 0; t--)
		q = FMA(q, r, LogPoly[t]);
	return LogC[i] + FMA(r * r, q, r);
}

/*
 * softmin(up, left, diag) (see the header).  The ternaries are min_pd and max_pd operand for
 * operand, NaN and ties included.
 */
static inline __attribute__((always_inline)) double
SoftMin1(double up, double left, double diag, double gamma, double inv_gamma)
{
	double		lo = up < diag ? up : diag,
				hi = up > diag ? up : diag;
	double		m = lo < left ? lo : left,
				o = lo > left ? lo : left;
	double		s = (1.0 + Exp1((m - o) * inv_gamma)) + Exp1((m - hi) * inv_gamma);

	return FMA(-gamma, Log1(s), m);
}

#if defined(__AVX512F__)

/* Exp1 in each lane; where Exp1 clamps x, the mask zeroes the lane instead. */
static inline __attribute__((always_inline)) __m512d
ExpV(__m512d x)
{
	__m512d		k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(LOG2E)),
										 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512d		r = _mm512_fmadd_pd(k, _mm512_set1_pd(-LN2_HI), x);
	__m512d		p = _mm512_set1_pd(ExpPoly[11]);
	__mmask8	keep = _mm512_cmp_pd_mask(x, _mm512_set1_pd(EXP_CUT), _CMP_GT_OQ);

	r = _mm512_fmadd_pd(k, _mm512_set1_pd(-LN2_LO), r);
#pragma GCC unroll 11
	for (int q = 10; q >= 0; q--)
		p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(ExpPoly[q]));
	return _mm512_maskz_scalef_pd(keep, p, k);
}

/* Log1 in each lane: the tables' halves by the exponent's bit, each by the mantissa's 4. */
static inline __attribute__((always_inline)) __m512d
LogV(__m512d s)
{
	__m512i		u = _mm512_add_epi64(_mm512_castpd_si512(s), _mm512_set1_epi64((int64_t) 1 << 47));
	__m512i		idx = _mm512_srli_epi64(u, 48);
	__mmask8	e0 = _mm512_test_epi64_mask(u, _mm512_set1_epi64((int64_t) 1 << 52));
	__m512d		invc = _mm512_mask_blend_pd(e0,
											_mm512_permutex2var_pd(_mm512_load_pd(LogInvC), idx,
																   _mm512_load_pd(LogInvC + 8)),
											_mm512_permutex2var_pd(_mm512_load_pd(LogInvC + 16), idx,
																   _mm512_load_pd(LogInvC + 24)));
	__m512d		logc = _mm512_mask_blend_pd(e0,
											_mm512_permutex2var_pd(_mm512_load_pd(LogC), idx,
																   _mm512_load_pd(LogC + 8)),
											_mm512_permutex2var_pd(_mm512_load_pd(LogC + 16), idx,
																   _mm512_load_pd(LogC + 24)));
	__m512d		c = _mm512_castsi512_pd(_mm512_and_si512(u, _mm512_set1_epi64(-((int64_t) 1 << 48))));
	__m512d		r = _mm512_mul_pd(_mm512_sub_pd(s, c), invc);
	__m512d		q = _mm512_set1_pd(LogPoly[7]);

#pragma GCC unroll 7
	for (int t = 6; t >= 0; t--)
		q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(LogPoly[t]));
	return _mm512_add_pd(logc, _mm512_fmadd_pd(_mm512_mul_pd(r, r), q, r));
}

/* SoftMin1 in each lane. */
static inline __attribute__((always_inline)) __m512d
SoftMinV(__m512d up, __m512d left, __m512d diag, __m512d gamma, __m512d inv_gamma)
{
	__m512d		lo = _mm512_min_pd(up, diag),
				hi = _mm512_max_pd(up, diag);
	__m512d		m = _mm512_min_pd(lo, left),
				o = _mm512_max_pd(lo, left);
	__m512d		s = _mm512_add_pd(_mm512_add_pd(_mm512_set1_pd(1.0),
												ExpV(_mm512_mul_pd(_mm512_sub_pd(m, o), inv_gamma))),
								  ExpV(_mm512_mul_pd(_mm512_sub_pd(m, hi), inv_gamma)));

	return _mm512_fnmadd_pd(gamma, LogV(s), m);
}

#endif							/* __AVX512F__ */

/* ---------------------------------------------------------------------------------------------
 * One pair
 * ------------------------------------------------------------------------------------------- */

/* What every lane of a computation shares: the lengths, the band, gamma. */
typedef struct Shape
{
	int			lx;
	int			lc;
	int			band;
	double		gamma;
	double		inv_gamma;		/* capped at DBL_MAX, so that a tie is exp(0 * ...) = 1 */
} Shape;

static inline Shape
MakeShape(int lx, int lc, int band, double gamma)
{
	Shape		p;

	p.lx = lx;
	p.lc = lc;
	p.band = band;
	p.gamma = gamma;
	p.inv_gamma = 1.0 / gamma;
	if (!(p.inv_gamma <= DBL_MAX))
		p.inv_gamma = DBL_MAX;
	return p;
}

/* The cells of the band of a row of lx samples against a center of lc. */
static size_t
BandCells(int lx, int lc, int band)
{
	size_t		n = 0;

	for (int i = 0; i < lx; i++)
	{
		int			lo,
					hi;

		km_dtw_band(i, lx, lc, band, &lo, &hi);
		n += (size_t) (hi - lo + 1);
	}
	return n;
}

/* The sample t of a row that is float32 (xf) or float64 (xd). */
#define SAMPLE(xf, xd, t) ((xf) != NULL ? (double) (xf)[t] : (xd)[t])

/*
 * Rows i0 .. i0 + ns - 1 of R (ns <= STRIP_ONE), row i0 + s at column t - s in step t, from
 * rrow, which holds row i0 - 1 over [*plo, *phi] (an empty range above row 0), and into which
 * the strip's last row goes.  At step t row s needs, from step t - 1, row s - 1 at its column
 * (up) and itself one to the left (left), and from step t - 2 row s - 1 one to the left
 * (diag): cur and old, updated from the last row down.  Row 0 reads rrow one column ahead of
 * the last row's write, so a single buffer does.  With sm, every cell's softmin goes to
 * sm[*off ...], row after row over the band.
 */
static inline __attribute__((always_inline)) void
StripOne(const Shape *p, const float *xf, const double *xd, const double *c, int i0, int ns,
		 int *plo, int *phi, double *rrow, double *sm, size_t *off)
{
	int			lo[STRIP_ONE],
				hi[STRIP_ONE];
	double		xs[STRIP_ONE],
				cur[STRIP_ONE],
				old[STRIP_ONE];
	double	   *smr[STRIP_ONE];
	double		diag;
	int			tend;

	for (int s = 0; s < ns; s++)
	{
		km_dtw_band(i0 + s, p->lx, p->lc, p->band, &lo[s], &hi[s]);
		xs[s] = SAMPLE(xf, xd, i0 + s);
		cur[s] = old[s] = INFINITY;
		smr[s] = sm != NULL ? sm + (*off - (size_t) lo[s]) : NULL;
		*off += (size_t) (hi[s] - lo[s] + 1);
	}
	/* row 0's first diagonal neighbour; R(-1, -1) = 0 above row 0 */
	if (i0 == 0)
		diag = 0.0;
	else
		diag = lo[0] - 1 >= *plo && lo[0] - 1 <= *phi ? rrow[lo[0] - 1] : INFINITY;
	tend = hi[ns - 1] + ns - 1;
	for (int t = lo[0]; t <= tend; t++)
	{
		double		up;

#pragma GCC unroll 8
		for (int s = STRIP_ONE - 1; s > 0; s--)
		{
			int			j = t - s;
			double		v = INFINITY;

			if (s >= ns)
				continue;
			if (j >= lo[s] && j <= hi[s])
			{
				double		diff = xs[s] - c[j];
				double		soft = SoftMin1(cur[s - 1], cur[s], old[s - 1], p->gamma,
											p->inv_gamma);

				v = diff * diff + soft;
				if (sm != NULL)
					smr[s][j] = soft;
				if (s == ns - 1)
					rrow[j] = v;
			}
			old[s] = cur[s];
			cur[s] = v;
		}
		up = t >= *plo && t <= *phi ? rrow[t] : INFINITY;
		old[0] = cur[0];
		if (t <= hi[0])
		{
			double		diff = xs[0] - c[t];
			double		soft = SoftMin1(up, cur[0], diag, p->gamma, p->inv_gamma);

			cur[0] = diff * diff + soft;
			if (sm != NULL)
				smr[0][t] = soft;
			if (ns == 1)
				rrow[t] = cur[0];
		}
		else
			cur[0] = INFINITY;
		diag = up;
	}
	*plo = lo[ns - 1];
	*phi = hi[ns - 1];
}

/* Every row of R, the last into rrow (lc doubles); with sm, every cell's softmin. */
static void
Forward1(const Shape *p, const float *xf, const double *xd, const double *c, double *rrow,
		 double *sm)
{
	int			plo = 0,
				phi = -1;
	size_t		off = 0;
	int			i0 = 0;

	for (; i0 + STRIP_ONE <= p->lx; i0 += STRIP_ONE)
		StripOne(p, xf, xd, c, i0, STRIP_ONE, &plo, &phi, rrow, sm, &off);
	if (i0 < p->lx)
		StripOne(p, xf, xd, c, i0, p->lx - i0, &plo, &phi, rrow, sm, &off);
}

/*
 * E back from the last row (erows: 2 lc), and g[j] = sum_i E(i, j) (c_j - x_i) (lc, cleared
 * here), from the softmins sm of Forward1 (cells of them).  A successor's term is added in the
 * order down, diagonal, right.
 */
static void
Backward1(const Shape *p, const float *x, const double *c, const double *sm, size_t cells,
		  double *erows, double *g)
{
	int			lx = p->lx,
				lc = p->lc;
	int			nlo = 0,
				nhi = -1;
	size_t		noff = cells;	/* where row i + 1's band starts in sm */

	memset(g, 0, sizeof(double) * lc);
	for (int i = lx - 1; i >= 0; i--)
	{
		double	   *ecur = erows + (size_t) (i & 1) * lc,
				   *enext = erows + (size_t) ((i + 1) & 1) * lc;
		double		xi = (double) x[i];
		int			lo,
					hi;
		size_t		off;
		const double *smi,
				   *smn;

		km_dtw_band(i, lx, lc, p->band, &lo, &hi);
		off = noff - (size_t) (hi - lo + 1);
		smi = sm + (off - (size_t) lo);
		smn = sm + (noff - (size_t) nlo);
		for (int j = hi; j >= lo; j--)
		{
			double		diff = xi - c[j];
			double		rp = diff * diff + smi[j];
			double		e = i == lx - 1 && j == lc - 1 ? 1.0 : 0.0;

			if (j >= nlo && j <= nhi)
				e = FMA(enext[j], Exp1((smn[j] - rp) * p->inv_gamma), e);
			if (j + 1 >= nlo && j + 1 <= nhi)
				e = FMA(enext[j + 1], Exp1((smn[j + 1] - rp) * p->inv_gamma), e);
			if (j + 1 <= hi)
				e = FMA(ecur[j + 1], Exp1((smi[j + 1] - rp) * p->inv_gamma), e);
			ecur[j] = e;
			g[j] = FMA(-e, diff, g[j]);
		}
		nlo = lo;
		nhi = hi;
		noff = off;
	}
}

/* The doubles of Grad1's work: the softmins, then rrow, erows and g. */
static size_t
Grad1Work(size_t cells, int lc)
{
	return cells + 4 * (size_t) lc;
}

/* Soft-DTW of x and c, and into g (the end of work) sum_i E(i, j) (c_j - x_i). */
static double
Grad1(const Shape *p, const float *x, const double *c, double *work, size_t cells, double **g)
{
	double	   *rrow = work + cells,
			   *erows = rrow + p->lc;

	*g = erows + 2 * (size_t) p->lc;
	Forward1(p, x, NULL, c, rrow, work);
	Backward1(p, x, c, work, cells, erows, *g);
	return rrow[p->lc - 1];
}

double
km_softdtw(const float *x, int lx, const double *c, int lc, int band, double gamma, double *work)
{
	Shape		p = MakeShape(lx, lc, band, gamma);

	Forward1(&p, x, NULL, c, work, NULL);
	return work[lc - 1];
}

double
km_softdtw_d(const double *x, int lx, const double *c, int lc, int band, double gamma,
			 double *work)
{
	Shape		p = MakeShape(lx, lc, band, gamma);

	Forward1(&p, NULL, x, c, work, NULL);
	return work[lc - 1];
}

size_t
km_softdtw_grad_work(int lx, int lc)
{
	return Grad1Work((size_t) lx * lc, lc);
}

double
km_softdtw_grad(const float *x, int lx, const double *c, int lc, int band, double gamma,
				double w, double *grad, double *work)
{
	Shape		p = MakeShape(lx, lc, band, gamma);
	double	   *g;
	double		value = Grad1(&p, x, c, work, BandCells(lx, lc, band), &g);

	for (int j = 0; j < lc; j++)
		grad[j] += (2.0 * w) * g[j];
	return value;
}

/* ---------------------------------------------------------------------------------------------
 * LANES pairs at once: Forward1 and Backward1 with a vector for each double.  xt and ct hold
 * the lanes' samples side by side (sample t of lane l at t * LANES + l), as do rrow, sm, erows
 * and g.
 * ------------------------------------------------------------------------------------------- */

#if defined(__AVX512F__)

/* StripOne in the lanes. */
static inline __attribute__((always_inline)) void
StripV(const Shape *p, const double *xt, const double *ct, int i0, int ns, int *plo, int *phi,
	   double *rrow, double *sm, size_t *off)
{
	int			lo[STRIP_LANES],
				hi[STRIP_LANES];
	__m512d		xs[STRIP_LANES],
				cur[STRIP_LANES],
				old[STRIP_LANES];
	double	   *smr[STRIP_LANES];
	__m512d		diag;
	__m512d		inf = _mm512_set1_pd(INFINITY),
				gamma = _mm512_set1_pd(p->gamma),
				inv_gamma = _mm512_set1_pd(p->inv_gamma);
	int			tend;

	for (int s = 0; s < ns; s++)
	{
		km_dtw_band(i0 + s, p->lx, p->lc, p->band, &lo[s], &hi[s]);
		xs[s] = _mm512_load_pd(xt + (size_t) (i0 + s) * LANES);
		cur[s] = old[s] = inf;
		smr[s] = sm != NULL ? sm + (*off - (size_t) lo[s]) * LANES : NULL;
		*off += (size_t) (hi[s] - lo[s] + 1);
	}
	if (i0 == 0)
		diag = _mm512_setzero_pd();
	else
		diag = lo[0] - 1 >= *plo && lo[0] - 1 <= *phi ?
			_mm512_load_pd(rrow + (size_t) (lo[0] - 1) * LANES) : inf;
	tend = hi[ns - 1] + ns - 1;
	for (int t = lo[0]; t <= tend; t++)
	{
		__m512d		up;

#pragma GCC unroll 8
		for (int s = STRIP_LANES - 1; s > 0; s--)
		{
			int			j = t - s;
			__m512d		v = inf;

			if (s >= ns)
				continue;
			if (j >= lo[s] && j <= hi[s])
			{
				__m512d		diff = _mm512_sub_pd(xs[s], _mm512_load_pd(ct + (size_t) j * LANES));
				__m512d		soft = SoftMinV(cur[s - 1], cur[s], old[s - 1], gamma, inv_gamma);

				v = _mm512_add_pd(_mm512_mul_pd(diff, diff), soft);
				if (sm != NULL)
					_mm512_store_pd(smr[s] + (size_t) j * LANES, soft);
				if (s == ns - 1)
					_mm512_store_pd(rrow + (size_t) j * LANES, v);
			}
			old[s] = cur[s];
			cur[s] = v;
		}
		up = t >= *plo && t <= *phi ? _mm512_load_pd(rrow + (size_t) t * LANES) : inf;
		old[0] = cur[0];
		if (t <= hi[0])
		{
			__m512d		diff = _mm512_sub_pd(xs[0], _mm512_load_pd(ct + (size_t) t * LANES));
			__m512d		soft = SoftMinV(up, cur[0], diag, gamma, inv_gamma);

			cur[0] = _mm512_add_pd(_mm512_mul_pd(diff, diff), soft);
			if (sm != NULL)
				_mm512_store_pd(smr[0] + (size_t) t * LANES, soft);
			if (ns == 1)
				_mm512_store_pd(rrow + (size_t) t * LANES, cur[0]);
		}
		else
			cur[0] = inf;
		diag = up;
	}
	*plo = lo[ns - 1];
	*phi = hi[ns - 1];
}

/* Forward1 in the lanes. */
static void
ForwardV(const Shape *p, const double *xt, const double *ct, double *rrow, double *sm)
{
	int			plo = 0,
				phi = -1;
	size_t		off = 0;
	int			i0 = 0;

	for (; i0 + STRIP_LANES <= p->lx; i0 += STRIP_LANES)
		StripV(p, xt, ct, i0, STRIP_LANES, &plo, &phi, rrow, sm, &off);
	if (i0 < p->lx)
		StripV(p, xt, ct, i0, p->lx - i0, &plo, &phi, rrow, sm, &off);
}

/* Backward1 in the lanes. */
static void
BackwardV(const Shape *p, const double *xt, const double *ct, const double *sm, size_t cells,
		  double *erows, double *g)
{
	int			lx = p->lx,
				lc = p->lc;
	int			nlo = 0,
				nhi = -1;
	size_t		noff = cells;
	__m512d		inv_gamma = _mm512_set1_pd(p->inv_gamma);

	memset(g, 0, sizeof(double) * lc * LANES);
	for (int i = lx - 1; i >= 0; i--)
	{
		double	   *ecur = erows + (size_t) (i & 1) * lc * LANES,
				   *enext = erows + (size_t) ((i + 1) & 1) * lc * LANES;
		__m512d		xi = _mm512_load_pd(xt + (size_t) i * LANES);
		int			lo,
					hi;
		size_t		off;
		const double *smi,
				   *smn;

		km_dtw_band(i, lx, lc, p->band, &lo, &hi);
		off = noff - (size_t) (hi - lo + 1);
		smi = sm + (off - (size_t) lo) * LANES;
		smn = sm + (noff - (size_t) nlo) * LANES;
		for (int j = hi; j >= lo; j--)
		{
			size_t		o = (size_t) j * LANES;
			__m512d		diff = _mm512_sub_pd(xi, _mm512_load_pd(ct + o));
			__m512d		rp = _mm512_add_pd(_mm512_mul_pd(diff, diff), _mm512_load_pd(smi + o));
			__m512d		e = _mm512_set1_pd(i == lx - 1 && j == lc - 1 ? 1.0 : 0.0);

			if (j >= nlo && j <= nhi)
				e = _mm512_fmadd_pd(_mm512_load_pd(enext + o),
									ExpV(_mm512_mul_pd(_mm512_sub_pd(_mm512_load_pd(smn + o), rp),
													   inv_gamma)), e);
			if (j + 1 >= nlo && j + 1 <= nhi)
				e = _mm512_fmadd_pd(_mm512_load_pd(enext + o + LANES),
									ExpV(_mm512_mul_pd(_mm512_sub_pd(_mm512_load_pd(smn + o + LANES),
																	 rp), inv_gamma)), e);
			if (j + 1 <= hi)
				e = _mm512_fmadd_pd(_mm512_load_pd(ecur + o + LANES),
									ExpV(_mm512_mul_pd(_mm512_sub_pd(_mm512_load_pd(smi + o + LANES),
																	 rp), inv_gamma)), e);
			_mm512_store_pd(ecur + o, e);
			_mm512_store_pd(g + o, _mm512_fnmadd_pd(e, diff, _mm512_load_pd(g + o)));
		}
		nlo = lo;
		nhi = hi;
		noff = off;
	}
}

#endif							/* __AVX512F__ */

/* ---------------------------------------------------------------------------------------------
 * Passes
 * ------------------------------------------------------------------------------------------- */

static inline int
RowLen(const KmSeries *s, int64_t r)
{
	return (int) (s->off[r + 1] - s->off[r]);
}

static inline double
RowWeight(const KmSeries *s, int64_t r)
{
	return s->w != NULL ? (double) s->w[r] : 1.0;
}

static inline const float *
RowValues(const KmSeries *s, int64_t r)
{
	return s->values + s->off[r];
}

/* doubles rounded up to a whole cache line, so that every share's scratch starts on one */
static inline size_t
Lines(size_t n)
{
	return (n + 7) & ~(size_t) 7;
}

/* n doubles on a 64-byte boundary, or NULL */
static double *
AllocDoubles(size_t n)
{
	return aligned_alloc(64, sizeof(double) * Lines(n > 0 ? n : 1));
}

/* The length of the longest of rows rows[r0 .. r1) (rows NULL: r0 .. r1), at least 1. */
static int
Longest(const KmSeries *s, const int64_t *rows, int64_t r0, int64_t r1)
{
	int			n = 1;

	for (int64_t t = r0; t < r1; t++)
		if (RowLen(s, rows != NULL ? rows[t] : t) > n)
			n = RowLen(s, rows != NULL ? rows[t] : t);
	return n;
}

#if defined(__AVX512F__)
/* Row x (lx samples) into lane l of xt. */
static void
FillLane(double *xt, int l, const float *x, int lx)
{
	for (int t = 0; t < lx; t++)
		xt[(size_t) t * LANES + l] = (double) x[t];
}

/* Center c (lc samples) into lane l of ct. */
static void
FillLaneD(double *ct, int l, const double *c, int lc)
{
	for (int t = 0; t < lc; t++)
		ct[(size_t) t * LANES + l] = c[t];
}
#endif

typedef struct AssignArg
{
	const KmSeries *s;
	int64_t		r0,
				r1;
	const KmDtwCenters *cs;
	double		gamma;
	int32_t    *labels;
	double	   *value;
	double	   *work;			/* per share: vals (PIECE_ROWS k), then xt, ct and rrow */
	size_t		work_stride;
	int			maxlen;
} AssignArg;

/*
 * A piece of rows: every (row, center) pair's soft-DTW, the pairs of rows of one length
 * LANES at a time, then each row's least, the first on ties.
 */
static void
AssignPiece(void *arg, int64_t piece, int share)
{
	AssignArg  *a = arg;
	const KmDtwCenters *cs = a->cs;
	int			k = cs->k,
				lc = cs->lc;
	double	   *vals = a->work + a->work_stride * share;
	double	   *lanes = vals + Lines((size_t) PIECE_ROWS * k);
	int64_t		lo = a->r0 + piece * PIECE_ROWS,
				hi = lo + PIECE_ROWS < a->r1 ? lo + PIECE_ROWS : a->r1;
	int			nr = (int) (hi - lo);
	uint8_t		done[PIECE_ROWS] = {0};

	for (int t = 0; t < nr; t++)
	{
		int			lx = RowLen(a->s, lo + t);
		Shape		p = MakeShape(lx, lc, cs->band, a->gamma);
		int			grp[PIECE_ROWS],
					ng = 0;
		int			npairs;

		if (done[t])
			continue;
		for (int u = t; u < nr; u++)
			if (!done[u] && RowLen(a->s, lo + u) == lx)
			{
				grp[ng++] = u;
				done[u] = 1;
			}
		npairs = ng * k;
		for (int q0 = 0; q0 < npairs; q0 += LANES)
		{
			int			nl = npairs - q0 < LANES ? npairs - q0 : LANES;

#if defined(__AVX512F__)
			if (nl >= LANE_MIN)
			{
				double	   *xt = lanes,
						   *ct = xt + Lines((size_t) a->maxlen * LANES),
						   *rrow = ct + Lines((size_t) lc * LANES);
				double		out[LANES];

				for (int l = 0; l < LANES; l++)
				{
					int			q = q0 + (l < nl ? l : 0);

					FillLane(xt, l, RowValues(a->s, lo + grp[q / k]), lx);
					FillLaneD(ct, l, cs->c + (size_t) (q % k) * lc, lc);
				}
				ForwardV(&p, xt, ct, rrow, NULL);
				for (int l = 0; l < LANES; l++)
					out[l] = rrow[(size_t) (lc - 1) * LANES + l];
				for (int l = 0; l < nl; l++)
					vals[grp[(q0 + l) / k] * k + (q0 + l) % k] = out[l];
				continue;
			}
#endif
			for (int q = q0; q < q0 + nl; q++)
			{
				Forward1(&p, RowValues(a->s, lo + grp[q / k]), NULL, cs->c + (size_t) (q % k) * lc,
						 lanes, NULL);
				vals[grp[q / k] * k + q % k] = lanes[lc - 1];
			}
		}
	}
	for (int t = 0; t < nr; t++)
	{
		double		best = INFINITY;
		int32_t		label = 0;

		for (int j = 0; j < k; j++)
		{
			double		v = vals[t * k + j];

			if (j == 0 || v < best)
			{
				best = v;
				label = j;
			}
		}
		a->labels[lo + t] = label;
		a->value[lo + t] = best;
	}
}

KmStatus
km_softdtw_assign(const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs, double gamma,
				  int nthreads, int32_t *labels, double *value, KmError *err)
{
	AssignArg	a;
	int64_t		pieces = (r1 - r0 + PIECE_ROWS - 1) / PIECE_ROWS;
	int			nt = km_crew_size(nthreads, pieces);

	if (r1 <= r0)
		return KM_OK;
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.r0 = r0;
	a.r1 = r1;
	a.cs = cs;
	a.gamma = gamma;
	a.labels = labels;
	a.value = value;
	a.maxlen = Longest(s, NULL, r0, r1);
	a.work_stride = Lines((size_t) PIECE_ROWS * cs->k) + Lines((size_t) a.maxlen * LANES) +
		2 * Lines((size_t) cs->lc * LANES);
	a.work = AllocDoubles(a.work_stride * nt);
	if (a.work == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of soft-DTW scratch",
					   sizeof(double) * a.work_stride * nt);
	km_crew_run(nt, pieces, AssignPiece, &a);
	free(a.work);
	return KM_OK;
}

typedef struct ObjectiveArg
{
	const KmSeries *s;
	const int64_t *rows;
	int64_t		m;
	int64_t		first;			/* the round's first piece */
	const double *c;
	const double *ct;			/* c in every lane */
	int			lc;
	int			band;
	double		gamma;
	int			maxlen;
	size_t		cells;			/* the most band cells of a row */
	int			lanes;			/* whether work has room for LANES rows */
	double	   *work;			/* per share: the rows' g (PIECE_ROWS lc), then the pair's */
	size_t		work_stride;
	double	   *sums;			/* per piece of the round: f, then the gradient (1 + lc) */
} ObjectiveArg;

/*
 * A piece of rows: each row's value and g, the rows of one length LANES at a time, then
 * w value and 2 w g added up in row order.
 */
static void
ObjectivePiece(void *arg, int64_t piece, int share)
{
	ObjectiveArg *a = arg;
	int			lc = a->lc;
	double	   *rowg = a->work + a->work_stride * share;
	double	   *pair = rowg + Lines((size_t) PIECE_ROWS * lc);
	double	   *sum = a->sums + (size_t) (lc + 1) * piece;
	double		vals[PIECE_ROWS];
	int64_t		lo = (a->first + piece) * PIECE_ROWS,
				hi = lo + PIECE_ROWS < a->m ? lo + PIECE_ROWS : a->m;
	int			nr = (int) (hi - lo);
	uint8_t		done[PIECE_ROWS] = {0};

	for (int t = 0; t < nr; t++)
		done[t] = RowWeight(a->s, a->rows[lo + t]) == 0.0;
	for (int t = 0; t < nr; t++)
	{
		int			lx = RowLen(a->s, a->rows[lo + t]);
		Shape		p = MakeShape(lx, lc, a->band, a->gamma);
		size_t		cells = BandCells(lx, lc, a->band);
		int			grp[PIECE_ROWS],
					ng = 0;

		if (done[t])
			continue;
		for (int u = t; u < nr; u++)
			if (!done[u] && RowLen(a->s, a->rows[lo + u]) == lx)
			{
				grp[ng++] = u;
				done[u] = 1;
			}
#if defined(__AVX512F__)
		if (a->lanes && ng >= LANE_MIN)
		{
			double	   *xt = pair,
					   *sm = xt + Lines((size_t) a->maxlen * LANES),
					   *rrow = sm + Lines(a->cells * LANES),
					   *erows = rrow + Lines((size_t) lc * LANES),
					   *g = erows + Lines((size_t) 2 * lc * LANES);

			for (int l = 0; l < LANES; l++)
				FillLane(xt, l, RowValues(a->s, a->rows[lo + grp[l < ng ? l : 0]]), lx);
			ForwardV(&p, xt, a->ct, rrow, sm);
			BackwardV(&p, xt, a->ct, sm, cells, erows, g);
			for (int l = 0; l < ng; l++)
			{
				double	   *rg = rowg + (size_t) grp[l] * lc;

				vals[grp[l]] = rrow[(size_t) (lc - 1) * LANES + l];
				for (int j = 0; j < lc; j++)
					rg[j] = g[(size_t) j * LANES + l];
			}
			continue;
		}
#endif
		for (int l = 0; l < ng; l++)
		{
			double	   *g;

			vals[grp[l]] = Grad1(&p, RowValues(a->s, a->rows[lo + grp[l]]), a->c, pair, cells, &g);
			memcpy(rowg + (size_t) grp[l] * lc, g, sizeof(double) * lc);
		}
	}
	memset(sum, 0, sizeof(double) * (lc + 1));
	for (int t = 0; t < nr; t++)
	{
		double		wt = RowWeight(a->s, a->rows[lo + t]);
		const double *rg = rowg + (size_t) t * lc;

		if (wt == 0.0)
			continue;
		sum[0] += wt * vals[t];
		for (int j = 0; j < lc; j++)
			sum[1 + j] += (2.0 * wt) * rg[j];
	}
}

/* The doubles of a share's scratch, with room for the lanes or for one row. */
static size_t
ObjectiveStride(const ObjectiveArg *a, int lanes)
{
	size_t		l = lanes ? LANES : 1;

	return Lines((size_t) PIECE_ROWS * a->lc) + Lines((size_t) a->maxlen * l) +
		Lines(a->cells * l) + 4 * Lines((size_t) a->lc * l);
}

KmStatus
km_softdtw_objective(const KmSeries *s, const int64_t *rows, int64_t m, const double *c, int lc,
					 int band, double gamma, int nthreads, double *f, double *grad, KmError *err)
{
	ObjectiveArg a;
	int64_t		pieces = (m + PIECE_ROWS - 1) / PIECE_ROWS;
	int64_t		round = pieces < ROUND_PIECES ? pieces : ROUND_PIECES;
	int			nt = km_crew_size(nthreads, round);
	double	   *ct;
	size_t		shared;

	if (m <= 0)
		return KM_OK;
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.rows = rows;
	a.m = m;
	a.c = c;
	a.lc = lc;
	a.band = band;
	a.gamma = gamma;
	a.maxlen = Longest(s, rows, 0, m);
	for (int64_t t = 0; t < m; t++)
	{
		size_t		cells = BandCells(RowLen(s, rows[t]), lc, band);

		if (cells > a.cells)
			a.cells = cells;
	}
	/* without room for the lanes, one row at a time: the same bits */
	a.lanes = LANES > 1;
	a.work_stride = ObjectiveStride(&a, a.lanes);
	a.work = AllocDoubles(a.work_stride * nt);
	if (a.work == NULL && a.lanes)
	{
		a.lanes = 0;
		a.work_stride = ObjectiveStride(&a, 0);
		a.work = AllocDoubles(a.work_stride * nt);
	}
	shared = Lines((size_t) lc * LANES) + (size_t) (lc + 1) * round;
	ct = AllocDoubles(shared);
	if (a.work == NULL || ct == NULL)
	{
		free(a.work);
		free(ct);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of soft-DTW scratch",
					   sizeof(double) * (a.work_stride * nt + shared));
	}
	for (int j = 0; j < lc; j++)
		for (int l = 0; l < LANES; l++)
			ct[(size_t) j * LANES + l] = c[j];
	a.ct = ct;
	a.sums = ct + Lines((size_t) lc * LANES);
	for (a.first = 0; a.first < pieces; a.first += round)
	{
		int64_t		np = pieces - a.first < round ? pieces - a.first : round;

		km_crew_run(nt, np, ObjectivePiece, &a);
		for (int64_t p = 0; p < np; p++)
		{
			const double *sum = a.sums + (size_t) (lc + 1) * p;

			*f += sum[0];
			for (int j = 0; j < lc; j++)
				grad[j] += sum[1 + j];
		}
	}
	free(a.work);
	free(ct);
	return KM_OK;
}

typedef struct PairArg
{
	const KmSeries *s;
	const int64_t *rows;
	int64_t		m;
	int64_t		a0;
	const int64_t *bylen;		/* 0 .. m - 1 by row length, then index */
	int			band;
	double		gamma;
	double	   *out;
	double	   *work;			/* per share: xt, ct and rrow, LANES maxlen each */
	size_t		work_stride;
	int			maxlen;
} PairArg;

/*
 * Row a against every row b >= a: the b of one length LANES at a time (row a in every lane,
 * the b as centers), in the order of bylen.
 */
static void
PairPiece(void *arg, int64_t piece, int share)
{
	PairArg    *p = arg;
	int64_t		a = p->a0 + piece;
	const float *xa = RowValues(p->s, p->rows[a]);
	int			la = RowLen(p->s, p->rows[a]);
	double	   *xt = p->work + p->work_stride * share,
			   *ct = xt + Lines((size_t) p->maxlen * LANES),
			   *rrow = ct + Lines((size_t) p->maxlen * LANES);
	int64_t		q = 0;

#if defined(__AVX512F__)
	for (int l = 0; l < LANES; l++)
		FillLane(xt, l, xa, la);
#endif
	while (q < p->m)
	{
		int64_t		grp[LANES];
		int			nl = 0,
					lb;
		Shape		sh;

		for (; q < p->m && p->bylen[q] < a; q++)
			;
		if (q == p->m)
			break;
		lb = RowLen(p->s, p->rows[p->bylen[q]]);
		for (; q < p->m && nl < LANES && RowLen(p->s, p->rows[p->bylen[q]]) == lb; q++)
			if (p->bylen[q] >= a)
				grp[nl++] = p->bylen[q];
		sh = MakeShape(la, lb, p->band, p->gamma);
#if defined(__AVX512F__)
		if (nl >= LANE_MIN)
		{
			for (int l = 0; l < LANES; l++)
				FillLane(ct, l, RowValues(p->s, p->rows[grp[l < nl ? l : 0]]), lb);
			ForwardV(&sh, xt, ct, rrow, NULL);
			for (int l = 0; l < nl; l++)
				p->out[a * p->m + grp[l]] = rrow[(size_t) (lb - 1) * LANES + l];
			continue;
		}
#endif
		for (int l = 0; l < nl; l++)
		{
			const float *xb = RowValues(p->s, p->rows[grp[l]]);

			for (int t = 0; t < lb; t++)
				ct[t] = (double) xb[t];
			Forward1(&sh, xa, NULL, ct, rrow, NULL);
			p->out[a * p->m + grp[l]] = rrow[lb - 1];
		}
	}
}

/* A row of the pairwise pass, for sorting by length */
typedef struct LenIndex
{
	int64_t		len;
	int64_t		t;
} LenIndex;

static int
ByLength(const void *x, const void *y)
{
	const LenIndex *a = x,
			   *b = y;

	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->t < b->t ? -1 : a->t > b->t;
}

KmStatus
km_softdtw_pairwise(const KmSeries *s, const int64_t *rows, int64_t m, int64_t a0, int64_t a1,
					int band, double gamma, int nthreads, double *out, KmError *err)
{
	PairArg		p;
	int			nt = km_crew_size(nthreads, a1 - a0);
	LenIndex   *sorted;
	int64_t    *bylen;

	if (a1 <= a0)
		return KM_OK;
	memset(&p, 0, sizeof(p));
	p.s = s;
	p.rows = rows;
	p.m = m;
	p.a0 = a0;
	p.band = band;
	p.gamma = gamma;
	p.out = out;
	p.maxlen = Longest(s, rows, 0, m);
	p.work_stride = 3 * Lines((size_t) p.maxlen * LANES);
	p.work = AllocDoubles(p.work_stride * nt);
	sorted = malloc(sizeof(LenIndex) * (size_t) m);
	bylen = malloc(sizeof(int64_t) * (size_t) m);
	if (p.work == NULL || sorted == NULL || bylen == NULL)
	{
		free(p.work);
		free(sorted);
		free(bylen);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of soft-DTW scratch",
					   sizeof(double) * p.work_stride * nt +
					   (sizeof(LenIndex) + sizeof(int64_t)) * (size_t) m);
	}
	for (int64_t t = 0; t < m; t++)
	{
		sorted[t].len = RowLen(s, rows[t]);
		sorted[t].t = t;
	}
	qsort(sorted, (size_t) m, sizeof(LenIndex), ByLength);
	for (int64_t t = 0; t < m; t++)
		bylen[t] = sorted[t].t;
	free(sorted);
	p.bylen = bylen;
	km_crew_run(nt, a1 - a0, PairPiece, &p);
	free(p.work);
	free(bylen);
	return KM_OK;
}
