/*
 * step.c -- kmeans_step(x, centers): one Lloyd iteration as an ordinary aggregate.
 *
 * The transition function assigns each row to its nearest center (km_row_nearest) and adds
 * the row to that cluster's sums, count and inertia; the combine function adds two states; the
 * final function divides.  PostgreSQL's planner can then run the step as a Partial Aggregate in
 * parallel workers under a Gather, and Citus can run it on its worker nodes and combine the
 * parts on the coordinator, as it does for any aggregate with a combine function.
 *
 * The state is a type of its own, kmeans_step_state, rather than `internal`: a varlena that the
 * executor copies between processes as it is, that has binary send and receive functions (what
 * Citus uses to ship a partial state between nodes) and a text form, and whose input is
 * checked as hostile.  PostgreSQL allows serialize and deserialize functions only for an
 * `internal` state; here the type's own receive and send functions are the serialisation.
 *
 * Sums are exact (km_exact.h): each cluster's sums and inertia are integer multiples of 2^-149
 * held without rounding, so the result does not depend on how many workers ran, how the rows
 * were split among them, or in what order the parts were combined: bit for bit.  The price is
 * the state's size, KM_EXACT_DIGITS int64 per value (72 bytes per center coordinate, 80 with the
 * center and the cluster's farthest row, kept for the aggregate strategy's repair), which is
 * estimated and refused, with the sizes, before it is allocated.
 *
 * The distance is the direct sum of squares of the uncentred values, as km_argmin_ref computes
 * it; the new centers are the exact means rounded once, so they can differ from the resident
 * engine's (which sums centred values in float64, in row order) in the last bit of float32.
 * An empty cluster keeps its center.  kmeans_step(x, centers, metric) takes the fits' metrics
 * (metric.c): under cosine rows and centers are compared as unit vectors and a center becomes
 * its rows' normalised mean, the inertia summing 1 - cos; under iou rows and centers are boxes
 * (w, h), the distance 1 - IoU, the update the mean box.
 */
#include "kmeans.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "nodes/primnodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "km_exact.h"

PG_FUNCTION_INFO_V1(kmeans_step_state_in);
PG_FUNCTION_INFO_V1(kmeans_step_state_out);
PG_FUNCTION_INFO_V1(kmeans_step_state_recv);
PG_FUNCTION_INFO_V1(kmeans_step_state_send);
PG_FUNCTION_INFO_V1(kmeans_step_transfn);
PG_FUNCTION_INFO_V1(kmeans_step_combine);
PG_FUNCTION_INFO_V1(kmeans_step_final);

#define STEP_MAGIC 0x4b4d5353	/* "KMSS" */
#define STEP_VERSION 1

/*
 * The state in memory: this header, then the centers (k x d float4, padded to 8 bytes), the
 * counts (k int64), the sums (k x d exact sums) and the inertia (k exact sums).  pending counts
 * the adds since the sums were last normalized; cache_gen is which packed centers (fn_extra)
 * the state last used, and is not part of the value sent or printed.
 */
typedef struct StepState
{
	int32		vl_len_;
	int32		magic;
	int32		version;
	int32		k;
	int32		d;
	int32		metric;			/* KmMetric */
	int32		cache_gen;
	int32		unused;
	int64		rows;
	int64		pending;
} StepState;

/* The byte offsets of a state's arrays, from k and d. */
typedef struct StepLayout
{
	Size		centers;
	Size		counts;
	Size		sums;
	Size		inertia;
	Size		far;			/* per cluster its farthest row (k x d float4) */
	Size		far_dist;		/* and that row's distance (k float4; -1: no row) */
	Size		total;
} StepLayout;

/*
 * The layout of a state for k centers of dimension d, or an ERROR naming the size when it
 * would exceed what one value can hold (1 GB) or kmeans.max_memory.  Computed in double first,
 * so that no product overflows.
 */
