/*
 * km_lbfgs.c -- L-BFGS for smooth unconstrained problems (km_lbfgs.h), taking the iterates
 * scipy's L-BFGS-B (scipy 1.17, Byrd, Lu, Nocedal & Zhu 1995, with Morales & Nocedal's 2011
 * remark) takes when no variable is bounded.
 *
 * The direction.  Without bounds the generalized Cauchy point and the subspace minimisation of
 * L-BFGS-B collapse to the quasi-Newton point z = x - H g, H the inverse of the compact
 * limited-memory matrix with B0 = theta I, theta = y'y / s'y of the newest pair (1 with no
 * pairs, so the first direction is -g).  That H is the one the two-loop recursion (Nocedal
 * 1980) applies with H0 = I / theta, which is how it is computed here.  As in L-BFGS-B the
 * point z is formed first and the direction is d = z - x in floating point, and a unit step
 * goes to z itself.
 *
 * The line search is Moré & Thuente's (1994), as MINPACK-2's dcsrch and dcstep state it, with
 * L-BFGS-B's constants: sufficient decrease 1e-3, curvature 0.9, relative interval width 0.1,
 * steps in [0, 1e10].  The first step is min(1 / |d|_2, 1e10) until a step has been accepted,
 * 1 after.  A search ends with a step accepted when both Wolfe conditions hold, and also when
 * dcsrch gives up with a warning (rounding, interval too narrow, step at a limit): L-BFGS-B
 * takes that step as it is.  It fails when the direction is not one of descent (g'd >= 0)
 * or when it would need more than max_ls evaluations; then x, f and g go back to the start of
 * the search and, if pairs are kept, the memory is dropped and the search retried along -g,
 * else the minimiser stops (KM_LBFGS_LINE_SEARCH).  Neither the retry nor the failure counts
 * as an iteration.
 *
 * Memory.  s = stp d and y = g_new - g_old; s'y is taken as stp (g_new'd - g_old'd), from the
 * two directional derivatives the line search computed, as L-BFGS-B does.  The pair is
 * skipped when s'y <= eps (-g_old's) (eps the machine epsilon), else it replaces the oldest
 * once m are kept.
 *
 * Stopping, in scipy's order after each accepted step: max_iter steps, more than max_fun
 * evaluations, max_i |g_i| <= gtol (also tested at x0; a NaN never passes), then
 * f_old - f <= ftol max(|f_old|, |f|, 1).  scipy counts an evaluation only when x differs
 * from the last point evaluated (its ScalarFunction caches one point): a line search that
 * returns to the point it just evaluated, which happens when its step shrinks below the
 * resolution of x, calls nothing here either.
 *
 * What is not matched.  Rounding: the two-loop recursion, the order of the sums and BLAS's
 * norms differ from L-BFGS-B's by rounding, so iterates agree to rounding amplified by the
 * conditioning, not bit for bit.  L-BFGS-B also drops its memory when a Cholesky factor of its
 * middle matrices is not positive definite; the recursion has no such factor.  A pair whose
 * s'y is NaN is skipped here and taken there.  On KM_LBFGS_LINE_SEARCH scipy reports the f
 * of the last rejected trial with the restored x; here f is that of x.
 *
 * Resources: none.  Every array is in the caller's work, every scalar on the stack, so fn may
 * longjmp out at any point; reentrant, single-threaded.
 */
#include "km_lbfgs.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* L-BFGS-B's line search constants (lnsrlb) and dcsrch's extrapolation factors. */
#define LS_FTOL		1e-3
#define LS_GTOL		0.9
#define LS_XTOL		0.1
#define LS_STPMAX	1e10
#define LS_XTRAPL	1.1
#define LS_XTRAPU	4.0

/* The Moré-Thuente state between evaluations: the interval [stx, sty] and its values. */
typedef struct LineSearch
{
	int			brackt;			/* a minimiser lies between stx and sty */
	int			stage;			/* 1 until psi(stp) <= 0 with f'(stp) >= 0 has been seen */
	double		finit,
				ginit,
				gtest;			/* LS_FTOL ginit: the slope of the sufficient decrease line */
	double		stx,
				fx,
				gx;				/* the step with the least f so far */
	double		sty,
				fy,
				gy;				/* the other end of the interval */
	double		stmin,
				stmax,			/* the range the next step may take */
				width,
				width1;			/* the interval's last two widths, to force bisection */
} LineSearch;

