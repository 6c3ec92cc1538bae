/*
 * sample.c -- kmeans_sample_partial: the seeding pass of the aggregate strategy, as an
 * aggregate that parallel workers and Citus nodes can run and combine.
 *
 * One pass gives the rows' count, per-dimension sums and sum of squares (the mean and the
 * variance the tolerance is relative to), and a sample of at most m rows drawn from them:
 *
 *   - without centers (random seeding, and the first center of k-means||), the m rows with the
 *     smallest u(x), a uniform number in (0, 1] that a hash of the row's values and the seed
 *     gives: m distinct rows, uniformly;
 *   - with centers C (a round of k-means||, Bahmani et al. 2012), the m rows with the largest
 *     D(x)^2 / u(x), D(x)^2 the squared distance (or 1 - IoU) to the nearest center of C, and
 *     phi, the exact sum of D(x)^2.  The caller keeps those with D(x)^2 / u(x) >= phi / l, that
 *     is u(x) <= l D(x)^2 / phi: each row with probability min(1, l D(x)^2 / phi), as the
 *     algorithm draws them, and m (4 l) leaves room for far more than the l rows expected.
 *
 * u(x) depends on the row's values, the seed and the round only, and the sums are exact
 * (km_exact.h), so the sample is the same set of rows however the rows are split among workers
 * and in whatever order the parts are combined.  Rows with equal values are one candidate.
 * The state is a type of its own, as kmeans_step's is, with checked binary and text forms.
 */
#include "kmeans.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "km_exact.h"

PG_FUNCTION_INFO_V1(kmeans_sample_state_in);
PG_FUNCTION_INFO_V1(kmeans_sample_state_out);
PG_FUNCTION_INFO_V1(kmeans_sample_state_recv);
PG_FUNCTION_INFO_V1(kmeans_sample_state_send);
PG_FUNCTION_INFO_V1(kmeans_sample_transfn);
PG_FUNCTION_INFO_V1(kmeans_sample_combine);

#define SAMPLE_MAGIC 0x4b4d5341	/* "KMSA" */
#define SAMPLE_VERSION 1
#define SAMPLE_MAX_M 1000000

/*
 * The state: this header, the centers (kc x d), the exact sums (d of the values, one of their
 * squares, one of D^2), then m entries of (key, hash, row), nkept of them in use, kept as a
 * min-heap on the key.
 */
typedef struct SampleState
{
	int32		vl_len_;
	int32		magic;
	int32		version;
	int32		d;
	int32		kc;
	int32		metric;
	int32		m;
	int32		nkept;
	int32		round;
	int32		unused;
	int64		seed;
	int64		rows;
	int64		pending;
} SampleState;

typedef struct SampleLayout
{
	Size		centers;
	Size		sums;
	Size		sumsq;
	Size		phi;
	Size		entries;
	Size		entry;			/* bytes per entry */
	Size		total;
} SampleLayout;

typedef struct SampleEntry
{
	double		key;
	uint64		hash;
	float		x[FLEXIBLE_ARRAY_MEMBER];
} SampleEntry;

static void
Layout(int d, int kc, int m, SampleLayout *l)
{
	double		bytes = MAXALIGN(sizeof(SampleState)) + 4.0 * kc * d + 8.0 +
		8.0 * KM_EXACT_DIGITS * (d + 2) + (double) m * (16.0 + 4.0 * d + 8.0);
	double		limit = Min((double) MaxAllocSize, (double) kmeans_max_memory * 1024.0);

	if (bytes > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("kmeans_sample's state for %d rows of dimension %d and %d centers needs %.0f MB, more than %.0f MB",
						m, d, kc, bytes / (1024.0 * 1024.0), limit / (1024.0 * 1024.0)),
				 errhint("Ask for fewer clusters, or raise kmeans.max_memory.")));
	l->centers = MAXALIGN(sizeof(SampleState));
	l->sums = l->centers + MAXALIGN(sizeof(float) * (Size) kc * d);
	l->sumsq = l->sums + sizeof(int64) * KM_EXACT_DIGITS * (Size) d;
	l->phi = l->sumsq + sizeof(int64) * KM_EXACT_DIGITS;
	l->entries = l->phi + sizeof(int64) * KM_EXACT_DIGITS;
	l->entry = MAXALIGN(offsetof(SampleEntry, x) + sizeof(float) * (Size) d);
	l->total = l->entries + l->entry * (Size) m;
}