static void
Layout(int k, int d, StepLayout *l)
{
	double		kd = (double) k * d;
	double		bytes = MAXALIGN(sizeof(StepState)) + 8.0 * kd + 16.0 + 12.0 * k +
		8.0 * KM_EXACT_DIGITS * (kd + k);
	double		limit = Min((double) MaxAllocSize, (double) kmeans_max_memory * 1024.0);

	if (bytes > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("kmeans_step's state for %d centers of dimension %d needs %.0f MB, more than %.0f MB",
						k, d, bytes / (1024.0 * 1024.0), limit / (1024.0 * 1024.0)),
				 errdetail("Each center coordinate takes %d bytes (its exact sum, the center and its "
						   "cluster's farthest row); the limit is the smaller of 1 GB and kmeans.max_memory.",
						   8 * KM_EXACT_DIGITS + 8),
				 errhint("Use fewer centers or fewer dimensions per step.")));
	l->centers = MAXALIGN(sizeof(StepState));
	l->counts = l->centers + MAXALIGN(sizeof(float) * (Size) k * d);
	l->sums = l->counts + sizeof(int64) * (Size) k;
	l->inertia = l->sums + sizeof(int64) * KM_EXACT_DIGITS * (Size) k * d;
	l->far = l->inertia + sizeof(int64) * KM_EXACT_DIGITS * (Size) k;
	l->far_dist = l->far + MAXALIGN(sizeof(float) * (Size) k * d);
	l->total = l->far_dist + MAXALIGN(sizeof(float) * (Size) k);
}

#define STATE_CENTERS(s, l) ((float *) ((char *) (s) + (l)->centers))
#define STATE_COUNTS(s, l) ((int64 *) ((char *) (s) + (l)->counts))
#define STATE_SUMS(s, l) ((int64 *) ((char *) (s) + (l)->sums))
#define STATE_INERTIA(s, l) ((int64 *) ((char *) (s) + (l)->inertia))
#define STATE_FAR(s, l) ((float *) ((char *) (s) + (l)->far))
#define STATE_FAR_DIST(s, l) ((float *) ((char *) (s) + (l)->far_dist))

/*
 * Whether row x (distance dist) is farther than the farthest row kept so far (fx, fdist): by
 * distance, then by the rows' bits in order, so that the farthest row of a cluster is one row
 * whatever order the rows came in.
 */
static bool
Farther(float dist, const float *x, float fdist, const float *fx, int d)
{
	if (dist != fdist)
		return dist > fdist;
	for (int t = 0; t < d; t++)
	{
		uint32		a,
					b;

		memcpy(&a, x + t, sizeof(a));
		memcpy(&b, fx + t, sizeof(b));
		if (a != b)
			return a > b;
	}
	return false;
}

/* A zeroed state for centers c (k x d) under metric, in the current memory context. */
static StepState *
StateMake(const float *c, int k, int d, KmMetric metric)
{
	StepLayout	l;
	StepState  *s;

	Layout(k, d, &l);
	s = palloc0(l.total);
	SET_VARSIZE(s, l.total);
	s->magic = STEP_MAGIC;
	s->version = STEP_VERSION;
	s->k = k;
	s->d = d;
	s->metric = metric;
	memcpy(STATE_CENTERS(s, &l), c, sizeof(float) * (Size) k * d);
	for (int j = 0; j < k; j++)
		STATE_FAR_DIST(s, &l)[j] = -1.0f;
	return s;
}

/* Puts every exact sum of s in normal form. */
static void
StateNormalize(StepState *s)
{
	StepLayout	l;
	int64	   *sums;
	int64	   *inertia;

	Layout(s->k, s->d, &l);
	sums = STATE_SUMS(s, &l);
	inertia = STATE_INERTIA(s, &l);
	for (int64 i = 0; i < (int64) s->k * s->d; i++)
		km_exact_normalize(sums + i * KM_EXACT_DIGITS);
	for (int j = 0; j < s->k; j++)
		km_exact_normalize(inertia + (int64) j * KM_EXACT_DIGITS);
	s->pending = 0;
}

