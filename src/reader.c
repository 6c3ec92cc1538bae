/*
 * reader.c -- rows from a table, view or query into float32 batches.
 *
 * The source is run through SPI with a DestReceiver of our own, so each result row is read
 * straight out of the executor's slot: a real[] without NULLs is a header and a run of floats,
 * copied into the batch with one memcpy and checked in place.  The first pass validates every
 * row, counts them, computes the per-dimension mean and variance and, while the data fits
 * kmeans.memory_limit, keeps it in resident chunks.  When it does not fit, every later pass
 * runs the source again and hands batches of kmeans.batch_rows rows to the caller.
 *
 * Every pass runs with the snapshot of the calling statement (read-only SPI), with synchronized
 * sequential scans and parallel plans switched off, so that every pass sees the same rows in
 * the same order: per-row state (labels, distances) is indexed by row position.
 *
 * Sizes.  The first row fixes d; then the fit's memory is estimated (budget.c) and checked
 * again every 1024 rows, the cache being given up first when the estimate outgrows
 * kmeans.max_memory.  A resident chunk or a streamed batch holds at most as many rows as one
 * backend call assigns to every center in a small fraction of a second (KMEANS_WORK_PER_CALL),
 * because interrupts are checked between calls; a chunk starts at about 1 MB and doubles, so
 * that wide rows cost what they hold.  The first pass also records each dimension's range,
 * which proves that no float32 distance can overflow (RangeCheck) and which later passes must
 * stay within.
 */
#include "kmeans.h"

#include <float.h>
#include <math.h>

#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "tcop/dest.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/memutils.h"

typedef struct Reader
{
	DestReceiver pub;
	KmeansData *data;
	bool		loading;		/* first pass */
	bool		has_id;
	bool		has_weight;
	int64		weights_cap;	/* first pass: room in data->weights */
	int64		rowno;			/* rows seen, NULL vectors included */
	int64		n;				/* non-NULL rows seen */
	MemoryContext rowcxt;		/* detoasted values, reset per row */
	KmeansSeriesRows *series;	/* metric 'dtw' or 'softdtw': rows kept whole, of any length */
	int			row_len;		/* then the length of the row at hand */

	/* the batch being filled: a resident chunk or a streaming buffer */
	float	   *buf;
	int64	   *idbuf;
	int64		fill;
	int64		cap;
	int64		first_row;		/* global index of buf's row 0 */

	/* first pass */
	double	   *sum;			/* per dimension, of x - shift */
	double	   *sumsq;
	float	   *shift;			/* the first row: keeps the variance sums well conditioned */
	float	   *scratch;		/* one row, when the data is not kept */
	int64	   *lo_row;			/* per dimension: the row (number, id) of the smallest value */
	int64	   *lo_id;
	int64	   *hi_row;			/* and of the largest */
	int64	   *hi_id;
	Size		resident_bytes;
	int			chunks_alloc;
	int64		first_rowno;	/* row number of the row that fixed d, for messages */

	/* later passes */
	KmeansBatchFn fn;
	void	   *fn_arg;
	bool		done;			/* the callback wants no more rows: the source is stopped */
} Reader;

static void FinishFirstPass(KmeansData *data, Reader *r);

/* The user-facing name of a row: its position and, when known, its id. */
char *
KmeansRowName(int64 rowno, bool has_id, int64 id)
{
	if (has_id)
		return psprintf("row " INT64_FORMAT " (id " INT64_FORMAT ")", rowno, id);
	return psprintf("row " INT64_FORMAT, rowno);
}

/* Raises the error for a bad vector, naming the row and, when known, its id. */
static void
BadRow(Reader *r, int64 id, int code, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(code),
			 errmsg("vector at %s %s", KmeansRowName(r->rowno, r->has_id, id), what),
			 errdetail("The vectors come from column \"%s\" of source \"%s\".",
					   r->data->src->column, r->data->src->source),
			 errhint("%s", hint)));
}

/*
 * Checks one array value and returns where its floats start (possibly unaligned).  Reads the
 * array header in place, so a short-header (packed) value needs no copy; compressed or external
 * values are detoasted in the per-row context.  The first vector fixes d.
 */
static const char *
ParseVector(Reader *r, Datum value, int64 id)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(value);
	KmeansData *data = r->data;
	KmeansArrayView view;
	int64		null_at;

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
	{
		MemoryContext old = MemoryContextSwitchTo(r->rowcxt);

		MemoryContextReset(r->rowcxt);
		v = pg_detoast_datum(v);
		MemoryContextSwitchTo(old);
	}
	if (data->src->kind != KMEANS_INPUT_ARRAY)
	{
		/* pgvector's vector or halfvec: no NULL elements, one dimension, at least one value */
		const char *values = KmeansPgvectorValues(v, data->src->kind, &view.dims[0]);

		view.ndim = 1;
		view.nitems = view.dims[0];
		view.nulls = NULL;
		view.values = values;
	}
	else
		KmeansArrayViewRaw(VARDATA_ANY(v), &view);
	if (view.ndim == 0)
		BadRow(r, id, ERRCODE_ARRAY_SUBSCRIPT_ERROR, "is empty",
			   "Every vector needs at least one value; filter empty arrays out in a query.");
	if (view.ndim != 1)
		BadRow(r, id, ERRCODE_ARRAY_SUBSCRIPT_ERROR,
			   psprintf("is a %d-dimensional array", view.ndim),
			   "Each row must hold one vector as a one-dimensional array.");

	if (r->series != NULL)
	{
		/* a series: any length from two samples on, which DTW needs for a path */
		if (view.nitems < 2)
			BadRow(r, id, ERRCODE_ARRAY_SUBSCRIPT_ERROR,
				   psprintf("has 1 value, but the %s metric takes series of at least 2 samples",
							KmeansMetricName(data->src->metric)),
				   "Filter out series shorter than two samples, e.g. WHERE cardinality(col) >= 2 in a query.");
		if (view.nitems > PG_INT32_MAX / 2)
			BadRow(r, id, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
				   psprintf("has " INT64_FORMAT " samples, more than the %s metric takes (%d)",
							view.nitems, KmeansMetricName(data->src->metric), PG_INT32_MAX / 2),
				   "Resample the series to fewer samples in a query.");
		r->row_len = (int) view.nitems;
	}
	else if (data->d == 0)
	{
		data->d = (int) view.nitems;
		r->first_rowno = r->rowno;
	}
	else if (view.nitems != data->d)
		BadRow(r, id, ERRCODE_ARRAY_SUBSCRIPT_ERROR,
			   psprintf("has %d values, expected %d as in row " INT64_FORMAT,
						(int) view.nitems, data->d, r->first_rowno),
			   "All vectors must have the same length; slice them (col[1:n]) or filter them in a query.");
	if ((null_at = KmeansArrayFirstNull(&view)) >= 0)
		BadRow(r, id, ERRCODE_NULL_VALUE_NOT_ALLOWED,
			   psprintf("has a NULL at position %d", (int) null_at + 1),
			   "Replace or drop NULL elements, e.g. with coalesce or array_remove in a query.");
	return view.values;
}

