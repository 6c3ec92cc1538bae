/*
 * test_lbfgs.c -- the L-BFGS minimiser (km_lbfgs.c) against scipy's L-BFGS-B, which it is
 * written to reproduce: the same iterations, evaluations, stopping reason, x and f on
 * Rosenbrock, an ill-conditioned quadratic and Moré & Thuente's line search tests, on every
 * stopping rule and on line-search failures; then properties no reference is needed for: a quadratic's minimiser reached, a
 * start at the minimum taking no step, faulty callbacks (wrong-sign gradient, NaN) never
 * reported as converged, the work memory respected, and a callback that longjmps out leaving
 * nothing behind.
 */
#include "km_lbfgs.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>

#include "test_util.h"

#define NMAX 20

typedef enum Problem
{
	PROB_ROSEN,
	PROB_ROSEN_WRONG_SIGN,		/* the gradient negated: a planted fault */
	PROB_QUAD,					/* x'(A x / 2 - b) */
	PROB_QUAD_SHIFTED,			/* (x - b)' A (x - b) / 2: minimum 0 at b */
	PROB_MT1,					/* Moré & Thuente's (1994) line search tests, in 1-D */
	PROB_MT2,
	PROB_MT3,
	PROB_YOK,
	PROB_LINEAR,				/* -x: unbounded below */
	PROB_TINY					/* 1e-9 x: a slope below the resolution of x = 1e8 */
} Problem;

typedef struct Eval
{
	Problem		prob;
	int			n;
	int			calls;
	int			nan_after;		/* > 0: NaN f and gradient from that many calls on */
	int			jump_at;		/* > 0: longjmp out at that call */
	jmp_buf    *jump;
} Eval;

static double quad_a[NMAX][NMAX];

/*
 * A = Q diag(lambda) Q with Q = I - 2 v v' / v'v, v_i = i + 1, lambda_i = 10^(3 i / (n - 1)):
 * symmetric positive definite with condition number 1e3, not diagonal.  The reference script
 * builds it with these operations in this order.
 */
static void
QuadBuild(int n)
{
	double		lam[NMAX],
				v[NMAX],
				vv = 0.0,
				lv = 0.0;

	for (int i = 0; i < n; i++)
	{
		lam[i] = pow(10.0, 3.0 * i / (n - 1));
		v[i] = i + 1;
	}
	for (int i = 0; i < n; i++)
		vv += v[i] * v[i];
	for (int i = 0; i < n; i++)
		lv += lam[i] * v[i] * v[i];
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			quad_a[i][j] = 4.0 * v[i] * v[j] * lv / (vv * vv) -
				2.0 * v[i] * v[j] * (lam[i] + lam[j]) / vv + (i == j ? lam[i] : 0.0);
}

/* The quadratic's b: b_i = 1 + i / (2 n). */
static double
QuadB(int i, int n)
{
	return 1.0 + 0.5 * i / n;
}

/*
 * Moré & Thuente's function 5 (Yanai, Ozawa and Kaneko 1981), b1 = 0.01, b2 = 0.001:
 * gamma(b1) sqrt((1 - a)^2 + b2^2) + gamma(b2) sqrt(a^2 + b1^2), gamma(b) = sqrt(1 + b^2) - b.
 */
static double
Yok(double a, double b1, double b2, double *grad)
{
	double		g1 = sqrt(1.0 + b1 * b1) - b1,
				g2 = sqrt(1.0 + b2 * b2) - b2,
				r1 = sqrt((1.0 - a) * (1.0 - a) + b2 * b2),
				r2 = sqrt(a * a + b1 * b1);

	*grad = -g1 * (1.0 - a) / r1 + g2 * a / r2;
	return g1 * r1 + g2 * r2;
}