/* A state argument, detoasted; the magic and version are checked again as cheap insurance. */
static StepState *
StateArg(FunctionCallInfo fcinfo, int argno)
{
	StepState  *s = (StepState *) PG_DETOAST_DATUM(PG_GETARG_DATUM(argno));

	if (s->magic != STEP_MAGIC || s->version != STEP_VERSION)
		elog(ERROR, "kmeans: a kmeans_step_state argument is not one (this is a bug)");
	return s;
}

/* ------------------------------------------------------------------------------------------
 * The type's input and output: binary (send, receive) and text (the binary form in hex).
 * ---------------------------------------------------------------------------------------- */

static void
BadState(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid kmeans_step_state: %s", why),
			 errhint("A kmeans_step_state comes from the kmeans_step aggregate; it is not written by hand.")));
}

/* The binary form: every field in network byte order, the sums normalized. */
static bytea *
StateSend(StepState *s)
{
	StepLayout	l;
	StringInfoData buf;
	const float *c;
	const int64 *counts,
			   *sums,
			   *inertia;
	int64		kd = (int64) s->k * s->d;

	s = (StepState *) pg_detoast_datum_copy((struct varlena *) s);
	StateNormalize(s);
	Layout(s->k, s->d, &l);
	c = STATE_CENTERS(s, &l);
	counts = STATE_COUNTS(s, &l);
	sums = STATE_SUMS(s, &l);
	inertia = STATE_INERTIA(s, &l);
	pq_begintypsend(&buf);
	pq_sendint32(&buf, STEP_MAGIC);
	pq_sendint32(&buf, STEP_VERSION);
	pq_sendint32(&buf, s->k);
	pq_sendint32(&buf, s->d);
	pq_sendint32(&buf, s->metric);
	pq_sendint64(&buf, s->rows);
	for (int64 i = 0; i < kd; i++)
		pq_sendfloat4(&buf, c[i]);
	for (int j = 0; j < s->k; j++)
		pq_sendint64(&buf, counts[j]);
	for (int64 i = 0; i < kd * KM_EXACT_DIGITS; i++)
		pq_sendint64(&buf, sums[i]);
	for (int64 i = 0; i < (int64) s->k * KM_EXACT_DIGITS; i++)
		pq_sendint64(&buf, inertia[i]);
	for (int64 i = 0; i < kd; i++)
		pq_sendfloat4(&buf, STATE_FAR(s, &l)[i]);
	for (int j = 0; j < s->k; j++)
		pq_sendfloat4(&buf, STATE_FAR_DIST(s, &l)[j]);
	return pq_endtypsend(&buf);
}

/*
 * Reads the binary form, checking everything a state's use relies on: the header, the sizes
 * (before anything is allocated), finite centers, counts that add up to the rows, and sums in
 * normal form, so that no later add can overflow.
 */