/* Copies d floats to dst and rejects NaN and infinities. */
static void
CopyFinite(Reader *r, const char *src, int64 id, float *dst)
{
	int64		bad = r->data->src->kind == KMEANS_INPUT_HALFVEC ?
		KmeansHalfCopyFinite(src, r->data->d, dst) : KmeansCopyFinite(src, r->data->d, dst);

	if (bad >= 0)
		BadRow(r, id, ERRCODE_DATA_EXCEPTION,
			   psprintf("has %s at position %d", KmeansNonFiniteName(dst[bad]), (int) bad + 1),
			   "Only finite values can be clustered; filter or replace them in a query.");
}

/*
 * What the metric does to a row as it is read (metric.c): cosine scales it to unit length, IoU
 * checks that it is a box.
 */
static void
PrepareRow(Reader *r, int64 id, float *x)
{
	KmMetric	metric = r->data->src->metric;
	const char *bad = KmeansMetricPrepareRow(metric, x, r->data->d);

	if (bad)
		BadRow(r, id, ERRCODE_DATA_EXCEPTION, bad, KmeansMetricRowHint(metric));
}

/*
 * A later pass's row must lie within the ranges the first pass saw: those ranges are what
 * proves that no distance overflows, and a source that changes between passes is an error.
 */
static void
CheckInRange(Reader *r, const float *x)
{
	KmeansData *data = r->data;

	for (int j = 0; j < data->d; j++)
		if (x[j] < data->lo[j] || x[j] > data->hi[j])
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("source \"%s\" returned a different %s than in the first pass",
							data->src->source, KmeansRowName(r->rowno, false, 0)),
					 errdetail("Value %g at position %d is outside the first pass's range [%g, %g].",
							   x[j], j + 1, data->lo[j], data->hi[j]),
					 errhint("A source read in several passes must return the same rows each time; "
							 "raise kmeans.memory_limit to keep the data in memory.")));
}

/* Hands a full batch to the pass callback through a backend block. */
static void
EmitBatch(Reader *r)
{
	KmeansData *data = r->data;
	KmeansBatch b;
	KmError		err = {0};
	KmStatus	st;

	if (r->fill == 0)
		return;
	b.first = r->first_row;
	b.n = r->fill;
	b.x = r->buf;
	b.w = data->weights ? data->weights + b.first : NULL;
	b.ids = r->has_id ? r->idbuf : NULL;
	b.done = false;
	/* the backend centres the rows on the mean as it takes them, the same way in every pass */
	st = data->be->ops->batch_create(data->be, r->buf, b.w, r->fill, data->mean, &b.blk, &err);
	KmeansCheckStatus(st, &err);
	PG_TRY();
	{
		r->fn(&b, r->fn_arg);
	}
	PG_FINALLY();
	{
		data->be->ops->block_destroy(data->be, b.blk);
	}
	PG_END_TRY();
	r->done = b.done;
	r->first_row += r->fill;
	r->fill = 0;
	KmeansProgressRows(r->first_row, data->n);
}

/*
 * Gives up the resident copy: the data will be read from the source on every pass.  Rows
 * handed over by an aggregate or a window (a feed) cannot be read again: there it is an ERROR.
 */
static void
DropResident(Reader *r)
{
	KmeansData *data = r->data;

	if (data->fed)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: the rows of one group do not fit kmeans.memory_limit (%d MB)",
						data->src->source, kmeans_memory_limit / 1024),
				 errdetail("After " INT64_FORMAT " rows of dimension %d the group's rows and the fit "
						   "need more than kmeans.memory_limit or kmeans.max_memory (%d MB) allow.",
						   r->n, data->d, kmeans_max_memory / 1024),
				 errhint("Raise kmeans.memory_limit, or fit the group with kmeans_fit over a query, "
						 "which reads again the rows it cannot keep.")));

	for (int i = 0; i < data->nchunks; i++)
	{
		pfree(data->chunks[i]);
		if (data->chunk_ids[i])
			pfree(data->chunk_ids[i]);
	}
	data->nchunks = 0;
	data->resident = false;
	r->buf = NULL;
	r->idbuf = NULL;
}