/* The 1-D problems: Moré & Thuente's functions 1 to 3, and two slopes. */
static double
OneDim(Problem prob, double a, double *grad)
{
	switch (prob)
	{
		case PROB_MT1:
			/* -a / (a^2 + 2): smooth, one minimum at sqrt(2) */
			*grad = (a * a - 2.0) / ((a * a + 2.0) * (a * a + 2.0));
			return -a / (a * a + 2.0);
		case PROB_MT2:
			/* (a + 0.004)^5 - 2 (a + 0.004)^4: flat near 0, minimum at 1.596 */
			a += 0.004;
			*grad = 5.0 * pow(a, 4) - 8.0 * pow(a, 3);
			return pow(a, 5) - 2.0 * pow(a, 4);
		case PROB_MT3:
			{
				/* a kink at 1 smoothed over 0.01, with 39 half-periods of a sine on top */
				const double b = 0.01,
							l = 39.0;
				double		f0,
							g0;

				if (a <= 1.0 - b)
				{
					f0 = 1.0 - a;
					g0 = -1.0;
				}
				else if (a >= 1.0 + b)
				{
					f0 = a - 1.0;
					g0 = 1.0;
				}
				else
				{
					f0 = (a - 1.0) * (a - 1.0) / (2.0 * b) + b / 2.0;
					g0 = (a - 1.0) / b;
				}
				*grad = g0 + (1.0 - b) * cos(l * M_PI * a / 2.0);
				return f0 + 2.0 * (1.0 - b) / (l * M_PI) * sin(l * M_PI * a / 2.0);
			}
		case PROB_YOK:
			return Yok(a, 0.01, 0.001, grad);
		case PROB_LINEAR:
			*grad = -1.0;
			return -a;
		case PROB_TINY:
			*grad = 1e-9;
			return 1e-9 * a;
		default:
			*grad = NAN;
			return NAN;
	}
}

/* f and gradient of the problem, in the reference script's order of operations. */
static double
Objective(const double *x, double *grad, void *arg)
{
	Eval	   *e = arg;
	int			n = e->n;
	double		f = 0.0;

	e->calls++;
	if (e->jump_at > 0 && e->calls == e->jump_at)
		longjmp(*e->jump, 1);
	if (e->nan_after > 0 && e->calls >= e->nan_after)
	{
		for (int i = 0; i < n; i++)
			grad[i] = NAN;
		return NAN;
	}
	if (e->prob >= PROB_MT1)
		return OneDim(e->prob, x[0], grad);
	if (e->prob == PROB_QUAD_SHIFTED)
	{
		for (int i = 0; i < n; i++)
		{
			double		s = 0.0;

			for (int j = 0; j < n; j++)
				s += quad_a[i][j] * (x[j] - QuadB(j, n));
			grad[i] = s;
			f += 0.5 * (x[i] - QuadB(i, n)) * s;
		}
		return f;
	}
	if (e->prob == PROB_QUAD)
	{
		for (int i = 0; i < n; i++)
		{
			double		s = 0.0;

			for (int j = 0; j < n; j++)
				s += quad_a[i][j] * x[j];
			grad[i] = s - QuadB(i, n);
			f += x[i] * (0.5 * s - QuadB(i, n));
		}
		return f;
	}
	for (int i = 0; i < n; i++)
		grad[i] = 0.0;
	for (int i = 0; i < n - 1; i++)
	{
		double		a = x[i + 1] - x[i] * x[i],
					b = 1.0 - x[i];

		f += 100.0 * a * a + b * b;
		grad[i] += -400.0 * x[i] * a - 2.0 * b;
		grad[i + 1] += 200.0 * a;
	}
	if (e->prob == PROB_ROSEN_WRONG_SIGN)
		for (int i = 0; i < n; i++)
			grad[i] = -grad[i];
	return f;
}

typedef struct Reference
{
	const char *name;
	Problem		prob;
	int			n;
	double		x0[NMAX];
	double		tol;
	int			max_iter;
	int			max_ls;
	int			max_fun;
	int			nit;
	int			nfev;
	KmLbfgsReason reason;
	double		f;
	double		x[NMAX];
} Reference;

#define ROSEN_X0_2	{-1.2, 1}
#define ROSEN_X0_10 {-1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1}

/*
 * From scipy 1.17.1 (numpy 2.4.6, scipy-openblas 0.3.30), a throwaway script:
 *     r = scipy.optimize.minimize(fun, x0, method="L-BFGS-B", jac=True, tol=tol,
 *                                 options=dict(maxiter=max_iter, maxls=max_ls, maxfun=max_fun))
 * with fun returning (f, gradient) as Objective computes them; nit, nfev, the message's reason,
 * r.fun and r.x printed with %.17g.  Where scipy stops with ABNORMAL, r.fun is the value at
 * the last rejected trial while r.x is the restored iterate; f below is then f(r.x), as
 * Python computes it, which is what km_lbfgs returns.
 */