static StepState *
StateReceive(StringInfo buf)
{
	int32		magic,
				version,
				k,
				d,
				metric;
	int64		rows,
				total = 0;
	StepLayout	l;
	StepState  *s;
	float	   *c;
	int64	   *counts,
			   *sums,
			   *inertia;
	int64		kd;

	if (buf->len - buf->cursor < 28)
		BadState("too short for its header");
	magic = pq_getmsgint(buf, 4);
	version = pq_getmsgint(buf, 4);
	if (magic != STEP_MAGIC)
		BadState("wrong magic number");
	if (version != STEP_VERSION)
		BadState(psprintf("version %d, this library reads version %d", version, STEP_VERSION));
	k = pq_getmsgint(buf, 4);
	d = pq_getmsgint(buf, 4);
	metric = pq_getmsgint(buf, 4);
	rows = pq_getmsgint64(buf);
	if (k < 1 || k > KMEANS_MAX_K || d < 1 || d > MaxAllocSize / sizeof(float) || rows < 0)
		BadState(psprintf("k = %d, d = %d, rows = " INT64_FORMAT, k, d, rows));
	if (metric < KM_METRIC_EUCLIDEAN || metric > KM_METRIC_IOU)
		BadState(psprintf("metric %d", metric));
	Layout(k, d, &l);
	kd = (int64) k * d;
	if ((int64) (buf->len - buf->cursor) != 8 * kd + 12 * (int64) k + 8 * KM_EXACT_DIGITS * (kd + k))
		BadState(psprintf("%d bytes for k = %d, d = %d", buf->len, k, d));
	s = palloc0(l.total);
	SET_VARSIZE(s, l.total);
	s->magic = STEP_MAGIC;
	s->version = STEP_VERSION;
	s->k = k;
	s->d = d;
	s->metric = metric;
	s->rows = rows;
	c = STATE_CENTERS(s, &l);
	counts = STATE_COUNTS(s, &l);
	sums = STATE_SUMS(s, &l);
	inertia = STATE_INERTIA(s, &l);
	for (int64 i = 0; i < kd; i++)
		if (!isfinite(c[i] = pq_getmsgfloat4(buf)))
			BadState("a center is not finite");
	for (int j = 0; j < k; j++)
	{
		counts[j] = pq_getmsgint64(buf);
		if (counts[j] < 0 || counts[j] > rows - total)
			BadState("the counts do not add up to the rows");
		total += counts[j];
	}
	if (total != rows)
		BadState("the counts do not add up to the rows");
	for (int64 i = 0; i < kd * KM_EXACT_DIGITS; i++)
		sums[i] = pq_getmsgint64(buf);
	for (int64 i = 0; i < (int64) k * KM_EXACT_DIGITS; i++)
		inertia[i] = pq_getmsgint64(buf);
	for (int64 i = 0; i < kd; i++)
		if (!isfinite(STATE_FAR(s, &l)[i] = pq_getmsgfloat4(buf)))
			BadState("a farthest row is not finite");
	for (int j = 0; j < k; j++)
	{
		float		fd = pq_getmsgfloat4(buf);

		/* -1 exactly for a cluster without rows, a distance >= 0 for one with */
		if (counts[j] == 0 ? fd != -1.0f : !(fd >= 0.0f && isfinite(fd)))
			BadState("a farthest distance does not fit its cluster's count");
		STATE_FAR_DIST(s, &l)[j] = fd;
	}
	for (int64 i = 0; i < kd; i++)
		if (!km_exact_is_normal(sums + i * KM_EXACT_DIGITS))
			BadState("a sum is not in normal form");
	for (int j = 0; j < k; j++)
		if (!km_exact_is_normal(inertia + (int64) j * KM_EXACT_DIGITS) ||
			inertia[(int64) j * KM_EXACT_DIGITS + KM_EXACT_DIGITS - 1] < 0)
			BadState("an inertia is not in normal form or negative");
	pq_getmsgend(buf);
	return s;
}

Datum
kmeans_step_state_send(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(StateSend(StateArg(fcinfo, 0)));
}

Datum
kmeans_step_state_recv(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(StateReceive((StringInfo) PG_GETARG_POINTER(0)));
}

/*
 * The text form of a state type: its binary form in hex after "\\x", as bytea prints it
 * in hex (whatever bytea_output says).  kmeans_sample_state's text form is the same.
 */
char *
KmeansStateTextOut(bytea *binary)
{
	Size		len = VARSIZE(binary) - VARHDRSZ;
	char	   *out = palloc(2 * len + 3);

	out[0] = '\\';
	out[1] = 'x';
	hex_encode(VARDATA(binary), len, out + 2);
	out[2 * len + 2] = '\0';
	return out;
}

/* Reads the text form into buf; false when it is not "\\x" and an even number of hex digits. */
bool
KmeansStateTextIn(const char *in, StringInfo buf)
{
	Size		len = strlen(in);

	if (len < 2 || in[0] != '\\' || in[1] != 'x' || (len - 2) % 2 != 0)
		return false;
	initStringInfo(buf);
	enlargeStringInfo(buf, (int) ((len - 2) / 2));
	buf->len = (int) hex_decode(in + 2, len - 2, buf->data);
	return true;
}

Datum
kmeans_step_state_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(KmeansStateTextOut(StateSend(StateArg(fcinfo, 0))));
}