#define S_CENTERS(s, l) ((float *) ((char *) (s) + (l)->centers))
#define S_SUMS(s, l) ((int64 *) ((char *) (s) + (l)->sums))
#define S_SUMSQ(s, l) ((int64 *) ((char *) (s) + (l)->sumsq))
#define S_PHI(s, l) ((int64 *) ((char *) (s) + (l)->phi))
#define S_ENTRY(s, l, i) ((SampleEntry *) ((char *) (s) + (l)->entries + (l)->entry * (Size) (i)))

/* An empty state of layout l, in the current memory context. */
static SampleState *
StateMake(const SampleLayout *l, int d, int kc, int metric, int m, int64 seed, int round)
{
	SampleState *s = palloc0(l->total);

	SET_VARSIZE(s, l->total);
	s->magic = SAMPLE_MAGIC;
	s->version = SAMPLE_VERSION;
	s->d = d;
	s->kc = kc;
	s->metric = metric;
	s->m = m;
	s->seed = seed;
	s->round = round;
	return s;
}

/* splitmix64's finaliser */
static inline uint64
Mix(uint64 z)
{
	z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* The row's hash: its values' bits, the seed and the round. */
static uint64
RowHash(const float *x, int d, int64 seed, int round)
{
	uint64		h = Mix((uint64) seed * UINT64CONST(0x9E3779B97F4A7C15) + (uint64) round);

	for (int t = 0; t < d; t++)
	{
		uint32		b;

		memcpy(&b, x + t, sizeof(b));
		h = Mix(h ^ (b + UINT64CONST(0x9E3779B97F4A7C15) * (uint64) (t + 1)));
	}
	return h;
}

/* u(x) in (0, 1] from the hash. */
static inline double
Uniform(uint64 h)
{
	return ((double) (h >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Entry a before b: a larger key, then a larger hash, then larger bits: a total order. */
static bool
Before(const SampleEntry *a, const SampleEntry *b, int d)
{
	if (a->key != b->key)
		return a->key > b->key;
	if (a->hash != b->hash)
		return a->hash > b->hash;
	for (int t = 0; t < d; t++)
	{
		uint32		x,
					y;

		memcpy(&x, a->x + t, sizeof(x));
		memcpy(&y, b->x + t, sizeof(y));
		if (x != y)
			return x > y;
	}
	return false;
}

static void
Swap(SampleState *s, const SampleLayout *l, int i, int j, SampleEntry *tmp)
{
	memcpy(tmp, S_ENTRY(s, l, i), l->entry);
	memcpy(S_ENTRY(s, l, i), S_ENTRY(s, l, j), l->entry);
	memcpy(S_ENTRY(s, l, j), tmp, l->entry);
}

/*
 * Offers an entry to the heap (the kept entry that comes last on top): kept when there is room
 * or it comes before the top, unless the same row is kept already.
 */
static void
Offer(SampleState *s, const SampleLayout *l, const SampleEntry *e, SampleEntry *tmp)
{
	int			i;

	if (s->m == 0)
		return;
	if (s->nkept == s->m && !Before(e, S_ENTRY(s, l, 0), s->d))
		return;
	for (int j = 0; j < s->nkept; j++)
	{
		SampleEntry *k = S_ENTRY(s, l, j);

		if (k->hash == e->hash && memcmp(k->x, e->x, sizeof(float) * s->d) == 0)
			return;
	}
	if (s->nkept < s->m)
	{
		i = s->nkept++;
		memcpy(S_ENTRY(s, l, i), e, l->entry);
		/* sift up: an entry that comes later than its parent goes up */
		while (i > 0 && Before(S_ENTRY(s, l, (i - 1) / 2), S_ENTRY(s, l, i), s->d))
		{
			Swap(s, l, i, (i - 1) / 2, tmp);
			i = (i - 1) / 2;
		}
		return;
	}
	memcpy(S_ENTRY(s, l, 0), e, l->entry);
	i = 0;
	for (;;)
	{
		int			a = 2 * i + 1,
					b = a + 1,
					w = i;

		if (a < s->nkept && Before(S_ENTRY(s, l, w), S_ENTRY(s, l, a), s->d))
			w = a;
		if (b < s->nkept && Before(S_ENTRY(s, l, w), S_ENTRY(s, l, b), s->d))
			w = b;
		if (w == i)
			break;
		Swap(s, l, i, w, tmp);
		i = w;
	}
}

static void
Normalize(SampleState *s, const SampleLayout *l)
{
	for (int t = 0; t < s->d; t++)
		km_exact_normalize(S_SUMS(s, l) + (int64) t * KM_EXACT_DIGITS);
	km_exact_normalize(S_SUMSQ(s, l));
	km_exact_normalize(S_PHI(s, l));
	s->pending = 0;
}

static void
BadState(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid kmeans_sample_state: %s", why),
			 errhint("A kmeans_sample_state comes from the kmeans_sample_partial aggregate; it is not written by hand.")));
}

static bytea *
StateSend(SampleState *s0)
{
	SampleState *s = (SampleState *) pg_detoast_datum_copy((struct varlena *) s0);
	SampleLayout l;
	StringInfoData buf;

	Layout(s->d, s->kc, s->m, &l);
	Normalize(s, &l);
	pq_begintypsend(&buf);
	pq_sendint32(&buf, SAMPLE_MAGIC);
	pq_sendint32(&buf, SAMPLE_VERSION);
	pq_sendint32(&buf, s->d);
	pq_sendint32(&buf, s->kc);
	pq_sendint32(&buf, s->metric);
	pq_sendint32(&buf, s->m);
	pq_sendint32(&buf, s->nkept);
	pq_sendint32(&buf, s->round);
	pq_sendint64(&buf, s->seed);
	pq_sendint64(&buf, s->rows);
	for (int64 i = 0; i < (int64) s->kc * s->d; i++)
		pq_sendfloat4(&buf, S_CENTERS(s, &l)[i]);
	for (int64 i = 0; i < (int64) (s->d + 2) * KM_EXACT_DIGITS; i++)
		pq_sendint64(&buf, S_SUMS(s, &l)[i]);	/* sums, sumsq and phi are contiguous */
	for (int i = 0; i < s->nkept; i++)
	{
		SampleEntry *e = S_ENTRY(s, &l, i);

		pq_sendfloat8(&buf, e->key);
		pq_sendint64(&buf, (int64) e->hash);
		for (int t = 0; t < s->d; t++)
			pq_sendfloat4(&buf, e->x[t]);
	}
	return pq_endtypsend(&buf);
}

static SampleState *
StateReceive(StringInfo buf)
{
	int32		d,
				kc,
				metric,
				m,
				nkept,
				round;
	int64		seed,
				rows;
	SampleLayout l;
	SampleState *s;
	SampleEntry *tmp;

	if (buf->len - buf->cursor < 48)
		BadState("too short for its header");
	if (pq_getmsgint(buf, 4) != SAMPLE_MAGIC)
		BadState("wrong magic number");
	if (pq_getmsgint(buf, 4) != SAMPLE_VERSION)
		BadState("unknown version");
	d = pq_getmsgint(buf, 4);
	kc = pq_getmsgint(buf, 4);
	metric = pq_getmsgint(buf, 4);
	m = pq_getmsgint(buf, 4);
	nkept = pq_getmsgint(buf, 4);
	round = pq_getmsgint(buf, 4);
	seed = pq_getmsgint64(buf);
	rows = pq_getmsgint64(buf);
	if (d < 1 || d > 100000 || kc < 0 || kc > KMEANS_MAX_K || m < 0 || m > SAMPLE_MAX_M ||
		nkept < 0 || nkept > m || (int64) nkept > rows || metric < KM_METRIC_EUCLIDEAN ||
		metric > KM_METRIC_IOU || round < 0)
		BadState("its sizes are out of range");
	Layout(d, kc, m, &l);
	if ((int64) (buf->len - buf->cursor) !=
		4 * (int64) kc * d + 8 * (int64) (d + 2) * KM_EXACT_DIGITS + (int64) nkept * (16 + 4 * d))
		BadState("its length does not match its sizes");
	s = StateMake(&l, d, kc, metric, m, seed, round);
	s->rows = rows;
	for (int64 i = 0; i < (int64) kc * d; i++)
		if (!isfinite(S_CENTERS(s, &l)[i] = pq_getmsgfloat4(buf)))
			BadState("a center is not finite");
	for (int64 i = 0; i < (int64) (d + 2) * KM_EXACT_DIGITS; i++)
		S_SUMS(s, &l)[i] = pq_getmsgint64(buf);
	for (int t = 0; t < d + 2; t++)
		if (!km_exact_is_normal(S_SUMS(s, &l) + (int64) t * KM_EXACT_DIGITS))
			BadState("a sum is not in normal form");
	tmp = palloc(l.entry);
	for (int i = 0; i < nkept; i++)
	{
		SampleEntry *e = palloc0(l.entry);

		e->key = pq_getmsgfloat8(buf);
		e->hash = (uint64) pq_getmsgint64(buf);
		for (int t = 0; t < d; t++)
			if (!isfinite(e->x[t] = pq_getmsgfloat4(buf)))
				BadState("a sampled row is not finite");
		if (!(e->key >= 0.0) || isinf(e->key))
			BadState("a key is not a finite number >= 0");
		Offer(s, &l, e, tmp);	/* the heap is rebuilt, not trusted */
		pfree(e);
	}
	pq_getmsgend(buf);
	return s;
}

Datum
kmeans_sample_state_send(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(StateSend((SampleState *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0))));
}

Datum
kmeans_sample_state_recv(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(StateReceive((StringInfo) PG_GETARG_POINTER(0)));
}

Datum
kmeans_sample_state_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(KmeansStateTextOut(StateSend((SampleState *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0)))));
}

