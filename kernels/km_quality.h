/*
 * km_quality.h -- cluster-quality scores for kmeans_elbow: silhouette, Calinski-Harabasz,
 * Davies-Bouldin, and the Kneedle choice of k.
 *
 * Like the rest of kernels/, this is compute code with no PostgreSQL in it: nothing here calls
 * exit/abort or prints, and the one function that can fail returns a KmStatus.
 *
 * The scores follow scikit-learn's definitions (silhouette_samples / silhouette_score,
 * calinski_harabasz_score, davies_bouldin_score) so that users can check a result against it.
 * Where scikit-learn raises an error (fewer than 2 clusters, or as many clusters as rows) these
 * functions return NaN instead.  Clusters are the labels that actually occur: a cluster with no
 * rows is ignored, exactly as scikit-learn never sees it (it re-encodes the labels it is given).
 * Distances are computed from coordinate differences in float64, which is at least as accurate
 * as scikit-learn's |x|^2 - 2 x.y + |y|^2 expansion.
 */
#ifndef KM_QUALITY_H
#define KM_QUALITY_H

#include <stdint.h>

#include "km_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One batch of the streamed scatter pass: for each row i of x[0..n) with l = labels[i *
 * label_stride] (0-based within this labelling's k), sq[l] += |x_i - means_l|^2 and
 * lin[l] += |x_i - means_l|.  means is k x d; sq and lin have k entries and are zeroed by the
 * caller before the first batch.  Rows are added in order in float64, so the sums do not depend
 * on how the rows were cut into batches.  Labels must be in range: this is not checked.
 */
void		km_quality_scatter(const float *x, int64_t n, int d, const int32_t *labels,
							   int label_stride, const double *means, double *sq, double *lin);

/*
 * Calinski-Harabasz index from the cluster counts, means (k x d) and sq (from
 * km_quality_scatter) of n rows.  NaN when fewer than 2 or more than n - 1 clusters are
 * occupied (scikit-learn raises); 1.0 when the within-cluster dispersion is 0 (as scikit-learn).
 */
double		km_calinski_harabasz(int64_t n, int k, int d, const int64_t *counts,
								 const double *means, const double *sq);

/*
 * Davies-Bouldin index from the cluster counts, means (k x d) and lin (from km_quality_scatter).
 * NaN when fewer than 2 clusters or more than n - 1 are occupied, n being the sum of the
 * counts (scikit-learn raises); 0.0 when every cluster's mean distance to its centroid or every
 * centroid distance is at most 1e-8 (scikit-learn's np.allclose(..., 0) test).
 */
double		km_davies_bouldin(int k, int d, const int64_t *counts, const double *means,
							  const double *lin);

/*
 * Silhouette values of rows [row_begin, row_end) of a sample x (s x d), for nlab labellings at
 * once: labels[i * nlab + m] in 0 .. ks[m]-1 is row i's cluster in labelling m, and
 * out[i * nlab + m] receives its silhouette (b - a) / max(a, b) over the whole sample, with
 * Euclidean distances in float64 (for KM_METRIC_COSINE on unit rows 1 - cos as
 * |x - y|^2 / 2, for KM_METRIC_IOU 1 - IoU of the boxes); 0 for a row alone in its cluster, NaN for every row of a
 * labelling that occupies fewer than 2 clusters of the sample.  Each value depends only on the
 * sample and the row, not on the range, so threads may split the rows as they like.
 * Single-threaded and reentrant; it allocates scratch memory with malloc and frees it before
 * returning.  Fails with KM_ERR_ARGUMENT on a label out of range or bad sizes, KM_ERR_NOMEM
 * when scratch memory cannot be had; out is then left partly written.
 */
KmStatus	km_silhouette_rows(const float *x, int64_t s, int d, KmMetric metric,
							   const int32_t *labels, int nlab, const int *ks, int64_t row_begin,
							   int64_t row_end, double *out, KmError *err);

/*
 * km_silhouette_rows in two steps, for a caller that asks for several row ranges of one
 * sample (the CPU backend, a piece of rows per thread): km_silhouette_prepare checks the
 * labels and sorts the sample's rows by label per tile once, km_silhouette_prepared_rows then
 * gives the values of any range, the same bits as km_silhouette_rows, and may run on several
 * threads at once.  x, labels and ks must outlive the prepared sample; km_silhouette_free
 * releases it (NULL is ignored).
 */
typedef struct KmSilhouette KmSilhouette;

KmStatus	km_silhouette_prepare(const float *x, int64_t s, int d, KmMetric metric,
								  const int32_t *labels, int nlab, const int *ks,
								  KmSilhouette **out, KmError *err);
KmStatus	km_silhouette_prepared_rows(const KmSilhouette *sp, int64_t row_begin,
										int64_t row_end, double *out, KmError *err);
void		km_silhouette_free(KmSilhouette *sp);

/*
 * A uniform sample of s distinct row numbers out of 0 .. n-1, in increasing order, into
 * idx[0..s).  The same (n, s, seed) gives the same sample on every platform (it draws only from
 * km_rng_below).  When s >= n every row is taken and idx[0..n) = 0 .. n-1.
 */
void		km_sample_rows(int64_t n, int64_t s, uint64_t seed, int64_t *idx);

/*
 * The suggested k on a decreasing inertia curve (ks[i], inertia[i]), i = 0..m-1, by the
 * Kneedle method (Satopaa et al. 2011): the index of the global maximum of the difference
 * curve (1 - y_norm) - k_norm, the smallest such index on ties.  Returns an index in 0 .. m-1
 * for every m >= 1, whatever the values (flat, non-monotone, NaN), and -1 when m < 1.
 */
int			km_knee(const int *ks, const double *inertia, int m);

#ifdef __cplusplus
}
#endif

#endif							/* KM_QUALITY_H */