/*
 * First pass: room for more resident rows, unless the data has outgrown kmeans.memory_limit.
 * The current chunk doubles until it holds data->chunk_rows rows, so that a large chunk size
 * (the GPU's) costs small data nothing; then a new chunk starts.
 */
static void
StartChunk(Reader *r)
{
	KmeansData *data = r->data;
	Size		row_bytes = sizeof(float) * data->d + (r->has_id ? sizeof(int64) : 0);
	/* a group's rows handed over by an aggregate start smaller: there can be many groups */
	int64		first = Max((int64) 1, (int64) ((data->fed ? KMEANS_FIRST_CHUNK_BYTES / 64 :
												 KMEANS_FIRST_CHUNK_BYTES) / row_bytes));
	int64		rows = r->cap > 0 && r->cap < data->chunk_rows ?
		Min(2 * r->cap, data->chunk_rows) : Min(first, data->chunk_rows);
	int64		added = r->cap > 0 && r->cap < data->chunk_rows ? rows - r->cap : rows;
	Size		bytes = (Size) added * row_bytes;

	if (r->resident_bytes + bytes > (Size) kmeans_memory_limit * 1024)
	{
		DropResident(r);
		return;
	}
	r->resident_bytes += bytes;
	if (r->cap > 0 && r->cap < data->chunk_rows)
	{
		/* grow the current chunk in place */
		r->buf = repalloc_huge(r->buf, sizeof(float) * rows * data->d);
		data->chunks[data->nchunks - 1] = r->buf;
		if (r->has_id)
		{
			r->idbuf = repalloc_huge(r->idbuf, sizeof(int64) * rows);
			data->chunk_ids[data->nchunks - 1] = r->idbuf;
		}
		r->cap = rows;
		return;
	}
	if (data->nchunks == r->chunks_alloc)
	{
		r->chunks_alloc = r->chunks_alloc ? r->chunks_alloc * 2 : 16;
		data->chunks = repalloc(data->chunks, sizeof(float *) * r->chunks_alloc);
		data->chunk_ids = repalloc(data->chunk_ids, sizeof(int64 *) * r->chunks_alloc);
	}
	r->buf = MemoryContextAllocHuge(data->cxt, sizeof(float) * rows * data->d);
	r->idbuf = r->has_id ? MemoryContextAllocHuge(data->cxt, sizeof(int64) * rows) : NULL;
	data->chunks[data->nchunks] = r->buf;
	data->chunk_ids[data->nchunks] = r->idbuf;
	data->nchunks++;
	r->fill = 0;
	r->cap = rows;
}

/*
 * Rows per backend call for k centers of dimension d: at most KMEANS_WORK_PER_CALL
 * multiply-adds, in whole runs of KM_SUB_ROWS rows (batches start on run boundaries), between
 * one run and cap rows.
 */
static int64
WorkRows(int64 k, int d, int64 cap)
{
	double		rows = (double) KMEANS_WORK_PER_CALL / ((double) Max(k, 1) * Max(d, 1));
	int64		runs = (int64) Min(rows, (double) cap) / KM_SUB_ROWS;

	return Max(runs, 1) * KM_SUB_ROWS;
}

/*
 * The first vector has fixed d: size the chunks and batches, and refuse a fit whose centers
 * and buffers alone exceed kmeans.max_memory before reading on.
 */
static void
FirstRow(Reader *r)
{
	KmeansData *data = r->data;
	int			d = data->d;
	int64		row_bytes = (int64) sizeof(float) * d + sizeof(int64);
	KmeansBudget b;

	if (!data->gpu)
		data->chunk_rows = WorkRows(data->fit->centers, d, KMEANS_CHUNK_ROWS);
	/* a streamed batch: kmeans.batch_rows, within the work bound and about 64 MB of rows */
	data->batch_rows = WorkRows(data->gpu ? 1 : data->fit->centers, 1,
								Min((int64) kmeans_batch_rows,
									(int64) KMEANS_BATCH_BYTES / row_bytes));
	KmeansBudgetMake(&b, data->fit, 0, d, false, data->chunk_rows, r->has_id);
	KmeansBudgetCheck(&b, false);

	r->sum = MemoryContextAllocZero(data->cxt, sizeof(double) * d);
	r->sumsq = MemoryContextAllocZero(data->cxt, sizeof(double) * d);
	r->shift = MemoryContextAlloc(data->cxt, sizeof(float) * d);
	r->scratch = MemoryContextAlloc(data->cxt, sizeof(float) * d);
	data->lo = MemoryContextAlloc(data->cxt, sizeof(float) * d);
	data->hi = MemoryContextAlloc(data->cxt, sizeof(float) * d);
	r->lo_row = MemoryContextAlloc(data->cxt, sizeof(int64) * d);
	r->lo_id = MemoryContextAlloc(data->cxt, sizeof(int64) * d);
	r->hi_row = MemoryContextAlloc(data->cxt, sizeof(int64) * d);
	r->hi_id = MemoryContextAlloc(data->cxt, sizeof(int64) * d);
	data->chunks = MemoryContextAlloc(data->cxt, sizeof(float *));
	data->chunk_ids = MemoryContextAlloc(data->cxt, sizeof(int64 *));
	r->chunks_alloc = 1;
	data->resident = true;
}

/*
 * The fit's memory for the rows read so far (or all of them, when final): the cache is given up
 * first when the estimate exceeds kmeans.max_memory, and then a fit that still does not fit
 * is refused.
 */