Datum
kmeans_step_state_in(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	if (!KmeansStateTextIn(PG_GETARG_CSTRING(0), &buf))
		BadState("the text form is \\x and an even number of hex digits");
	PG_RETURN_POINTER(StateReceive(&buf));
}

/* ------------------------------------------------------------------------------------------
 * The aggregate.
 * ---------------------------------------------------------------------------------------- */

/* The centers packed for km_row_nearest, kept across calls in fn_extra. */
typedef struct StepCache
{
	int32		gen;			/* changes whenever the packed centers do */
	int			k;
	int			d;
	int			metric;
	float	   *centers;
	float	   *packed;
} StepCache;

/* The packed centers of state s: the cached ones, or packed again if s has other centers. */
static const float *
Packed(FunctionCallInfo fcinfo, StepState *s, const float *c)
{
	StepCache  *cache = fcinfo->flinfo->fn_extra;
	MemoryContext cxt = fcinfo->flinfo->fn_mcxt;
	Size		kd = (Size) s->k * s->d;

	if (cache == NULL)
		cache = fcinfo->flinfo->fn_extra = MemoryContextAllocZero(cxt, sizeof(StepCache));
	else if (cache->gen == s->cache_gen)
		return cache->packed;
	if (cache->k != s->k || cache->d != s->d || cache->metric != s->metric ||
		memcmp(cache->centers, c, sizeof(float) * kd) != 0)
	{
		if (cache->centers)
		{
			pfree(cache->centers);
			pfree(cache->packed);
		}
		cache->k = s->k;
		cache->d = s->d;
		cache->metric = s->metric;
		cache->centers = MemoryContextAlloc(cxt, sizeof(float) * kd);
		memcpy(cache->centers, c, sizeof(float) * kd);
		cache->packed = MemoryContextAlloc(cxt, sizeof(float) * km_row_packed_floats(s->k, s->d));
		if (s->metric == KM_METRIC_COSINE)
		{
			/* unit centers: the nearest by |x - c|^2 is the largest cosine (metric.c) */
			float	   *unit = palloc(sizeof(float) * kd);

			memcpy(unit, c, sizeof(float) * kd);
			for (int j = 0; j < s->k; j++)
				(void) KmeansMetricPrepareRow(KM_METRIC_COSINE, unit + (Size) j * s->d, s->d);
			km_row_pack(unit, s->k, s->d, cache->packed);
			pfree(unit);
		}
		else
			km_row_pack(c, s->k, s->d, cache->packed);
		cache->gen++;
	}
	s->cache_gen = cache->gen;
	return cache->packed;
}

/*
 * Whether the aggregate's centers argument is the same for every row of the query: a constant
 * or a parameter (a bind value, or a subquery's result).  Otherwise every row's centers are
 * compared with the state's.
 */
static bool
CentersStable(FunctionCallInfo fcinfo)
{
	Aggref	   *agg = AggGetAggref(fcinfo);
	Node	   *arg;

	if (agg == NULL || list_length(agg->args) < 2)
		return false;
	arg = (Node *) ((TargetEntry *) lsecond(agg->args))->expr;
	return IsA(arg, Const) || IsA(arg, Param);
}

/* The metric argument of kmeans_step(x, centers, metric); Euclidean without it. */
static KmMetric
StepMetric(FunctionCallInfo fcinfo)
{
	if (PG_NARGS() < 4)
		return KM_METRIC_EUCLIDEAN;
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kmeans_step: metric must not be NULL"),
				 errhint("Use 'euclidean', 'cosine' or 'iou'.")));
	{
		KmMetric	metric = KmeansMetricByName(text_to_cstring(PG_GETARG_TEXT_PP(3)));

		KmeansMetricVectorOnly(metric, "kmeans_step");
		return metric;
	}
}

/* The centers must be fit for the metric: of nonzero length under cosine, boxes under iou. */
static void
CheckCenters(const float *c, int k, int d, KmMetric metric)
{
	for (int j = 0; j < k && metric != KM_METRIC_EUCLIDEAN; j++)
	{
		float	   *row = palloc(sizeof(float) * d);
		const char *bad;

		memcpy(row, c + (Size) j * d, sizeof(float) * d);
		if ((bad = KmeansMetricPrepareRow(metric, row, d)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("kmeans_step: center %d %s", j, bad),
					 errhint("Pass centers the %s metric can compare with.", KmeansMetricName(metric))));
		pfree(row);
	}
}

