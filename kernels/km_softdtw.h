/*
 * km_softdtw.h -- soft dynamic time warping (Cuturi & Blondel 2017) on the compute side
 * (km_softdtw.c): values, their gradient with respect to a center, and the threaded passes the
 * PostgreSQL side (src/softdtw.c) drives.  No postgres.h.
 *
 * Rows and centers are km_dtw.h's (KmSeries of float32 samples, float64 centers of one
 * length), and so is the Sakoe-Chiba band.  With the cost (x_i - c_j)^2 of a pair of samples,
 *     R(-1, -1) = 0, R = +inf outside the band,
 *     R(i, j)   = (x_i - c_j)^2 + softmin(R(i-1, j), R(i, j-1), R(i-1, j-1)),
 *     softmin(a, b, c) = -gamma log(exp(-a / gamma) + exp(-b / gamma) + exp(-c / gamma)),
 * soft-DTW is R(lx - 1, lc - 1), as tslearn.metrics.soft_dtw defines it: the cost of every
 * warping path, softly minimised.  It tends to DTW^2 as gamma tends to 0, is at most DTW^2,
 * and can be negative (a sum over many paths), so it is a dissimilarity, not a distance.
 *
 * The gradient with respect to the center is E's (Cuturi & Blondel's backward recursion):
 * E(i, j) = d R(lx - 1, lc - 1) / d R(i, j) is 1 at the end and, going back, the sum over the
 * three successors s of (i, j) in the band of E(s) exp((R(s) - cost(s) - R(i, j)) / gamma);
 * then d soft-DTW / d c_j = sum_i E(i, j) 2 (c_j - x_i).
 */
#ifndef KM_SOFTDTW_H
#define KM_SOFTDTW_H

#include "km_dtw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Soft-DTW of x (lx float32 samples) and c (lc).  work holds 2 * lc doubles. */
extern double km_softdtw(const float *x, int lx, const double *c, int lc, int band, double gamma,
						 double *work);

/* The same with a float64 row (two centers). */
extern double km_softdtw_d(const double *x, int lx, const double *c, int lc, int band,
						   double gamma, double *work);

/* The doubles of work km_softdtw_grad needs for rows of up to lx samples. */
extern size_t km_softdtw_grad_work(int lx, int lc);

/* Soft-DTW of x and c, adding w times its gradient with respect to c into grad (lc). */
extern double km_softdtw_grad(const float *x, int lx, const double *c, int lc, int band,
							  double gamma, double w, double *grad, double *work);

/*
 * The center of least soft-DTW (lowest index on ties) for rows [r0, r1): labels[i] and the
 * value into value[i] (i global).  Every value is computed: soft-DTW has no lower bound
 * close enough to prune by.
 */
extern KmStatus km_softdtw_assign(const KmSeries *s, int64_t r0, int64_t r1,
								  const KmDtwCenters *cs, double gamma, int nthreads,
								  int32_t *labels, double *value, KmError *err);

/*
 * The soft-DTW barycenter's objective at c: adds sum of w_r soft-DTW(x_r, c) over the rows
 * rows[0 .. m) into *f and its gradient into grad (lc).  Rows go in pieces of a fixed size,
 * whose sums are added in row order, so the result does not depend on the thread count; a
 * caller that slices the rows and calls again keeps that order.
 */
extern KmStatus km_softdtw_objective(const KmSeries *s, const int64_t *rows, int64_t m,
									 const double *c, int lc, int band, double gamma,
									 int nthreads, double *f, double *grad, KmError *err);

/*
 * Soft-DTW of rows rows[a] and rows[b] for a in [a0, a1) and every b >= a into
 * out[a * m + b] of an m x m matrix (the diagonal holds each row with itself); the caller
 * mirrors the lower half.  kmeans_elbow's silhouette, by tslearn's normalised soft-DTW.
 */
extern KmStatus km_softdtw_pairwise(const KmSeries *s, const int64_t *rows, int64_t m,
									int64_t a0, int64_t a1, int band, double gamma,
									int nthreads, double *out, KmError *err);

#ifdef __cplusplus
}
#endif

#endif							/* KM_SOFTDTW_H */
