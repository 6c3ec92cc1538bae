/*
 * km_lbfgs.h -- a limited-memory BFGS minimiser for smooth unconstrained problems (km_lbfgs.c),
 * which takes the steps that scipy.optimize.minimize(f, x0, method="L-BFGS-B", jac=True,
 * tol=tol, options=dict(maxiter=max_iter)) takes without bounds: how tslearn computes soft-DTW
 * barycenters.  No postgres.h and no allocation: the caller passes the work memory, so a
 * callback that longjmps out (an ERROR on cancel) leaves nothing behind.
 */
#ifndef KM_LBFGS_H
#define KM_LBFGS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* f(x), with its gradient written to grad[0 .. n).  May longjmp out. */
typedef double (*KmLbfgsFn) (const double *x, double *grad, void *arg);

typedef struct KmLbfgsOptions
{
	int			m;				/* (s, y) pairs kept: scipy's maxcor */
	int			max_iter;		/* accepted steps; the test follows each, so at least one */
	int			max_fun;		/* stop once more evaluations than this, tested after a step */
	int			max_ls;			/* evaluations per line search */
	double		ftol;			/* stop when f_old - f <= ftol max(|f_old|, |f|, 1) */
	double		gtol;			/* stop when max_i |g_i| <= gtol */
} KmLbfgsOptions;

typedef enum KmLbfgsReason
{
	KM_LBFGS_GTOL = 0,			/* converged: the gradient is small (possibly at x0) */
	KM_LBFGS_FTOL,				/* converged: f decreased by ftol or less, relatively */
	KM_LBFGS_MAX_ITER,			/* max_iter steps taken */
	KM_LBFGS_MAX_FUN,			/* more than max_fun evaluations */
	KM_LBFGS_LINE_SEARCH,		/* no acceptable step even along -g: scipy's ABNORMAL */
	KM_LBFGS_INVALID			/* n, m or max_ls below 1: nothing evaluated */
} KmLbfgsReason;

typedef struct KmLbfgsResult
{
	double		f;				/* f at the returned x */
	int			iters;			/* accepted steps: scipy's nit */
	int			nfev;			/* calls of fn: scipy's nfev */
	KmLbfgsReason reason;
} KmLbfgsResult;

/* The options minimize(method="L-BFGS-B", tol=tol, options=dict(maxiter=max_iter)) uses. */
extern void km_lbfgs_defaults(KmLbfgsOptions *o, double tol, int max_iter);

/*
 * Doubles of work km_lbfgs needs for n unknowns and m pairs (4n + 2mn + 2m), or -1 when n or
 * m < 1 or the count overflows int64.
 */
extern int64_t km_lbfgs_work_doubles(int n, int m);

/*
 * Minimises fn from x (x0 on entry, the last accepted iterate on return); work holds
 * km_lbfgs_work_doubles(n, o->m) doubles, the gradient at the returned x in its first n.
 */
extern void km_lbfgs(int n, double *x, KmLbfgsFn fn, void *arg, const KmLbfgsOptions *o,
					 double *work, KmLbfgsResult *res);

#ifdef __cplusplus
}
#endif

#endif							/* KM_LBFGS_H */
