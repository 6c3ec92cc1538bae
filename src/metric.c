/*
 * metric.c -- the distance a fit clusters by, on the PostgreSQL side: its names, what it does
 * to each row as it is read, to each center after an update, and to the distances it reports.
 *
 * Euclidean changes nothing.  Cosine is spherical k-means (Dhillon & Modha 2001): every row is
 * scaled to unit length as it is read (a row of length 0 has no direction and is an ERROR), and
 * every center is the normalised mean of its rows.  On unit vectors |x - c|^2 = 2 (1 - cos), so
 * the backends' Euclidean kernels find the same nearest centers (km_kernels.h, KmMetric) and
 * the fast path stays a matrix product; the distances they sum are turned into 1 - cos here
 * (half the squared distance) before anyone sees them: kmeans_labels' distance, every inertia,
 * the step log.  kmeans_predict labels by the largest cosine.
 */
#include "kmeans.h"

#include <math.h>

/* The names, in the order of KmMetric. */
static const char *const metric_names[] = {"euclidean", "cosine"};

StaticAssertDecl(lengthof(metric_names) == KM_METRIC_COSINE + 1, "one name per KmMetric");

/* The metric called name; an ERROR naming the ones there are otherwise. */
KmMetric
KmeansMetricByName(const char *name)
{
	for (int i = 0; i < lengthof(metric_names); i++)
		if (strcmp(name, metric_names[i]) == 0)
			return (KmMetric) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown metric \"%s\"", name),
			 errhint("Use 'euclidean' or 'cosine'.")));
	return KM_METRIC_EUCLIDEAN;	/* not reached */
}

const char *
KmeansMetricName(KmMetric metric)
{
	return metric_names[metric];
}

/*
 * Prepares a row as read (d finite values) for the metric: under cosine scales it to unit
 * length, in float64 and then rounded, the same way in every pass.  False for a row of length
 * 0 under cosine, which the caller reports with the row's name.
 */
bool
KmeansMetricPrepareRow(KmMetric metric, float *x, int d)
{
	double		norm = 0.0;

	if (metric != KM_METRIC_COSINE)
		return true;
	for (int t = 0; t < d; t++)
		norm += (double) x[t] * x[t];
	if (!(norm > 0.0))
		return false;
	norm = sqrt(norm);
	for (int t = 0; t < d; t++)
		x[t] = (float) (x[t] / norm);
	return true;
}

/*
 * Finishes a center the update has made the mean of its rows (c, centred on mean): under
 * cosine it becomes that mean normalised, still centred.  A mean of length 0 (rows that cancel
 * out) has no direction: the center keeps prev, where it was.
 */
void
KmeansMetricFinishCenter(KmMetric metric, float *c, const float *prev, const float *mean, int d)
{
	double		norm = 0.0;

	if (metric != KM_METRIC_COSINE)
		return;
	for (int t = 0; t < d; t++)
	{
		double		v = (double) c[t] + mean[t];

		norm += v * v;
	}
	if (!(norm > 0.0))
	{
		memcpy(c, prev, sizeof(float) * d);
		return;
	}
	norm = sqrt(norm);
	for (int t = 0; t < d; t++)
		c[t] = (float) (((double) c[t] + mean[t]) / norm - mean[t]);
}

/* A row's reported distance from the squared distance the backend gives. */
double
KmeansMetricDistance(KmMetric metric, float squared)
{
	return metric == KM_METRIC_COSINE ? 0.5 * (double) squared : sqrt((double) squared);
}

/* An inertia (a sum of what the metric calls a row's cost) from a sum of squared distances. */
double
KmeansMetricInertia(KmMetric metric, double squared_sum)
{
	return metric == KM_METRIC_COSINE ? 0.5 * squared_sum : squared_sum;
}

/*
 * The nearest of k centers (k x d, as saved) to x by the metric, in float64, lowest index on
 * ties: the smallest squared distance, or the largest cosine.  Under cosine, x of length 0 is
 * an ERROR, and so is a center of length 0 (none is saved so, but the table is the user's).
 */
int
KmeansMetricNearest(KmMetric metric, const float *centers, int k, int d, const float *x)
{
	int			best = 0;
	double		best_v = -INFINITY;
	double		xnorm = 0.0;

	if (metric == KM_METRIC_COSINE)
	{
		for (int t = 0; t < d; t++)
			xnorm += (double) x[t] * x[t];
		if (!(xnorm > 0.0))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("the vector has length 0, which has no cosine to any center"),
					 errhint("Label only vectors with a nonzero value under the cosine metric.")));
	}
	for (int j = 0; j < k; j++)
	{
		const float *c = centers + (int64) j * d;
		double		v = 0.0;

		if (metric == KM_METRIC_COSINE)
		{
			double		dot = 0.0,
						cnorm = 0.0;

			for (int t = 0; t < d; t++)
			{
				dot += (double) x[t] * c[t];
				cnorm += (double) c[t] * c[t];
			}
			if (!(cnorm > 0.0))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("center %d has length 0, which has no cosine to any vector", j),
						 errhint("Fit the model again.")));
			v = dot / sqrt(cnorm);	/* |x| is the same for every center */
		}
		else
		{
			for (int t = 0; t < d; t++)
			{
				double		diff = (double) x[t] - c[t];

				v += diff * diff;
			}
			v = -v;
		}
		if (v > best_v)
		{
			best_v = v;
			best = j;
		}
	}
	return best;
}