static const char *const centers_hint =
"Pass the same k x d centers in every row, e.g. as a constant or a scalar subquery.";

/* kmeans_step's transition: the row's nearest center takes the row. */
Datum
kmeans_step_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	StepState  *s;
	StepLayout	l;
	const float *x;
	const float *c;
	float		dist;
	int32		j;
	int64	   *sums;
	float		stack_row[256];
	float	   *row;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		KmeansNotAggregate("kmeans_step_transfn", "kmeans_step");
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kmeans_step: centers must not be NULL"),
				 errhint("%s", centers_hint)));
	if (PG_ARGISNULL(0))
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(2);
		int			k,
					d;
		const float *given = KmeansCheckPredictCenters(a, &k, &d);
		KmMetric	metric = StepMetric(fcinfo);
		MemoryContext old;

		KmeansCheckK(k, -1, "the number of centers");
		CheckCenters(given, k, d, metric);
		old = MemoryContextSwitchTo(aggcxt);
		s = StateMake(given, k, d, metric);
		MemoryContextSwitchTo(old);
	}
	else
	{
		s = (StepState *) PG_GETARG_POINTER(0);
		if (PG_NARGS() > 3 && !CentersStable(fcinfo) && StepMetric(fcinfo) != (KmMetric) s->metric)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("kmeans_step: the metric differs between rows of one aggregate"),
					 errhint("Pass the same metric in every row.")));
		if (!CentersStable(fcinfo))
		{
			ArrayType  *a = PG_GETARG_ARRAYTYPE_P(2);
			KmeansArrayView v;

			KmeansArrayViewOf(a, &v);
			Layout(s->k, s->d, &l);
			if (v.ndim != 2 || v.dims[0] != s->k || v.dims[1] != s->d || v.nulls != NULL ||
				memcmp(v.values, STATE_CENTERS(s, &l), sizeof(float) * (Size) s->k * s->d) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("kmeans_step: the centers differ between rows of one aggregate"),
						 errdetail("The first row's centers are %d x %d.", s->k, s->d),
						 errhint("%s", centers_hint)));
		}
	}
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(s);	/* a NULL vector is skipped, as every fit skips it */

	Layout(s->k, s->d, &l);
	c = STATE_CENTERS(s, &l);
	/* the row, read in place into a buffer of the transition's own (no copy to detoast) */
	row = s->d <= lengthof(stack_row) ? stack_row : palloc(sizeof(float) * s->d);
	KmeansReadVector(PG_GETARG_DATUM(1), s->d, row, "each center",
					 "Pass vectors of the centers' length; slice them (col[1:n]) or filter them in a query.");
	if (s->metric != KM_METRIC_EUCLIDEAN)
	{
		/* the row as the metric takes it: a unit vector under cosine, a box under iou */
		const char *bad;

		if ((bad = KmeansMetricPrepareRow((KmMetric) s->metric, row, s->d)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("kmeans_step: the vector %s", bad),
					 errhint("%s", KmeansMetricRowHint((KmMetric) s->metric))));
	}
	x = row;
	if (s->metric == KM_METRIC_IOU)
	{
		/* 1 - IoU to every center, lowest index on ties, as km_argmin_iou */
		dist = INFINITY;
		j = 0;
		for (int i = 0; i < s->k; i++)
		{
			float		cost = km_iou_cost(x, c + (Size) i * 2);

			if (cost < dist)
			{
				dist = cost;
				j = i;
			}
		}
	}
	else
		j = km_row_nearest(x, s->d, Packed(fcinfo, s, c), s->k, &dist);
	if (!isfinite(dist))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("kmeans_step: the squared distance of a vector to every center overflows float4"),
				 errdetail("The vector's first value is %g.", (double) x[0]),
				 errhint("Scale the vectors and centers down, e.g. divide them by 1e10 in a query.")));
	if (s->pending >= KM_EXACT_MAX_PENDING)
		StateNormalize(s);
	sums = STATE_SUMS(s, &l) + (int64) j * s->d * KM_EXACT_DIGITS;
	for (int t = 0; t < s->d; t++)
		km_exact_add(sums + (int64) t * KM_EXACT_DIGITS, x[t]);
	km_exact_add(STATE_INERTIA(s, &l) + (int64) j * KM_EXACT_DIGITS, dist);
	if (Farther(dist, x, STATE_FAR_DIST(s, &l)[j], STATE_FAR(s, &l) + (int64) j * s->d, s->d))
	{
		STATE_FAR_DIST(s, &l)[j] = dist;
		memcpy(STATE_FAR(s, &l) + (int64) j * s->d, x, sizeof(float) * s->d);
	}
	STATE_COUNTS(s, &l)[j]++;
	s->rows++;
	s->pending++;
	PG_RETURN_POINTER(s);
}

