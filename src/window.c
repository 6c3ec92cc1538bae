/*
 * window.c -- kmeans_cluster(x, k [, options]) OVER (...): each row's cluster, inline.
 *
 * On the first row of a partition the function reads every row of it, in the partition's
 * order, fits them (groupfit.c) and keeps each row's label in the partition's local memory;
 * every row then returns its own label.  The frame is not used: like rank() the function sees
 * the whole partition.  A row with a NULL vector gets a NULL cluster.  The labels are those
 * kmeans_labels gives for a query returning the same rows in the same order (ORDER BY in the
 * OVER clause fixes that order).
 */
#include "kmeans.h"

#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "miscadmin.h"
#include "windowapi.h"

PG_FUNCTION_INFO_V1(kmeans_cluster);

/* The partition's labels: label[i] for the row at position i, -1 for a NULL vector. */
typedef struct PartitionLabels
{
	bool		done;
	int64		rows;
	int32		label[FLEXIBLE_ARRAY_MEMBER];
} PartitionLabels;

/* Where the final pass's labels go: the i-th vector is the row at position pos[i]. */
typedef struct LabelTarget
{
	PartitionLabels *pl;
	const int64 *pos;
} LabelTarget;

static void
KeepLabels(KmeansBatch *b, const int32 *labels, const float *dist, int nseg, void *arg)
{
	LabelTarget *t = arg;

	for (int64 i = 0; i < b->n; i++)
		t->pl->label[t->pos[b->first + i]] = labels[i * nseg];
}

/* A window argument that must not be NULL: k, or the options when given. */
static Datum
ArgInPartition(WindowObject win, int argno, int64 row, bool *isnull)
{
	bool		isout;

	return WinGetFuncArgInPartition(win, argno, (int) row, WINDOW_SEEK_HEAD, false, isnull, &isout);
}

/* Reads and fits the whole partition. */
static void
FitPartition(FunctionCallInfo fcinfo, WindowObject win, PartitionLabels *pl)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans_cluster",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KmeansGroupFit *g = NULL;
	int64	   *pos = palloc(sizeof(int64) * Max(pl->rows, 1));
	int64		vectors = 0;
	LabelTarget target;

	for (int64 i = 0; i < pl->rows; i++)
	{
		bool		knull,
					onull = true,
					xnull;
		Datum		k = ArgInPartition(win, 1, i, &knull);
		Datum		o = PG_NARGS() > 2 ? ArgInPartition(win, 2, i, &onull) : (Datum) 0;
		Datum		x = ArgInPartition(win, 0, i, &xnull);
		Jsonb	   *options = onull ? NULL : DatumGetJsonbP(o);

		if (knull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("kmeans_cluster: k must not be NULL"),
					 errhint("Pass the number of clusters per partition.")));
		if (g == NULL)
			g = KmeansGroupFitBegin(cxt, "kmeans_cluster", DatumGetInt32(k), options);
		else
			KmeansGroupFitCheckArgs(g, DatumGetInt32(k), options);
		KmeansGroupFitRow(g, x, xnull);
		pl->label[i] = -1;
		if (!xnull)
			pos[vectors++] = i;
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	if (vectors > 0)
	{
		target.pl = pl;
		target.pos = pos;
		KmeansGroupFitRun(g, KeepLabels, &target);
	}
	if (g != NULL)
		KmeansGroupFitFree(g);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	pl->done = true;
}

Datum
kmeans_cluster(PG_FUNCTION_ARGS)
{
	WindowObject win = PG_WINDOW_OBJECT();
	int64		rows = WinGetPartitionRowCount(win);
	Size		bytes = offsetof(PartitionLabels, label) + sizeof(int32) * (Size) rows;
	PartitionLabels *pl;
	int64		at;

	if ((double) bytes > (double) MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("kmeans_cluster: a partition of " INT64_FORMAT " rows is too large", rows),
				 errhint("Partition the rows further, or use kmeans_labels.")));
	pl = WinGetPartitionLocalMemory(win, bytes);
	if (!pl->done)
	{
		pl->rows = rows;
		FitPartition(fcinfo, win, pl);
	}
	at = WinGetCurrentPosition(win);
	if (pl->label[at] < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(pl->label[at]);
}