static void
CheckBudget(Reader *r, bool final)
{
	KmeansData *data = r->data;
	KmeansBudget b;

	if (data->resident)
	{
		KmeansBudgetMake(&b, data->fit, r->n, data->d, false, data->chunk_rows, r->has_id);
		KmeansBudgetAddCache(&b, r->resident_bytes, r->n);
		if (KmeansBudgetFits(&b))
			return;
		elog(DEBUG1, "kmeans: the rows are not kept: " INT64_FORMAT " MB in all would exceed kmeans.max_memory",
			 b.total / (1024 * 1024));
		DropResident(r);
	}
	KmeansBudgetMake(&b, data->fit, r->n, data->d, true, data->batch_rows, r->has_id);
	KmeansBudgetCheck(&b, final);
}

/* First pass over one row: statistics, ranges, and a resident copy while it fits. */
static void
LoadRow(Reader *r, const char *raw, int64 id)
{
	KmeansData *data = r->data;
	int			d = data->d;
	float	   *row;

	if (r->sum == NULL)
		FirstRow(r);
	else if ((r->n & 1023) == 0)
	{
		CheckBudget(r, false);
		KmeansProgressRows(r->n, -1);
	}
	if (data->resident && r->fill == r->cap)
		StartChunk(r);
	if (data->resident)
	{
		row = r->buf + r->fill * d;
		if (r->has_id)
			r->idbuf[r->fill] = id;
		r->fill++;
	}
	else
		row = r->scratch;		/* not kept: checked and summed only */

	CopyFinite(r, raw, id, row);
	PrepareRow(r, id, row);
	if (r->n == 0)
	{
		memcpy(r->shift, row, sizeof(float) * d);
		memcpy(data->lo, row, sizeof(float) * d);
		memcpy(data->hi, row, sizeof(float) * d);
		for (int j = 0; j < d; j++)
		{
			r->lo_row[j] = r->hi_row[j] = r->rowno;
			r->lo_id[j] = r->hi_id[j] = id;
		}
	}
	for (int j = 0; j < d; j++)
	{
		double		v = (double) row[j] - r->shift[j];

		r->sum[j] += v;
		r->sumsq[j] += v * v;
		if (row[j] < data->lo[j])
		{
			data->lo[j] = row[j];
			r->lo_row[j] = r->rowno;
			r->lo_id[j] = id;
		}
		else if (row[j] > data->hi[j])
		{
			data->hi[j] = row[j];
			r->hi_row[j] = r->rowno;
			r->hi_id[j] = id;
		}
	}
}

/*
 * The memory of the series read so far, checked against kmeans.max_memory: the values and
 * their offsets and ids, and what the series fit keeps per row (a label and a distance per k,
 * kmeans_elbow's final labels, the soft-DTW barycenters' row lists).  Sizes are summed in
 * float64, which cannot overflow.
 */
static void
CheckSeriesBudget(Reader *r, int64 more_values)
{
	KmeansSeriesRows *s = r->series;
	double		per_row = sizeof(int64) * (2 + r->has_id) + sizeof(float) * r->has_weight +
		(sizeof(int32) + sizeof(double)) * 2 +
		(r->data->fit->final_labels ? sizeof(int32) * r->data->fit->nseg : 0);
	double		bytes = (double) sizeof(float) * (s->off[s->n] + more_values) +
		per_row * (s->n + 1);
	double		limit = (double) kmeans_max_memory * 1024;

	if (bytes > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: the series need %.0f MB, more than kmeans.max_memory (%d MB)",
						r->data->fit->what, bytes / (1024 * 1024), kmeans_max_memory / 1024),
				 errdetail("After " INT64_FORMAT " series of " INT64_FORMAT " samples in all; "
						   "series under the %s metric are kept in memory.",
						   s->n, s->off[s->n] + more_values,
						   KmeansMetricName(r->data->src->metric)),
				 errhint("Raise kmeans.max_memory, or fit fewer or shorter series.")));
}

/* A series row: checked, copied whole, its offset and id kept (the series metrics). */
static void
LoadSeriesRow(Reader *r, const char *raw, int64 id)
{
	KmeansSeriesRows *s = r->series;
	KmeansData *data = r->data;
	int			len = r->row_len;
	float	   *dst;
	int64		bad;

	if ((s->n & 1023) == 0)
	{
		KmeansProgressRows(s->n, -1);
		CheckSeriesBudget(r, len);
	}
	if (s->off[s->n] + len > s->cap_values)
	{
		int64		cap = Max(Max((int64) 4096, 2 * s->cap_values), s->off[s->n] + len);

		CheckSeriesBudget(r, cap - s->off[s->n]);
		s->values = s->values == NULL ? MemoryContextAllocHuge(data->cxt, sizeof(float) * cap) :
			repalloc_huge(s->values, sizeof(float) * cap);
		s->cap_values = cap;
	}
	if (s->n + 1 >= s->cap_rows)
	{
		int64		cap = Max((int64) 1024, 2 * s->cap_rows);

		s->off = repalloc_huge(s->off, sizeof(int64) * (cap + 1));
		if (r->has_id)
			s->ids = s->ids == NULL ? MemoryContextAllocHuge(data->cxt, sizeof(int64) * cap) :
				repalloc_huge(s->ids, sizeof(int64) * cap);
		s->cap_rows = cap;
	}
	dst = s->values + s->off[s->n];
	bad = data->src->kind == KMEANS_INPUT_HALFVEC ? KmeansHalfCopyFinite(raw, len, dst) :
		KmeansCopyFinite(raw, len, dst);
	if (bad >= 0)
		BadRow(r, id, ERRCODE_DATA_EXCEPTION,
			   psprintf("has %s at position %d", KmeansNonFiniteName(dst[bad]), (int) bad + 1),
			   "Only finite values can be clustered; filter or replace them in a query.");
	if (r->has_id)
		s->ids[s->n] = id;
	if (s->n == 0)
	{
		s->first_len = s->min_len = s->max_len = len;
		r->first_rowno = r->rowno;
	}
	s->min_len = Min(s->min_len, len);
	s->max_len = Max(s->max_len, len);
	s->off[s->n + 1] = s->off[s->n] + len;
	s->n++;
}