/* kmeans_step's combine: the second state's rows added to the first's (strict: both given). */
Datum
kmeans_step_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	StepState  *a,
			   *b;
	StepLayout	l;
	int64		kd;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		KmeansNotAggregate("kmeans_step_combine", "kmeans_step");
	a = StateArg(fcinfo, 0);
	b = StateArg(fcinfo, 1);
	Layout(a->k, a->d, &l);
	kd = (int64) a->k * a->d;
	if (a->k != b->k || a->d != b->d || a->metric != b->metric ||
		memcmp(STATE_CENTERS(a, &l), STATE_CENTERS(b, &l), sizeof(float) * kd) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kmeans_step: cannot combine the states of two different sets of centers"),
				 errdetail("They are %d x %d and %d x %d centers%s.", a->k, a->d, b->k, b->d,
						   a->k == b->k && a->d == b->d ? " of other values" : ""),
				 errhint("%s", centers_hint)));
	/* a is the aggregate's own state (strict combine: PostgreSQL copied the first one in) */
	StateNormalize(a);
	StateNormalize(b);
	for (int64 i = 0; i < kd; i++)
		km_exact_merge(STATE_SUMS(a, &l) + i * KM_EXACT_DIGITS, STATE_SUMS(b, &l) + i * KM_EXACT_DIGITS);
	for (int j = 0; j < a->k; j++)
	{
		km_exact_merge(STATE_INERTIA(a, &l) + (int64) j * KM_EXACT_DIGITS,
					   STATE_INERTIA(b, &l) + (int64) j * KM_EXACT_DIGITS);
		STATE_COUNTS(a, &l)[j] += STATE_COUNTS(b, &l)[j];
		if (Farther(STATE_FAR_DIST(b, &l)[j], STATE_FAR(b, &l) + (int64) j * a->d,
					STATE_FAR_DIST(a, &l)[j], STATE_FAR(a, &l) + (int64) j * a->d, a->d))
		{
			STATE_FAR_DIST(a, &l)[j] = STATE_FAR_DIST(b, &l)[j];
			memcpy(STATE_FAR(a, &l) + (int64) j * a->d, STATE_FAR(b, &l) + (int64) j * a->d,
				   sizeof(float) * a->d);
		}
	}
	a->rows += b->rows;
	PG_RETURN_POINTER(a);
}