Datum
kmeans_sample_state_in(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	if (!KmeansStateTextIn(PG_GETARG_CSTRING(0), &buf))
		BadState("the text form is \\x and an even number of hex digits");
	PG_RETURN_POINTER(StateReceive(&buf));
}

/*
 * kmeans_sample_partial(x, centers, metric, m, seed, round)'s transition.  centers may be NULL
 * (no centers); the other arguments are the same in every row (the state keeps the first
 * row's; the aggregate strategy passes constants).
 */
Datum
kmeans_sample_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	SampleState *s;
	SampleLayout l;
	float	   *row;
	SampleEntry *e;
	double		dist = 0.0;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		KmeansNotAggregate("kmeans_sample_transfn", "kmeans_sample_partial");
	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));	/* NULL vectors are skipped */
	if (PG_ARGISNULL(0))
	{
		KmeansArrayView v;
		int			d,
					kc = 0,
					m;
		const float *c = NULL;
		KmMetric	metric;
		MemoryContext old;

		for (int i = 3; i < PG_NARGS(); i++)
			if (PG_ARGISNULL(i))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("kmeans_sample_partial: only centers may be NULL")));
		KmeansArrayViewOf(PG_GETARG_ARRAYTYPE_P(1), &v);
		d = (int) v.nitems;
		if (!PG_ARGISNULL(2))
		{
			int			cd;

			c = KmeansCheckPredictCenters(PG_GETARG_ARRAYTYPE_P(2), &kc, &cd);
			if (cd != d)
				ereport(ERROR,
						(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						 errmsg("vector has %d values, each center has dimension %d", d, cd)));
		}
		metric = KmeansMetricByName(text_to_cstring(PG_GETARG_TEXT_PP(3)));
		KmeansMetricVectorOnly(metric, "kmeans_sample");
		m = PG_GETARG_INT32(4);
		if (m < 0 || m > SAMPLE_MAX_M || d < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("kmeans_sample_partial: m must be in [0, %d], got %d", SAMPLE_MAX_M, m)));
		Layout(d, kc, m, &l);
		old = MemoryContextSwitchTo(aggcxt);
		s = StateMake(&l, d, kc, metric, m, PG_GETARG_INT64(5), PG_NARGS() > 6 ? PG_GETARG_INT32(6) : 0);
		MemoryContextSwitchTo(old);
		if (kc > 0)
		{
			memcpy(S_CENTERS(s, &l), c, sizeof(float) * (Size) kc * d);
			/* under cosine the centers are unit vectors, as the rows will be */
			for (int j = 0; j < kc && metric == KM_METRIC_COSINE; j++)
				(void) KmeansMetricPrepareRow(metric, S_CENTERS(s, &l) + (Size) j * d, d);
		}
	}
	else
	{
		s = (SampleState *) PG_GETARG_POINTER(0);
		Layout(s->d, s->kc, s->m, &l);
	}

	row = palloc(sizeof(float) * s->d);
	KmeansReadVector(PG_GETARG_DATUM(1), s->d, row, "the first row",
					 "All vectors must have the same length; slice them (col[1:n]) or filter them in a query.");
	{
		const char *bad = KmeansMetricPrepareRow((KmMetric) s->metric, row, s->d);

		if (bad)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("kmeans_sample_partial: the vector %s", bad),
					 errhint("%s", KmeansMetricRowHint((KmMetric) s->metric))));
	}
	if (s->pending >= KM_EXACT_MAX_PENDING)
		Normalize(s, &l);
	for (int t = 0; t < s->d; t++)
	{
		km_exact_add(S_SUMS(s, &l) + (int64) t * KM_EXACT_DIGITS, row[t]);
		km_exact_add(S_SUMSQ(s, &l), row[t] * row[t]);
	}
	s->rows++;
	s->pending += s->d;

	e = palloc(l.entry);
	e->hash = RowHash(row, s->d, s->seed, s->round);
	memcpy(e->x, row, sizeof(float) * s->d);
	if (s->kc > 0)
	{
		const float *c = S_CENTERS(s, &l);
		float		best = INFINITY;

		for (int j = 0; j < s->kc; j++)
		{
			float		v = s->metric == KM_METRIC_IOU ? km_iou_cost(row, c + (Size) j * 2) :
				km_dist2(row, c + (Size) j * s->d, s->d);

			if (v < best)
				best = v;
		}
		if (!isfinite(best))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("kmeans_sample_partial: the squared distance of a vector to every center overflows float4")));
		dist = best;
		km_exact_add(S_PHI(s, &l), best);
		e->key = dist / Uniform(e->hash);
	}
	else
		e->key = 1.0 / Uniform(e->hash);
	if (e->key > 0.0)
		Offer(s, &l, e, palloc(l.entry));
	PG_RETURN_POINTER(s);
}