/*
 * A row's weight: in the first pass checked and kept (data->weights), in later passes compared
 * with the first pass's, which every pass uses.
 */
static void
ReceiveWeight(Reader *r, Datum wv, bool wnull, int64 id)
{
	KmeansData *data = r->data;
	double		w = wnull ? 0.0 : DatumGetFloat8(wv);
	const char *bad = NULL;
	int			code = ERRCODE_DATA_EXCEPTION;

	if (!r->loading)
	{
		if (wnull || (float) w != data->weights[r->n])
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("source \"%s\" returned a different weight at %s than in the first pass",
							data->src->source, KmeansRowName(r->rowno, r->has_id, id)),
					 errdetail("The weight is %s now and was %g.", wnull ? "NULL" : psprintf("%g", w),
							   (double) data->weights[r->n]),
					 errhint("A source read in several passes must return the same rows each time; "
							 "raise kmeans.memory_limit to keep the data in memory.")));
		return;
	}
	if (wnull)
	{
		bad = "is NULL";
		code = ERRCODE_NULL_VALUE_NOT_ALLOWED;
	}
	else if (isnan(w))
		bad = "is NaN";
	else if (w < 0.0)
	{
		bad = psprintf("is negative (%g)", w);
		code = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
	}
	else if (w > FLT_MAX)
	{
		bad = isinf(w) ? "is Infinity" : psprintf("is %g, beyond float4's range", w);
		code = isinf(w) ? ERRCODE_DATA_EXCEPTION : ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
	}
	if (bad)
		ereport(ERROR,
				(errcode(code),
				 errmsg("weight at %s %s", KmeansRowName(r->rowno, r->has_id, id), bad),
				 errdetail("The weights come from \"%s\" of source \"%s\".",
						   data->src->weight, data->src->source),
				 errhint("Weights must be finite and >= 0 (a row of weight 0 is labelled but does not "
						 "move its center); filter or coalesce them in a query.")));
	if (r->n == r->weights_cap)
	{
		r->weights_cap = Max((int64) 1024, 2 * r->weights_cap);
		data->weights = data->weights == NULL ?
			MemoryContextAllocHuge(data->cxt, sizeof(float) * r->weights_cap) :
			repalloc_huge(data->weights, sizeof(float) * r->weights_cap);
	}
	data->weights[r->n] = (float) w;
	data->weight_total += (float) w;
	if ((float) w > 0.0f)
		data->weighted_rows++;
}

/* One result row: validate, copy, and hand on full batches. */
static void
ReceiveRow(Reader *r, Datum value, bool isnull, Datum idv, bool idnull, Datum wv, bool wnull)
{
	KmeansData *data = r->data;
	int64		id = 0;
	const char *raw;

	r->rowno++;
	if (r->has_id)
	{
		if (idnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("id is NULL at row " INT64_FORMAT, r->rowno),
					 errdetail("The ids come from \"%s\" of source \"%s\".",
							   data->src->id_column, data->src->source),
					 errhint("Every row needs an id to be labelled; filter NULL ids out in a query.")));
		id = DatumGetInt64(idv);
	}
	if (isnull)
	{
		if (r->loading)
			data->nulls++;
		return;
	}
	raw = ParseVector(r, value, id);
	if (r->has_weight && (r->loading || r->n < data->n))
		ReceiveWeight(r, wv, wnull, id);
	if (r->series != NULL)
		LoadSeriesRow(r, raw, id);
	else if (r->loading)
		LoadRow(r, raw, id);
	else
	{
		if (r->n >= data->n)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("source \"%s\" returned more rows than in the first pass (" INT64_FORMAT ")",
							data->src->source, data->n),
					 errhint("A source read in several passes must return the same rows each time; "
							 "raise kmeans.memory_limit to keep the data in memory.")));
		CopyFinite(r, raw, id, r->buf + r->fill * data->d);
		PrepareRow(r, id, r->buf + r->fill * data->d);
		CheckInRange(r, r->buf + r->fill * data->d);
		if (r->has_id)
			r->idbuf[r->fill] = id;
		r->fill++;
		if (r->fill == r->cap)
			EmitBatch(r);
	}
	r->n++;
	if ((r->n & 1023) == 0)
		CHECK_FOR_INTERRUPTS();
}

/* The receiver's per-row callback: the executor's slot, read without copying the tuple. */
static bool
ReceiveSlot(TupleTableSlot *slot, DestReceiver *self)
{
	Reader	   *r = (Reader *) self;
	bool		isnull,
				idnull = true,
				wnull = true;
	Datum		idv = (Datum) 0,
				wv = (Datum) 0;
	Datum		value;

	if (r->has_weight)
		wv = slot_getattr(slot, r->has_id ? 3 : 2, &wnull);
	if (r->has_id)
		idv = slot_getattr(slot, 2, &idnull);
	value = slot_getattr(slot, 1, &isnull);
	ReceiveRow(r, value, isnull, idv, idnull, wv, wnull);
	/* false stops the executor: the rest of the source is not read */
	return !r->done;
}

/*
 * The result columns must be what the reader consumes: real[], with an id bigint, with a
 * weight double precision.  The query is built so that they are (source.c); this check keeps a
 * mistake there from ever reading a value of another type as an array header.
 */