/* A float8[] of n values. */
static Datum
Float8Array(const double *v, int n)
{
	Datum	   *e = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		e[i] = Float8GetDatum(v[i]);
	return PointerGetDatum(construct_array(e, n, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/*
 * kmeans_step's final function: (centers, sizes, inertia, cluster_inertia, n_rows,
 * center_shift).  Reads a normalized copy: the state stays as it was (a window may call it
 * again).
 */
Datum
kmeans_step_final(PG_FUNCTION_ARGS)
{
	StepState  *s = (StepState *) pg_detoast_datum_copy((struct varlena *) PG_GETARG_POINTER(0));
	StepLayout	l;
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};
	int			k = s->k,
				d = s->d;
	float	   *c;
	const float *old;
	int64	   *counts;
	Datum	   *sizes;
	double	   *cluster;
	int64		total[KM_EXACT_DIGITS] = {0};
	double		shift = 0.0;
	float	   *zero;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "kmeans_step_final must return a composite type");
	desc = BlessTupleDesc(desc);
	StateNormalize(s);
	Layout(k, d, &l);
	old = STATE_CENTERS(s, &l);
	counts = STATE_COUNTS(s, &l);
	c = palloc(sizeof(float) * (Size) k * d);
	zero = palloc0(sizeof(float) * d);
	sizes = palloc(sizeof(Datum) * k);
	cluster = palloc(sizeof(double) * k);
	for (int j = 0; j < k; j++)
	{
		const int64 *inertia = STATE_INERTIA(s, &l) + (int64) j * KM_EXACT_DIGITS;

		for (int t = 0; t < d; t++)
		{
			int64		at = (int64) j * d + t;

			c[at] = counts[j] > 0 ?
				(float) (km_exact_value(STATE_SUMS(s, &l) + at * KM_EXACT_DIGITS) / counts[j]) :
				old[at];
		}
		/* under cosine the normalised mean; a mean of length 0 keeps the center */
		if (counts[j] > 0)
			KmeansMetricFinishCenter((KmMetric) s->metric, c + (int64) j * d, old + (int64) j * d,
									 zero, d);
		for (int t = 0; t < d; t++)
		{
			int64		at = (int64) j * d + t;

			shift += ((double) c[at] - old[at]) * ((double) c[at] - old[at]);
		}
		sizes[j] = Int64GetDatum(counts[j]);
		cluster[j] = KmeansMetricInertia((KmMetric) s->metric, km_exact_value(inertia));
		km_exact_merge(total, inertia);
	}
	values[0] = KmeansCentersDatum(c, k, d);
	values[1] = PointerGetDatum(construct_array(sizes, k, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[2] = Float8GetDatum(KmeansMetricInertia((KmMetric) s->metric, km_exact_value(total)));
	values[3] = Float8Array(cluster, k);
	values[4] = Int64GetDatum(s->rows);
	values[5] = Float8GetDatum(shift);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * A kmeans_step_state as plain arrays (the aggregate strategy reads its passes so): rows per
 * cluster, the sums and the inertia read from their exact form (the inertia as the squared
 * distances or 1 - IoU summed, before KmeansMetricInertia), and each cluster's farthest row.
 * Allocated in the current memory context.
 */
void
KmeansStepStateRead(Datum state, KmeansStepSums *out)
{
	StepState  *s = (StepState *) pg_detoast_datum_copy((struct varlena *) DatumGetPointer(state));
	StepLayout	l;
	int64		kd;

	if (s->magic != STEP_MAGIC || s->version != STEP_VERSION)
		elog(ERROR, "kmeans: a pass returned something other than a kmeans_step_state (this is a bug)");
	StateNormalize(s);
	Layout(s->k, s->d, &l);
	kd = (int64) s->k * s->d;
	out->k = s->k;
	out->d = s->d;
	out->rows = s->rows;
	out->counts = palloc(sizeof(int64) * s->k);
	out->sums = palloc(sizeof(double) * kd);
	out->inertia = palloc(sizeof(double) * s->k);
	out->far = palloc(sizeof(float) * kd);
	out->far_dist = palloc(sizeof(float) * s->k);
	memcpy(out->counts, STATE_COUNTS(s, &l), sizeof(int64) * s->k);
	memcpy(out->far, STATE_FAR(s, &l), sizeof(float) * kd);
	memcpy(out->far_dist, STATE_FAR_DIST(s, &l), sizeof(float) * s->k);
	for (int64 i = 0; i < kd; i++)
		out->sums[i] = km_exact_value(STATE_SUMS(s, &l) + i * KM_EXACT_DIGITS);
	for (int j = 0; j < s->k; j++)
		out->inertia[j] = km_exact_value(STATE_INERTIA(s, &l) + (int64) j * KM_EXACT_DIGITS);
	pfree(s);
}