/* The scaled square-root term of the cubic's minimiser; clamp: 0 where it would be negative. */
static double
CubicGamma(double theta, double da, double db, int clamp)
{
	double		s = fmax(fabs(theta), fmax(fabs(da), fabs(db)));
	double		v = (theta / s) * (theta / s) - (da / s) * (db / s);

	return s * sqrt(clamp ? fmax(0.0, v) : v);
}

/*
 * The next trial step (dcstep, Moré & Thuente 1994 section 4): from the best step stx and the
 * other end sty, with values f and derivatives g, and the new trial stp with fp and dp,
 * updates the interval and sets *stp to a safeguarded cubic or quadratic minimiser in
 * [lo, hi].  The four cases are the paper's; their formulas and order of operations are
 * MINPACK-2's, to reproduce its steps.
 */
static void
TrialStep(LineSearch *ls, double *fx, double *gx, double *fy, double *gy, double *stp,
		  double fp, double dp, double lo, double hi)
{
	double		stx = ls->stx,
				sty = ls->sty,
				st = *stp;
	double		sgnd = dp * (*gx / fabs(*gx));
	double		theta,
				gamma,
				p,
				q,
				r,
				stpc,
				stpq,
				stpf;

	if (fp > *fx)
	{
		/* higher f: bracketed; the cubic step if nearer stx, else halfway to the quadratic */
		theta = 3.0 * (*fx - fp) / (st - stx) + *gx + dp;
		gamma = CubicGamma(theta, *gx, dp, 0);
		if (st < stx)
			gamma = -gamma;
		p = (gamma - *gx) + theta;
		q = ((gamma - *gx) + gamma) + dp;
		r = p / q;
		stpc = stx + r * (st - stx);
		stpq = stx + ((*gx / ((*fx - fp) / (st - stx) + *gx)) / 2.0) * (st - stx);
		stpf = fabs(stpc - stx) < fabs(stpq - stx) ? stpc : stpc + (stpq - stpc) / 2.0;
		ls->brackt = 1;
	}
	else if (sgnd < 0.0)
	{
		/* lower f, slopes of opposite signs: bracketed; the farther of cubic and secant */
		theta = 3.0 * (*fx - fp) / (st - stx) + *gx + dp;
		gamma = CubicGamma(theta, *gx, dp, 0);
		if (st > stx)
			gamma = -gamma;
		p = (gamma - dp) + theta;
		q = ((gamma - dp) + gamma) + *gx;
		r = p / q;
		stpc = st + r * (stx - st);
		stpq = st + (dp / (dp - *gx)) * (stx - st);
		stpf = fabs(stpc - st) > fabs(stpq - st) ? stpc : stpq;
		ls->brackt = 1;
	}
	else if (fabs(dp) < fabs(*gx))
	{
		/*
		 * Lower f, same sign, slope shrinking.  The cubic's minimiser counts only when the
		 * cubic tends to infinity in the direction of the step (gamma != 0) and lies beyond
		 * stp; otherwise the step goes to the limit.
		 */
		theta = 3.0 * (*fx - fp) / (st - stx) + *gx + dp;
		gamma = CubicGamma(theta, *gx, dp, 1);
		if (st > stx)
			gamma = -gamma;
		p = (gamma - dp) + theta;
		q = (gamma + (*gx - dp)) + gamma;
		r = p / q;
		if (r < 0.0 && gamma != 0.0)
			stpc = st + r * (stx - st);
		else
			stpc = st > stx ? hi : lo;
		stpq = st + (dp / (dp - *gx)) * (stx - st);
		if (ls->brackt)
		{
			/* the nearer of the two, but no farther than 0.66 of the way to sty */
			stpf = fabs(stpc - st) < fabs(stpq - st) ? stpc : stpq;
			if (st > stx)
				stpf = fmin(st + 0.66 * (sty - st), stpf);
			else
				stpf = fmax(st + 0.66 * (sty - st), stpf);
		}
		else
		{
			stpf = fabs(stpc - st) > fabs(stpq - st) ? stpc : stpq;
			stpf = fmax(lo, fmin(hi, stpf));
		}
	}
	else
	{
		/* lower f, same sign, slope not shrinking: the cubic through sty, or the limit */
		if (ls->brackt)
		{
			theta = 3.0 * (fp - *fy) / (sty - st) + *gy + dp;
			gamma = CubicGamma(theta, *gy, dp, 0);
			if (st > sty)
				gamma = -gamma;
			p = (gamma - dp) + theta;
			q = ((gamma - dp) + gamma) + *gy;
			r = p / q;
			stpf = st + r * (sty - st);
		}
		else
			stpf = st > stx ? hi : lo;
	}

	/* the new interval: stp replaces the end it is better or worse than */
	if (fp > *fx)
	{
		ls->sty = st;
		*fy = fp;
		*gy = dp;
	}
	else
	{
		if (sgnd < 0.0)
		{
			ls->sty = stx;
			*fy = *fx;
			*gy = *gx;
		}
		ls->stx = st;
		*fx = fp;
		*gx = dp;
	}
	*stp = stpf;
}