static void
CheckResultDesc(Reader *r, TupleDesc desc)
{
	int			want = 1 + r->has_id + r->has_weight;
	KmeansSource *src = r->data->src;
	Oid			vectype = src->kind == KMEANS_INPUT_ARRAY ? FLOAT4ARRAYOID : src->vector_type;

	if (desc->natts != want ||
		TupleDescAttr(desc, 0)->atttypid != vectype ||
		(r->has_id && TupleDescAttr(desc, 1)->atttypid != INT8OID) ||
		(r->has_weight && TupleDescAttr(desc, want - 1)->atttypid != FLOAT8OID))
		elog(ERROR, "kmeans: the source query returns %d columns, not %d of the types read (this is a bug)",
			 desc->natts, want);
}

static void
ReaderStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	CheckResultDesc((Reader *) self, typeinfo);
}

static void
ReaderShutdown(DestReceiver *self)
{
}

static void
ReaderDestroy(DestReceiver *self)
{
}

/* Runs the source once, feeding every row to the reader. */
static void
RunSource(KmeansData *data, Reader *r)
{
	int			rc;

	r->pub.receiveSlot = ReceiveSlot;
	r->pub.rStartup = ReaderStartup;
	r->pub.rShutdown = ReaderShutdown;
	r->pub.rDestroy = ReaderDestroy;
	r->pub.mydest = DestNone;
	r->data = data;
	r->has_id = data->src->id_column != NULL;
	r->has_weight = data->src->weight != NULL;
	r->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans row",
									  ALLOCSET_SMALL_SIZES);

	if (data->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(data->src->query, 0, NULL);

		if (plan == NULL)
			elog(ERROR, "kmeans: SPI_prepare failed for \"%s\": %s", data->src->query,
				 SPI_result_code_string(SPI_result));
		data->plan = plan;
	}
#if PG_VERSION_NUM >= 140000
	{
		SPIExecuteOptions options;

		memset(&options, 0, sizeof(options));
		options.read_only = true;
		options.dest = &r->pub;
		rc = SPI_execute_plan_extended((SPIPlanPtr) data->plan, &options);
		if (rc < 0)
			elog(ERROR, "kmeans: running the source failed: %s", SPI_result_code_string(rc));
	}
#else
	{
		/* before PostgreSQL 14 SPI takes no DestReceiver: a read-only cursor in batches */
		Portal		portal = SPI_cursor_open(NULL, (SPIPlanPtr) data->plan, NULL, NULL, true);

		(void) rc;
		for (;;)
		{
			SPI_cursor_fetch(portal, true, 1024);
			if (SPI_processed == 0)
				break;
			CheckResultDesc(r, SPI_tuptable->tupdesc);
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				HeapTuple	tup = SPI_tuptable->vals[i];
				TupleDesc	desc = SPI_tuptable->tupdesc;
				bool		isnull,
							idnull = true,
							wnull = true;
				Datum		idv = (Datum) 0,
							wv = (Datum) 0;
				Datum		value = SPI_getbinval(tup, desc, 1, &isnull);

				if (r->has_id)
					idv = SPI_getbinval(tup, desc, 2, &idnull);
				if (r->has_weight)
					wv = SPI_getbinval(tup, desc, r->has_id ? 3 : 2, &wnull);
				ReceiveRow(r, value, isnull, idv, idnull, wv, wnull);
				if (r->done)
					break;
			}
			SPI_freetuptable(SPI_tuptable);
			if (r->done)
				break;
		}
		SPI_cursor_close(portal);
	}
#endif
	MemoryContextDelete(r->rowcxt);
}

/*
 * Float32 distances cannot overflow or vanish: every row lies in the box of the per-dimension
 * ranges, so after centring |x|^2, |c|^2 and |x.c| are at most R2 = sum_j max(hi_j - m_j,
 * m_j - lo_j)^2 (centers are means of rows and lie in the box too) and |x - c|^2 at most
 * S2 = sum_j (hi_j - lo_j)^2 <= 4 R2.  The expansion |x|^2 - 2 x.c + |c|^2 and every partial sum
 * of a distance then stay below 4 R2, which must leave float32 a margin (KMEANS_MAX_SQUARE) for
 * rounding, bfloat16 screening included.
 * At the other end, rows whose largest squared distance is below KMEANS_MIN_SQUARE differ only in
 * subnormal float32 squares, where distances lose their digits and clusters collapse.
 * Both are refused rather than answered with Infinity or a degenerate fit.
 */
static void
RangeCheck(Reader *r)
{
	KmeansData *data = r->data;
	double		r2 = 0.0,
				s2 = 0.0,
				worst = -1.0;
	int			wj = 0;
	bool		whi = true;

	for (int j = 0; j < data->d; j++)
	{
		double		up = (double) data->hi[j] - data->mean[j];
		double		down = (double) data->mean[j] - data->lo[j];
		double		span = (double) data->hi[j] - data->lo[j];
		double		m = Max(up, down);

		r2 += m * m;
		s2 += span * span;
		if (m > worst)
		{
			worst = m;
			wj = j;
			whi = up >= down;
		}
	}
	if (4.0 * r2 > KMEANS_MAX_SQUARE)
	{
		int64		rowno = whi ? r->hi_row[wj] : r->lo_row[wj];
		int64		id = whi ? r->hi_id[wj] : r->lo_id[wj];

		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("vector at %s is too far from the others for float32 distances",
						KmeansRowName(rowno, r->has_id, id)),
				 errdetail("Its value %g at position %d is %g from the mean of that position; squared "
						   "distances between the vectors could reach %g, beyond %g.",
						   whi ? data->hi[wj] : data->lo[wj], wj + 1, worst, 4.0 * r2,
						   (double) KMEANS_MAX_SQUARE),
				 errhint("Scale the vectors down, e.g. divide them by 1e10 in a query, or drop the outlier.")));
	}
	/* k-means++ keeps w |x - c|^2 in float32 (km_kernels.h), which must not overflow either */
	if (data->weights != NULL)
	{
		int64		at = 0;

		for (int64 i = 1; i < r->n; i++)
			if (data->weights[i] > data->weights[at])
				at = i;
		if ((double) data->weights[at] * 4.0 * r2 > KMEANS_MAX_SQUARE)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the largest weight of source \"%s\", %g, is too large for float32 distances",
							data->src->source, (double) data->weights[at]),
					 errdetail("Weighted squared distances could reach %g, beyond %g.",
							   (double) data->weights[at] * 4.0 * r2, (double) KMEANS_MAX_SQUARE),
					 errhint("Scale the weights down: only their ratios matter to the fit.")));
	}
	if (s2 > 0.0 && s2 < KMEANS_MIN_SQUARE)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the vectors of source \"%s\" differ too little for float32 distances",
						data->src->source),
				 errdetail("The largest squared distance between two of them is at most %g, below %g, "
						   "where float32 squares lose their digits.", s2, (double) KMEANS_MIN_SQUARE),
				 errhint("Scale the vectors up, e.g. multiply them by 1e20 in a query.")));
}