Datum
kmeans_sample_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	SampleState *a,
			   *b;
	SampleLayout l;
	SampleEntry *tmp;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		KmeansNotAggregate("kmeans_sample_combine", "kmeans_sample_partial");
	a = (SampleState *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0));
	b = (SampleState *) PG_DETOAST_DATUM(PG_GETARG_DATUM(1));
	if (a->d != b->d || a->kc != b->kc || a->m != b->m || a->metric != b->metric ||
		a->seed != b->seed || a->round != b->round)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kmeans_sample_partial: cannot combine the states of different calls")));
	Layout(a->d, a->kc, a->m, &l);
	if (memcmp(S_CENTERS(a, &l), S_CENTERS(b, &l), sizeof(float) * (Size) a->kc * a->d) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kmeans_sample_partial: cannot combine the states of different centers")));
	Normalize(a, &l);
	Normalize(b, &l);
	for (int t = 0; t < a->d + 2; t++)
		km_exact_merge(S_SUMS(a, &l) + (int64) t * KM_EXACT_DIGITS,
					   S_SUMS(b, &l) + (int64) t * KM_EXACT_DIGITS);
	tmp = palloc(l.entry);
	for (int i = 0; i < b->nkept; i++)
		Offer(a, &l, S_ENTRY(b, &l, i), tmp);
	a->rows += b->rows;
	PG_RETURN_POINTER(a);
}