/* Starts a search from f(0) = f0 with slope g0 < 0; the first trial is the caller's stp. */
static void
LineSearchStart(LineSearch *ls, double f0, double g0, double stp)
{
	ls->brackt = 0;
	ls->stage = 1;
	ls->finit = f0;
	ls->ginit = g0;
	ls->gtest = LS_FTOL * g0;
	ls->width = LS_STPMAX;
	ls->width1 = LS_STPMAX / 0.5;
	ls->stx = ls->sty = 0.0;
	ls->fx = ls->fy = f0;
	ls->gx = ls->gy = g0;
	ls->stmin = 0.0;
	ls->stmax = stp + LS_XTRAPU * stp;
}

/*
 * Given f and slope g at the trial *stp: 1 when the step is to be taken (the Wolfe conditions
 * hold, or dcsrch's warnings say no better step can be found), else 0 with the next trial in
 * *stp (dcsrch's body).
 */
static int
LineSearchNext(LineSearch *ls, double f, double g, double *stp)
{
	double		ftest = ls->finit + *stp * ls->gtest;

	if (ls->stage == 1 && f <= ftest && g >= 0.0)
		ls->stage = 2;

	/* the Wolfe conditions, or a warning: rounding, a narrow interval, a step at a limit */
	if (f <= ftest && fabs(g) <= LS_GTOL * -ls->ginit)
		return 1;
	if (ls->brackt && (*stp <= ls->stmin || *stp >= ls->stmax))
		return 1;
	if (ls->brackt && ls->stmax - ls->stmin <= LS_XTOL * ls->stmax)
		return 1;
	if (*stp == LS_STPMAX && f <= ftest && g <= ls->gtest)
		return 1;
	if (*stp == 0.0 && (f > ftest || g >= ls->gtest))
		return 1;

	if (ls->stage == 1 && f <= ls->fx && f > ftest)
	{
		/*
		 * Lower f than the best but not low enough: step on psi(a) = f(a) - f(0) - a gtest
		 * instead, whose minimiser is where sufficient decrease begins to hold.
		 */
		double		fxm = ls->fx - ls->stx * ls->gtest,
					fym = ls->fy - ls->sty * ls->gtest,
					gxm = ls->gx - ls->gtest,
					gym = ls->gy - ls->gtest;

		TrialStep(ls, &fxm, &gxm, &fym, &gym, stp, f - *stp * ls->gtest, g - ls->gtest,
				  ls->stmin, ls->stmax);
		ls->fx = fxm + ls->stx * ls->gtest;
		ls->fy = fym + ls->sty * ls->gtest;
		ls->gx = gxm + ls->gtest;
		ls->gy = gym + ls->gtest;
	}
	else
		TrialStep(ls, &ls->fx, &ls->gx, &ls->fy, &ls->gy, stp, f, g, ls->stmin, ls->stmax);

	if (ls->brackt)
	{
		/* bisect when the interval has not shrunk to 2/3 over two steps */
		if (fabs(ls->sty - ls->stx) >= 0.66 * ls->width1)
			*stp = ls->stx + 0.5 * (ls->sty - ls->stx);
		ls->width1 = ls->width;
		ls->width = fabs(ls->sty - ls->stx);
		ls->stmin = fmin(ls->stx, ls->sty);
		ls->stmax = fmax(ls->stx, ls->sty);
	}
	else
	{
		ls->stmin = *stp + LS_XTRAPL * (*stp - ls->stx);
		ls->stmax = *stp + LS_XTRAPU * (*stp - ls->stx);
	}
	*stp = fmin(fmax(*stp, 0.0), LS_STPMAX);

	/* no progress possible: try the best step again, whose value ends the search next time */
	if (ls->brackt && (*stp <= ls->stmin || *stp >= ls->stmax ||
					   ls->stmax - ls->stmin <= LS_XTOL * ls->stmax))
		*stp = ls->stx;
	return 0;
}