/* Sets the GUCs that make every pass see the same rows in the same order. */
static void
StableScanSettings(void)
{
	(void) set_config_option("synchronize_seqscans", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("max_parallel_workers_per_gather", "0", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Reads the source once: validates every row, fixes d and n, computes the centring offset
 * and, when it fits, keeps the rows.  The caller is connected to SPI and has opened a GUC
 * nest level.
 */
static KmeansData *
DataMake(KmeansSource *src, const KmeansPlan *plan, bool gpu)
{
	KmeansData *data = palloc0(sizeof(KmeansData));

	data->src = src;
	data->fit = plan;
	data->gpu = gpu;
	/* the GPU takes large blocks; the CPU's chunks are sized by the work once d is known */
	data->chunk_rows = gpu ? KM_CUDA_BLOCK_ROWS : KMEANS_CHUNK_ROWS;
	data->cxt = CurrentMemoryContext;
	data->batch_rows = (kmeans_batch_rows + KM_SUB_ROWS - 1) / KM_SUB_ROWS * KM_SUB_ROWS;
	return data;
}

KmeansData *
KmeansDataLoad(KmeansSource *src, const KmeansPlan *plan, bool gpu)
{
	KmeansData *data = DataMake(src, plan, gpu);
	Reader		r;

	StableScanSettings();

	memset(&r, 0, sizeof(r));
	r.loading = true;
	RunSource(data, &r);
	if (data->nulls > 0)
		ereport(NOTICE,
				(errmsg("skipped " INT64_FORMAT " rows with a NULL vector", data->nulls),
				 errdetail("Column \"%s\" of source \"%s\" is NULL in those rows.",
						   src->column, src->source)));
	FinishFirstPass(data, &r);
	return data;
}

/*
 * Reads the source once as series (metric 'dtw' or 'softdtw'): every row checked and kept
 * whole, of any length from 2 on.  The data has no vectors: d is the centers' length, which the fit sets.
 */
KmeansData *
KmeansSeriesLoad(KmeansSource *src, const KmeansPlan *plan)
{
	KmeansData *data = DataMake(src, plan, false);
	KmeansSeriesRows *s = palloc0(sizeof(KmeansSeriesRows));
	Reader		r;

	StableScanSettings();
	s->off = palloc0(sizeof(int64));
	memset(&r, 0, sizeof(r));
	r.loading = true;
	r.series = s;
	RunSource(data, &r);
	if (data->nulls > 0)
		ereport(NOTICE,
				(errmsg("skipped " INT64_FORMAT " rows with a NULL vector", data->nulls),
				 errdetail("Column \"%s\" of source \"%s\" is NULL in those rows.",
						   src->column, src->source)));
	CheckSeriesBudget(&r, 0);
	data->series = s;
	data->n = s->n;
	data->resident = true;
	return data;
}

/*
 * The end of the first pass: the row count, the centring offset, the range and budget checks.
 */
static void
FinishFirstPass(KmeansData *data, Reader *r)
{
	KmeansSource *src = data->src;

	data->n = r->n;
	if (data->n == 0)
		return;

	data->mean = MemoryContextAlloc(data->cxt, sizeof(float) * data->d);
	data->mean_var = 0.0;
	for (int j = 0; j < data->d; j++)
	{
		double		m = r->sum[j] / data->n;

		/* the offset every row is centred on: none where the metric needs the rows as they are */
		data->mean[j] = KmeansMetricCentred(src->metric) ? (float) (r->shift[j] + m) : 0.0f;
		data->mean_var += Max(0.0, r->sumsq[j] / data->n - m * m);
	}
	data->mean_var /= data->d;
	RangeCheck(r);
	CheckBudget(r, true);
}

/*
 * Rows handed over one at a time (kmeans_agg, kmeans_cluster): the first pass of a source
 * without the source.  Every row is checked and kept as the first pass keeps it, within
 * kmeans.memory_limit, since there is no reading it again.  The data lives in the current
 * memory context.
 */
struct KmeansFeed
{
	Reader		r;
	KmeansData *data;
};

KmeansFeed *
KmeansFeedBegin(KmeansSource *src, const KmeansPlan *plan, bool gpu)
{
	KmeansFeed *f = palloc0(sizeof(KmeansFeed));
	KmeansData *data = DataMake(src, plan, gpu);

	data->fed = true;
	f->data = data;
	f->r.data = data;
	f->r.loading = true;
	f->r.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans row", ALLOCSET_SMALL_SIZES);
	return f;
}

/* One row: its vector (NULL is skipped and counted), as a source's row would be read. */
void
KmeansFeedRow(KmeansFeed *f, Datum value, bool isnull)
{
	MemoryContext old = MemoryContextSwitchTo(f->data->cxt);

	ReceiveRow(&f->r, value, isnull, (Datum) 0, true, (Datum) 0, true);
	MemoryContextSwitchTo(old);
}

/* One row with its weight (the feed's plan is weighted): both checked as a source's are. */
void
KmeansFeedRowWeighted(KmeansFeed *f, Datum value, float w)
{
	MemoryContext old = MemoryContextSwitchTo(f->data->cxt);

	f->r.has_weight = true;
	ReceiveRow(&f->r, value, false, (Datum) 0, true, Float8GetDatum((double) w), false);
	MemoryContextSwitchTo(old);
}

/*
 * The data of a fit whose passes do not go through this reader (strategy.c): d and n known
 * from an aggregate pass.  Set up as a streamed first pass would leave it, so that what needs
 * every row's label (the final pass of kmeans_labels and kmeans_elbow) can stream the source:
 * no offset (the rows are not centred), no range to stay within, the budget of streaming.
 */
void
KmeansDataOutside(KmeansData *data, const KmeansPlan *plan, bool gpu, int d, int64 n)
{
	Reader		r;

	data->fit = plan;
	data->gpu = gpu;
	data->chunk_rows = gpu ? KM_CUDA_BLOCK_ROWS : KMEANS_CHUNK_ROWS;
	data->cxt = CurrentMemoryContext;
	data->batch_rows = (kmeans_batch_rows + KM_SUB_ROWS - 1) / KM_SUB_ROWS * KM_SUB_ROWS;
	data->d = d;
	memset(&r, 0, sizeof(r));
	r.data = data;
	r.has_id = data->src->id_column != NULL;
	FirstRow(&r);
	data->resident = false;
	data->n = n;
	data->mean = MemoryContextAllocZero(data->cxt, sizeof(float) * d);
	for (int j = 0; j < d; j++)
	{
		data->lo[j] = -FLT_MAX;
		data->hi[j] = FLT_MAX;
	}
	r.n = n;
	CheckBudget(&r, true);
}

/* The rows handed over, as KmeansDataLoad would give them. */
KmeansData *
KmeansFeedEnd(KmeansFeed *f)
{
	MemoryContext old = MemoryContextSwitchTo(f->data->cxt);

	FinishFirstPass(f->data, &f->r);
	MemoryContextSwitchTo(old);
	return f->data;
}

/* Hands the data to the backend: resident chunks become blocks, centred as they go. */
void
KmeansDataAttach(KmeansData *data, KmBackend *be)
{
	data->be = be;
	if (!data->resident)
		return;
	data->blocks = MemoryContextAllocZero(data->cxt, sizeof(KmBlock *) * Max(1, data->nchunks));
	for (int c = 0; c < data->nchunks; c++)
	{
		int64		rows = Min(data->chunk_rows, data->n - (int64) c * data->chunk_rows);
		KmError		err = {0};
		KmStatus	st;

		st = be->ops->block_create(be, data->chunks[c],
								   data->weights ? data->weights + (int64) c * data->chunk_rows : NULL,
								   rows, data->mean, &data->blocks[c], &err);
		KmeansCheckStatus(st, &err);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Releases the blocks the data holds in the backend. */
void
KmeansDataDetach(KmeansData *data)
{
	if (data->be == NULL)
		return;
	if (data->blocks)
		for (int c = 0; c < data->nchunks; c++)
			if (data->blocks[c])
			{
				data->be->ops->block_destroy(data->be, data->blocks[c]);
				data->blocks[c] = NULL;
			}
	data->be = NULL;
}

/*
 * One pass over the data: resident chunks in order, or the source run again in batches.
 * Interrupts are checked between batches.  A callback that sets its batch's done ends the pass
 * there: a streamed source is stopped (and its row count, which only a whole pass can check,
 * is not checked).
 */
void
KmeansScan(KmeansData *data, KmeansBatchFn fn, void *arg)
{
	if (data->resident)
	{
		for (int c = 0; c < data->nchunks; c++)
		{
			KmeansBatch b;

			CHECK_FOR_INTERRUPTS();
			b.first = (int64) c * data->chunk_rows;
			b.n = Min(data->chunk_rows, data->n - b.first);
			b.x = data->chunks[c];
			b.w = data->weights ? data->weights + b.first : NULL;
			b.ids = data->chunk_ids[c];
			b.blk = data->blocks[c];
			b.done = false;
			fn(&b, arg);
			KmeansProgressRows(b.first + b.n, data->n);
			if (b.done)
				break;
		}
	}
	else
	{
		Reader		r;

		memset(&r, 0, sizeof(r));
		r.fn = fn;
		r.fn_arg = arg;
		r.cap = Min((int64) data->batch_rows, data->n);
		r.buf = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * r.cap * data->d);
		r.idbuf = data->src->id_column ? palloc(sizeof(int64) * r.cap) : NULL;
		RunSource(data, &r);
		if (!r.done)
			EmitBatch(&r);
		if (!r.done && r.n != data->n)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("source \"%s\" returned " INT64_FORMAT " rows, " INT64_FORMAT " in the first pass",
							data->src->source, r.n, data->n),
					 errhint("A source read in several passes must return the same rows each time; "
							 "raise kmeans.memory_limit to keep the data in memory.")));
		pfree(r.buf);
		if (r.idbuf)
			pfree(r.idbuf);
	}
}