static const Reference refs[] = {
	{"rosenbrock 2", PROB_ROSEN, 2, ROSEN_X0_2, 1e-10, 1000, 20, 15000,
		37, 45, KM_LBFGS_FTOL, 1.7054943027785514e-17,
		{1.0000000040039267, 1.0000000081090223}},
	{"rosenbrock 10", PROB_ROSEN, 10, ROSEN_X0_10, 1e-10, 1000, 20, 15000,
		72, 89, KM_LBFGS_FTOL, 1.746151811359719e-12,
		{1.0000000394225295, 1.0000000367595676, 1.0000000079530305, 0.99999998135106882,
			0.99999994340176601, 0.99999991987676695, 0.99999989467759887, 0.99999982416592059,
			0.99999964365415439, 0.99999923571984661}},
	/*
	 * This quadratic amplifies rounding about 100-fold every 20 iterations: scipy against
	 * itself with the sums of A x reversed differs by 2e-11 in x after 40 iterations, 1e-7
	 * after 80 (and km_lbfgs by 1e-10 and 1e-6).  Its runs stop before rounding decides them.
	 */
	{"quadratic 20, tol 1e-3", PROB_QUAD, 20, {0}, 1e-3, 1000, 20, 15000,
		27, 30, KM_LBFGS_FTOL, -0.61317364252571493,
		{0.68200807986961465, 0.47409947457076201, 0.2883075727730266, 0.13877667092160556,
			0.038411470418362348, -0.0093433670910252169, -0.019460264379008128,
			-0.022277493275157469, -0.035451444741661849, -0.039810827662553741,
			-0.027762330626679415, -0.031485554228071942, -0.024580258963440699,
			-0.020932659452300641, -0.020347991045435977, -0.018185475042893858,
			-0.01741580437085339, -0.016646840923876267, -0.016901298980128186,
			-0.017442912255202104}},
	{"quadratic 20, maxiter 40", PROB_QUAD, 20, {0}, 1e-10, 40, 20, 15000,
		40, 45, KM_LBFGS_MAX_ITER, -0.62926289831362781,
		{0.77501174147747487, 0.46878731701267468, 0.23271937581919266, 0.084591756171438215,
			0.017586768657853601, -0.0052944425700905086, -0.022868320694736596,
			-0.034132971003112807, -0.029465162911321348, -0.032506332520268216,
			-0.02662016421046591, -0.023822309838267851, -0.019669543339258938,
			-0.017933876865706022, -0.015214020610611813, -0.013513007430143579,
			-0.012028811601764784, -0.011130540741407213, -0.010398374297782492,
			-0.010066971382711846}},
	/* tslearn's tol: the relative reduction of f stops it far from the minimum */
	{"rosenbrock 2, tol 1e-3", PROB_ROSEN, 2, ROSEN_X0_2, 1e-3, 1000, 20, 15000,
		33, 41, KM_LBFGS_FTOL, 1.5919897854388563e-05,
		{0.9982322657372148, 0.99610995517866852}},
	{"rosenbrock 10, maxiter 15", PROB_ROSEN, 10, ROSEN_X0_10, 1e-10, 15, 20, 15000,
		15, 19, KM_LBFGS_MAX_ITER, 9.4234433081562923,
		{-0.21232407010078438, 0.036843199849208322, 0.0014734823245712379,
			0.020270227992744159, 0.011695990125000446, 0.019665870162111632,
			0.0092585594237446795, 0.021096933198661006, -0.011001218486581362,
			-0.0073036200550367792}},
	/* the evaluation limit is tested after a step and must be exceeded: 11 > 10 */
	{"rosenbrock 2, maxfun 10", PROB_ROSEN, 2, ROSEN_X0_2, 1e-10, 1000, 20, 10,
		9, 11, KM_LBFGS_MAX_FUN, 3.471262006047005,
		{-0.78725921065333626, 0.56714945603630273}},
	/* two evaluations per search: searches fail, the memory is dropped and -g retried */
	{"rosenbrock 2, maxls 2", PROB_ROSEN, 2, ROSEN_X0_2, 1e-10, 1000, 2, 15000,
		38, 45, KM_LBFGS_FTOL, 1.1865774225196187e-16,
		{1.0000000103554045, 1.0000000203728248}},
	/* the first search, along -g, fails: nothing to retry (scipy's r.fun 171.33595917774784) */
	{"rosenbrock 2, maxls 1", PROB_ROSEN, 2, ROSEN_X0_2, 1e-10, 1000, 1, 15000,
		0, 2, KM_LBFGS_LINE_SEARCH, 24.199999999999996,
		{-1.2, 1}},
	{"rosenbrock 2, at its minimum", PROB_ROSEN, 2, {1, 1}, 1e-10, 1000, 20, 15000,
		0, 1, KM_LBFGS_GTOL, 0,
		{1, 1}},

	/*
	 * Moré & Thuente's line search tests as 1-D problems: the four cases of the step
	 * choice, the search on the modified function, bisection, and the flat Yanai-Ozawa-Kaneko
	 * function, where sufficient decrease is decided within a few ulps of f.
	 */
	{"more-thuente 1 from 0", PROB_MT1, 1, {0}, 1e-10, 1000, 20, 15000,
		7, 8, KM_LBFGS_GTOL, -0.35355339059327373,
		{1.4142135621054237}},
	{"more-thuente 1 from 100", PROB_MT1, 1, {100}, 1e-10, 1000, 20, 15000,
		7, 25, KM_LBFGS_GTOL, -0.35355339059327373,
		{1.4142135623802237}},
	{"more-thuente 2 from 0", PROB_MT2, 1, {0}, 1e-10, 1000, 20, 15000,
		2, 10, KM_LBFGS_GTOL, -2.6214399999999998,
		{1.5959999999961525}},
	{"more-thuente 2 from 1", PROB_MT2, 1, {1}, 1e-10, 1000, 20, 15000,
		6, 9, KM_LBFGS_FTOL, -2.6214399999999998,
		{1.5960000001137111}},
	{"more-thuente 3 from 0.3", PROB_MT3, 1, {0.3}, 1e-10, 1000, 20, 15000,
		5, 14, KM_LBFGS_FTOL, -0.011160348067792449,
		{1.0000000000571769}},
	{"more-thuente 3 from 0.7", PROB_MT3, 1, {0.7}, 1e-10, 1000, 20, 15000,
		4, 13, KM_LBFGS_FTOL, -0.011160348067792449,
		{1.0000000000016673}},
	{"yanai-ozawa-kaneko from 0", PROB_YOK, 1, {0}, 1e-10, 1000, 20, 15000,
		9, 16, KM_LBFGS_FTOL, 0.99138481224259822,
		{0.074198691559349841}},
	{"yanai-ozawa-kaneko from 0.5", PROB_YOK, 1, {0.5}, 1e-10, 1000, 20, 15000,
		8, 17, KM_LBFGS_FTOL, 0.99138481224259833,
		{0.07419868729612783}},
	/* unbounded: each search runs to the largest step, 1e10, and stops there; s'y = 0 */
	{"-x, maxiter 3", PROB_LINEAR, 1, {0}, 1e-10, 3, 20, 15000,
		3, 55, KM_LBFGS_MAX_ITER, -3e10,
		{3e10}},
	/* x - g rounds to x: the direction d = z - x is 0, not a descent, and the search fails */
	{"1e-9 x from 1e8", PROB_TINY, 1, {1e8}, 1e-10, 1000, 20, 15000,
		0, 1, KM_LBFGS_LINE_SEARCH, 0.10000000000000001,
		{1e8}},
	/*
	 * A planted fault: the gradient's sign flipped.  -g then points uphill, the search's
	 * steps shrink until x no longer moves (scipy evaluates nothing at a point it has just
	 * evaluated: 19 evaluations, not 21) and it fails; never a convergence.
	 */
	{"rosenbrock 2, wrong-sign gradient", PROB_ROSEN_WRONG_SIGN, 2, ROSEN_X0_2, 1e-10, 1000,
		20, 15000, 0, 19, KM_LBFGS_LINE_SEARCH, 24.199999999999996,
		{-1.2, 1}},
};