/* a'b, summed in index order. */
static double
Dot(const double *a, const double *b, int n)
{
	double		s = 0.0;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* a == b element by element, as numpy's array_equal has it (NaN unequal, -0 == 0). */
static int
Equal(const double *a, const double *b, int n)
{
	for (int i = 0; i < n; i++)
		if (!(a[i] == b[i]))
			return 0;
	return 1;
}

/* max_i |g_i|, or NaN when some g_i is: a NaN gradient must never pass the test. */
static double
InfNorm(const double *g, int n)
{
	double		norm = 0.0;

	for (int i = 0; i < n; i++)
	{
		if (isnan(g[i]))
			return g[i];
		norm = fmax(norm, fabs(g[i]));
	}
	return norm;
}

/*
 * d = -H g by the two-loop recursion over the col pairs kept, oldest in slot head, H0 = I /
 * theta.  alpha holds m doubles.
 */
static void
Direction(int n, int m, const double *g, const double *s, const double *y, const double *rho,
		  int col, int head, double theta, double *alpha, double *d)
{
	for (int i = 0; i < n; i++)
		d[i] = -g[i];
	for (int k = col - 1; k >= 0; k--)
	{
		int			j = (head + k) % m;
		const double *sj = s + (int64_t) j * n,
				   *yj = y + (int64_t) j * n;
		double		a = rho[j] * Dot(sj, d, n);

		alpha[j] = a;
		for (int i = 0; i < n; i++)
			d[i] -= a * yj[i];
	}
	for (int i = 0; i < n; i++)
		d[i] /= theta;
	for (int k = 0; k < col; k++)
	{
		int			j = (head + k) % m;
		const double *sj = s + (int64_t) j * n,
				   *yj = y + (int64_t) j * n;
		double		b = alpha[j] - rho[j] * Dot(yj, d, n);

		for (int i = 0; i < n; i++)
			d[i] += b * sj[i];
	}
}

void
km_lbfgs_defaults(KmLbfgsOptions *o, double tol, int max_iter)
{
	o->m = 10;
	o->max_iter = max_iter;
	o->max_fun = 15000;
	o->max_ls = 20;
	/* scipy hands ftol on as factr = ftol / eps and tests factr * eps: exact, eps being 2^-52 */
	o->ftol = tol;
	o->gtol = tol;
}

int64_t
km_lbfgs_work_doubles(int n, int m)
{
	int64_t		small;

	if (n < 1 || m < 1)
		return -1;
	small = 4 * (int64_t) n + 2 * (int64_t) m;
	if ((int64_t) n * m > (INT64_MAX - small) / 2)
		return -1;
	return 2 * (int64_t) n * m + small;
}

void
km_lbfgs(int n, double *x, KmLbfgsFn fn, void *arg, const KmLbfgsOptions *o, double *work,
		 KmLbfgsResult *res)
{
	int			m = o->m;
	double	   *g,
			   *d,
			   *xold,
			   *gold,
			   *s,
			   *y,
			   *rho,
			   *alpha;
	int			col = 0,		/* pairs kept */
				head = 0;		/* the slot of the oldest */
	double		theta = 1.0,
				f,
				fold;
	int			xold_evaluated;	/* fn was last called at xold (the start of a search) */

	res->iters = 0;
	res->nfev = 0;
	res->f = NAN;
	if (km_lbfgs_work_doubles(n, m) < 0 || o->max_ls < 1)
	{
		res->reason = KM_LBFGS_INVALID;
		return;
	}
	g = work;
	d = g + n;
	xold = d + n;
	gold = xold + n;
	s = gold + n;
	y = s + (int64_t) m * n;
	rho = y + (int64_t) m * n;
	alpha = rho + m;

	f = fn(x, g, arg);
	res->nfev = 1;
	xold_evaluated = 1;
	if (InfNorm(g, n) <= o->gtol)
	{
		res->reason = KM_LBFGS_GTOL;
		goto done;
	}

	for (;;)
	{
		LineSearch ls;
		double		dnorm,
					stp,
					gd,
					gdold,
					sy,
					yy;
		int			nls = 0;

		memcpy(xold, x, sizeof(double) * n);
		memcpy(gold, g, sizeof(double) * n);
		fold = f;

		/* the point z = x - H g goes into x, the direction d = z - x as it rounds */
		Direction(n, m, g, s, y, rho, col, head, theta, alpha, d);
		for (int i = 0; i < n; i++)
		{
			x[i] = xold[i] + d[i];
			d[i] = x[i] - xold[i];
		}
		dnorm = sqrt(Dot(d, d, n));
		stp = res->iters == 0 ? fmin(1.0 / dnorm, LS_STPMAX) : 1.0;

		/* a NaN slope does not count as ascent: the search runs, and fails on its own */
		gd = gdold = Dot(g, d, n);
		if (gd >= 0.0)
			goto search_failed;
		LineSearchStart(&ls, f, gd, stp);
		for (nls = 0;; nls++)
		{
			const double *prev = nls == 0 ? xold : x;	/* the point fn was last called at */
			int			same = nls > 0 || xold_evaluated;

			if (nls >= o->max_ls)
				goto search_failed;
			for (int i = 0; i < n; i++)
			{
				/* a unit step goes to z, which x holds for the first trial */
				double		xi = nls == 0 && stp == 1.0 ? x[i] : stp * d[i] + xold[i];

				same = same && xi == prev[i];
				x[i] = xi;
			}
			/* scipy's cache: no call at the point just evaluated, whose f and g are in hand */
			if (!same)
			{
				f = fn(x, g, arg);
				res->nfev++;
			}
			gd = Dot(g, d, n);
			if (LineSearchNext(&ls, f, gd, &stp))
				break;
		}
		xold_evaluated = 1;

		res->iters++;
		if (res->iters >= o->max_iter)
		{
			res->reason = KM_LBFGS_MAX_ITER;
			goto done;
		}
		if (res->nfev > o->max_fun)
		{
			res->reason = KM_LBFGS_MAX_FUN;
			goto done;
		}
		if (InfNorm(g, n) <= o->gtol)
		{
			res->reason = KM_LBFGS_GTOL;
			goto done;
		}
		if (fold - f <= o->ftol * fmax(fmax(fabs(fold), fabs(f)), 1.0))
		{
			res->reason = KM_LBFGS_FTOL;
			goto done;
		}

		/*
		 * The pair, unless s'y is too small a fraction of the decrease -g_old's predicted
		 * (or NaN): that keeps H positive definite.
		 */
		sy = (gd - gdold) * stp;
		if (sy > DBL_EPSILON * (-gdold * stp))
		{
			int			slot = (head + col) % m;
			double	   *sn = s + (int64_t) slot * n,
					   *yn = y + (int64_t) slot * n;

			if (col == m)
				head = (head + 1) % m;
			else
				col++;
			for (int i = 0; i < n; i++)
			{
				sn[i] = stp * d[i];
				yn[i] = g[i] - gold[i];
			}
			yy = Dot(yn, yn, n);
			rho[slot] = 1.0 / sy;
			theta = yy / sy;
		}
		continue;

search_failed:
		/* back to the start of the search; retry along -g unless that is what failed */
		if (nls > 0)
			xold_evaluated = Equal(x, xold, n);
		memcpy(x, xold, sizeof(double) * n);
		memcpy(g, gold, sizeof(double) * n);
		f = fold;
		if (col == 0)
		{
			res->reason = KM_LBFGS_LINE_SEARCH;
			goto done;
		}
		col = 0;
		head = 0;
		theta = 1.0;
	}

done:
	res->f = f;
}