static int
EntryCmp(const void *pa, const void *pb, void *arg)
{
	const SampleEntry *a = *(SampleEntry *const *) pa;
	const SampleEntry *b = *(SampleEntry *const *) pb;
	int			d = *(const int *) arg;

	return Before(a, b, d) ? -1 : Before(b, a, d) ? 1 : 0;
}

/* A kmeans_sample_state as plain values: the statistics, and the sample first key first. */
void
KmeansSampleStateRead(Datum state, KmeansSample *out)
{
	SampleState *s = (SampleState *) pg_detoast_datum_copy((struct varlena *) DatumGetPointer(state));
	SampleLayout l;
	SampleEntry **by;

	if (s->magic != SAMPLE_MAGIC || s->version != SAMPLE_VERSION)
		elog(ERROR, "kmeans: a pass returned something other than a kmeans_sample_state (this is a bug)");
	Layout(s->d, s->kc, s->m, &l);
	Normalize(s, &l);
	out->d = s->d;
	out->rows = s->rows;
	out->sums = palloc(sizeof(double) * s->d);
	for (int t = 0; t < s->d; t++)
		out->sums[t] = km_exact_value(S_SUMS(s, &l) + (int64) t * KM_EXACT_DIGITS);
	out->sumsq = km_exact_value(S_SUMSQ(s, &l));
	out->phi = km_exact_value(S_PHI(s, &l));
	out->n = s->nkept;
	out->keys = palloc(sizeof(double) * Max(1, s->nkept));
	out->x = palloc(sizeof(float) * (Size) Max(1, s->nkept) * s->d);
	by = palloc(sizeof(SampleEntry *) * Max(1, s->nkept));
	for (int i = 0; i < s->nkept; i++)
		by[i] = S_ENTRY(s, &l, i);
	qsort_arg(by, s->nkept, sizeof(SampleEntry *), EntryCmp, &s->d);
	for (int i = 0; i < s->nkept; i++)
	{
		out->keys[i] = by[i]->key;
		memcpy(out->x + (Size) i * s->d, by[i]->x, sizeof(float) * s->d);
	}
}