static const char *
ReasonName(KmLbfgsReason r)
{
	static const char *const names[] = {"gtol", "ftol", "max_iter", "max_fun", "line_search",
	"invalid"};

	return (unsigned) r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

/* |a - b| relative to |b|, or absolute where b is 0. */
static double
RelDiff(double a, double b)
{
	return b == 0.0 ? fabs(a) : fabs(a - b) / fabs(b);
}

static void
AgainstScipy(void)
{
	static double work[4 * NMAX + 2 * 10 * NMAX + 2 * 10];

	for (size_t t = 0; t < sizeof(refs) / sizeof(refs[0]); t++)
	{
		const Reference *r = &refs[t];
		Eval		e = {r->prob, r->n, 0, 0, 0, NULL};
		KmLbfgsOptions o;
		KmLbfgsResult res;
		double		x[NMAX],
					g[NMAX],
					xdiff = 0.0,
					fdiff,
					f0;

		km_lbfgs_defaults(&o, r->tol, r->max_iter);
		o.max_ls = r->max_ls;
		o.max_fun = r->max_fun;
		memcpy(x, r->x0, sizeof(x));
		f0 = Objective(x, g, &e);
		e.calls = 0;
		km_lbfgs(r->n, x, Objective, &e, &o, work, &res);

		for (int i = 0; i < r->n; i++)
			xdiff = fmax(xdiff, RelDiff(x[i], r->x[i]));
		fdiff = RelDiff(res.f, r->f);
		printf("%-36s nit %3d (scipy %3d)  nfev %3d (%3d)  %-11s  x %.1e  f %.1e\n", r->name,
			   res.iters, r->nit, res.nfev, r->nfev, ReasonName(res.reason), xdiff, fdiff);

		CHECK(res.iters == r->nit, "%s: nit %d, scipy %d", r->name, res.iters, r->nit);
		CHECK(res.nfev == r->nfev, "%s: nfev %d, scipy %d", r->name, res.nfev, r->nfev);
		CHECK(res.nfev == e.calls, "%s: nfev %d but %d calls", r->name, res.nfev, e.calls);
		CHECK(res.reason == r->reason, "%s: reason %s, scipy %s", r->name,
			  ReasonName(res.reason), ReasonName(r->reason));
		if (r->reason == KM_LBFGS_LINE_SEARCH)
			CHECK(res.f == f0 && memcmp(x, r->x0, sizeof(double) * r->n) == 0,
				  "%s: a failed first search must return x0 and f(x0)", r->name);
		CHECK(xdiff <= 1e-8, "%s: x differs from scipy's by %.3g relative", r->name, xdiff);

		/*
		 * f relative to scipy's, or within 1e-12 of f(x0) where f is near Rosenbrock's
		 * minimum 0: there f ~ |x - x*|^2 and its relative difference is x's times
		 * |x| / |x - x*| (1e3 and more).
		 */
		CHECK(fdiff <= 1e-8 || fabs(res.f - r->f) <= 1e-12 * fabs(f0),
			  "%s: f %.17g, scipy %.17g", r->name, res.f, r->f);

		/* f and the gradient returned are those of the returned x */
		e.calls = 0;
		CHECK(Objective(x, g, &e) == res.f && memcmp(g, work, sizeof(double) * r->n) == 0,
			  "%s: f or gradient returned not those at x", r->name);
	}
}

static void
Properties(void)
{
	enum
	{
		N = 20, M = 10
	};
	int64_t		nwork = km_lbfgs_work_doubles(N, M);
	double	   *work = Alloc(sizeof(double) * (nwork + 16));
	double		x[N],
				xs[N],
				err = 0.0;
	Eval		e = {PROB_QUAD_SHIFTED, N, 0, 0, 0, NULL};
	KmLbfgsOptions o;
	KmLbfgsResult res;

	/* the work size, guarded against overflow */
	CHECK(km_lbfgs_work_doubles(2, 10) == 4 * 2 + 2 * 10 * 2 + 2 * 10, "work for n 2, m 10");
	CHECK(km_lbfgs_work_doubles(0, 10) == -1 && km_lbfgs_work_doubles(5, 0) == -1,
		  "work for n or m 0");
	CHECK(km_lbfgs_work_doubles(INT_MAX, INT_MAX) == -1, "work for n = m = INT_MAX overflows");
	CHECK(km_lbfgs_work_doubles(INT_MAX, 1) == 6 * (int64_t) INT_MAX + 2,
		  "work for n = INT_MAX, m 1");

	/*
	 * A quadratic's minimiser b, to the accuracy the gradient test promises: |x - b|_inf <=
	 * |A^-1|_2 |g|_2 <= 1 * sqrt(20) * 1e-10.  Its minimum is 0, so f keeps its relative
	 * precision down to there; the ftol test is off.
	 */
	km_lbfgs_defaults(&o, 1e-10, 1000);
	o.ftol = 0.0;
	for (int i = 0; i < 16; i++)
		work[nwork + i] = -7.0;	/* past the end: must stay untouched */
	memset(x, 0, sizeof(x));
	km_lbfgs(N, x, Objective, &e, &o, work, &res);
	for (int i = 0; i < N; i++)
	{
		xs[i] = QuadB(i, N);
		err = fmax(err, fabs(x[i] - xs[i]));
	}
	CHECK(res.reason == KM_LBFGS_GTOL && err <= 5e-10,
		  "quadratic: reason %s after %d steps, |x - x*| %.3g", ReasonName(res.reason),
		  res.iters, err);
	for (int i = 0; i < 16; i++)
		CHECK(work[nwork + i] == -7.0, "work[%lld] written past the end", (long long) nwork + i);

	/* a start where the gradient is already small enough: no step, one evaluation */
	memcpy(x, xs, sizeof(x));
	o.gtol = 1e-6;
	e.calls = 0;
	km_lbfgs(N, x, Objective, &e, &o, work, &res);
	CHECK(res.reason == KM_LBFGS_GTOL && res.iters == 0 && res.nfev == 1 && e.calls == 1 &&
		  memcmp(x, xs, sizeof(x)) == 0, "start at the minimiser: reason %s, %d steps",
		  ReasonName(res.reason), res.iters);

	/*
	 * NaN from the first or the second evaluation on: the NaN gradient passes no test, the
	 * search fails after its 20 evaluations, and x0 comes back with f(x0).  scipy: ABNORMAL
	 * with 21 evaluations, x = x0, in both cases.
	 */
	for (int nan_after = 1; nan_after <= 2; nan_after++)
	{
		Eval		en = {PROB_ROSEN, 2, 0, 0, 0, NULL};
		double		xr[2] = {-1.2, 1},
					g0[2],
					f0 = nan_after == 1 ? NAN : Objective(xr, g0, &en);

		en.calls = 0;
		en.nan_after = nan_after;
		km_lbfgs_defaults(&o, 1e-10, 1000);
		km_lbfgs(2, xr, Objective, &en, &o, work, &res);
		CHECK(res.reason == KM_LBFGS_LINE_SEARCH && res.nfev == 21 && res.iters == 0 &&
			  xr[0] == -1.2 && xr[1] == 1.0 && (res.f == f0 || (isnan(f0) && isnan(res.f))),
			  "NaN from call %d: reason %s, nfev %d, x (%g, %g), f %g", nan_after,
			  ReasonName(res.reason), res.nfev, xr[0], xr[1], res.f);
	}

	/* sizes refused without a call */
	e.calls = 0;
	km_lbfgs(0, x, Objective, &e, &o, work, &res);
	CHECK(res.reason == KM_LBFGS_INVALID && e.calls == 0, "n 0");
	o.max_ls = 0;
	km_lbfgs(N, x, Objective, &e, &o, work, &res);
	CHECK(res.reason == KM_LBFGS_INVALID && e.calls == 0, "max_ls 0");

	free(work);
}

/*
 * A callback that longjmps out (PostgreSQL's ERROR) mid-search, then the same minimisation
 * from the start in the same work: the result must be that of a run never interrupted, so
 * nothing outlived the jump.
 */
static void
Interrupted(void)
{
	static double work[4 * 10 + 2 * 10 * 10 + 2 * 10];
	static const double x0[10] = ROSEN_X0_10;
	jmp_buf		jump;
	double		x[10],
				xa[10];
	volatile int jumped = 0;
	static Eval e;
	KmLbfgsOptions o;
	KmLbfgsResult res,
				resa;

	e = (Eval) {PROB_ROSEN, 10, 0, 0, 30, &jump};
	km_lbfgs_defaults(&o, 1e-10, 1000);
	memcpy(x, x0, sizeof(x));
	if (setjmp(jump) == 0)
		km_lbfgs(10, x, Objective, &e, &o, work, &res);
	else
		jumped = 1;
	CHECK(jumped && e.calls == 30, "longjmp at call 30: jumped %d after %d calls", jumped,
		  e.calls);

	e.calls = 0;
	e.jump_at = 0;
	memcpy(x, x0, sizeof(x));
	km_lbfgs(10, x, Objective, &e, &o, work, &res);
	memset(work, 0, sizeof(work));
	e.calls = 0;
	memcpy(xa, x0, sizeof(xa));
	km_lbfgs(10, xa, Objective, &e, &o, work, &resa);
	CHECK(memcmp(x, xa, sizeof(x)) == 0 && res.f == resa.f && res.iters == resa.iters &&
		  res.nfev == resa.nfev && res.reason == resa.reason,
		  "run after a longjmp differs from a fresh one");
}

int
main(void)
{
	QuadBuild(NMAX);
	AgainstScipy();
	Properties();
	Interrupted();
	return TestReport();
}
