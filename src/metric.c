/*
 * metric.c -- the distance a fit clusters by, on the PostgreSQL side: its names, what it does
 * to each row as it is read, to each center after an update, and to the distances it reports.
 *
 * Euclidean changes nothing.  IoU takes boxes (w, h) of positive size, not centred, and a row's
 * distance to a center is 1 - IoU of the two boxes at a common corner (Redmon & Farhadi 2017),
 * which the backends compute themselves (km_kernels.h): the mean is the update, the inertia
 * sums 1 - IoU, and kmeans_fit numbers the anchors by area.  Cosine is spherical k-means (Dhillon & Modha 2001): every row is
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
static const char *const metric_names[] = {"euclidean", "cosine", "iou", "dtw", "softdtw"};

StaticAssertDecl(lengthof(metric_names) == KM_METRIC_SOFTDTW + 1, "one name per KmMetric");

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
			 errhint("Use 'euclidean', 'cosine', 'iou', 'dtw' or 'softdtw'.")));
	return KM_METRIC_EUCLIDEAN;	/* not reached */
}

/*
 * Refuses the series metric where only vectors are taken (what: the SQL function): the step
 * and sample aggregates and the aggregate and window forms fit vectors of one length.
 */
void
KmeansMetricVectorOnly(KmMetric metric, const char *what)
{
	if (km_metric_series(metric))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s does not take metric '%s'", what, KmeansMetricName(metric)),
				 errhint("Fit series under %s with kmeans_fit, kmeans_labels or kmeans_elbow.",
						 KmeansMetricName(metric))));
}

const char *
KmeansMetricName(KmMetric metric)
{
	return metric_names[metric];
}

/*
 * Prepares a row as read (d finite values) for the metric: under cosine scales it to unit
 * length, in float64 and then rounded, the same way in every pass; under IoU checks that it is
 * a box (w, h) of positive size.  NULL when the row is fit for the metric, else what is wrong
 * with it, which the caller reports with the row's name.
 */
const char *
KmeansMetricPrepareRow(KmMetric metric, float *x, int d)
{
	double		norm = 0.0;

	if (metric == KM_METRIC_IOU)
	{
		if (d != 2)
			return psprintf("has %d values, but the iou metric takes boxes (w, h) of 2", d);
		if (!(x[0] > 0.0f && x[1] > 0.0f))
			return psprintf("is the box (%g, %g), but the iou metric takes widths and heights > 0",
							x[0], x[1]);
		return NULL;
	}
	if (metric != KM_METRIC_COSINE)
		return NULL;
	for (int t = 0; t < d; t++)
		norm += (double) x[t] * x[t];
	if (!(norm > 0.0))
		return "has length 0, which has no direction for the cosine metric";
	norm = sqrt(norm);
	for (int t = 0; t < d; t++)
		x[t] = (float) (x[t] / norm);
	return NULL;
}

/* The hint for a row KmeansMetricPrepareRow refuses. */
const char *
KmeansMetricRowHint(KmMetric metric)
{
	if (metric == KM_METRIC_IOU)
		return "Pass each box as ARRAY[w, h] with w, h > 0, e.g. ARRAY[x1 - x0, y1 - y0]; filter empty boxes out in a query.";
	return "Drop the rows whose values are all 0, e.g. WHERE NOT v = array_fill(0::real, ARRAY[d]) in a query.";
}

/*
 * Whether the rows are centred on their mean before the backend sees them (km_kernels.h):
 * not under IoU, whose cost depends on the boxes themselves, not on their differences.
 */
bool
KmeansMetricCentred(KmMetric metric)
{
	return metric != KM_METRIC_IOU;
}

/* Area of anchor box j of a segment, for KmeansOrderByArea's sort. */
typedef struct AreaOf
{
	double		area;
	int			j;
} AreaOf;

static int
AreaCmp(const void *a, const void *b)
{
	const AreaOf *x = a,
			   *y = b;

	if (x->area != y->area)
		return x->area < y->area ? -1 : 1;
	return x->j - y->j;
}

/*
 * Numbers the anchor boxes of segment seg by area, smallest first (ties by their number
 * before), as detectors list their anchors.  The centers are not centred under IoU.
 */
void
KmeansOrderByArea(KmeansModelSet *ms, int seg)
{
	int			off = ms->seg_off[seg];
	int			k = ms->seg_off[seg + 1] - off;
	AreaOf	   *by = palloc(sizeof(AreaOf) * k);
	int		   *place = palloc(sizeof(int) * k);

	for (int j = 0; j < k; j++)
	{
		const float *c = ms->centers + (int64) (off + j) * ms->d;

		by[j].area = (double) c[0] * c[1];
		by[j].j = j;
	}
	qsort(by, k, sizeof(AreaOf), AreaCmp);
	for (int r = 0; r < k; r++)
		place[by[r].j] = r;
	KmeansRenumberSegment(ms, seg, place);
	pfree(by);
	pfree(place);
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

/*
 * A row's reported distance from what the fit gives (a squared distance, 1 - IoU, or under
 * softdtw the soft-DTW itself, which has no square root and can be negative).
 */
double
KmeansMetricDistance(KmMetric metric, float squared)
{
	if (metric == KM_METRIC_IOU || metric == KM_METRIC_SOFTDTW)
		return (double) squared;
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
 * ties: the smallest squared distance, the largest cosine or the largest IoU.  Under cosine, x
 * of length 0 is an ERROR, and so is a center of length 0 (none is saved so, but the table is
 * the user's); under IoU, x and every center must be boxes (w, h) of positive size.
 */
int
KmeansMetricNearest(KmMetric metric, const float *centers, int k, int d, const float *x)
{
	int			best = 0;
	double		best_v = -INFINITY;
	double		xnorm = 0.0;

	if (metric == KM_METRIC_IOU && (d != 2 || !(x[0] > 0.0f && x[1] > 0.0f)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the vector is not a box (w, h) with w, h > 0, which the iou metric labels"),
				 errhint("Pass ARRAY[w, h] with w, h > 0.")));
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

		if (metric == KM_METRIC_IOU)
		{
			double		inter,
						uni;

			if (!(c[0] > 0.0f && c[1] > 0.0f))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("center %d is not a box (w, h) with w, h > 0", j),
						 errhint("Fit the model again.")));
			inter = Min((double) x[0], (double) c[0]) * Min((double) x[1], (double) c[1]);
			uni = (double) x[0] * x[1] + (double) c[0] * c[1] - inter;
			v = inter / uni;	/* the largest IoU is the nearest */
		}
		else if (metric == KM_METRIC_COSINE)
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
