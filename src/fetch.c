/*
 * fetch.c -- copying rows by position out of the data in one pass, for seeding, repair and the
 * silhouette sample: sorted first, so a streamed source is read once whatever the order asked.
 */
#include "kmeans.h"

#include "utils/memutils.h"

typedef struct FetchState
{
	int64		m;
	const int64 *rows;			/* ascending */
	const int  *slot;			/* where row i goes in out */
	int64		next;
	int			d;
	float	   *out;
} FetchState;

/* Copies the asked-for rows that fall in this batch: they come in row order. */
static void
FetchBatch(KmeansBatch *b, void *arg)
{
	FetchState *fs = arg;

	while (fs->next < fs->m && fs->rows[fs->next] < b->first + b->n)
	{
		int64		i = fs->rows[fs->next] - b->first;

		memcpy(fs->out + (int64) fs->slot[fs->next] * fs->d, b->x + i * fs->d,
			   sizeof(float) * fs->d);
		fs->next++;
	}
}

typedef struct RowRef
{
	int64		row;
	int			slot;
} RowRef;

/* Row order, then slot order: the order in which one pass meets the rows. */
static int
RowRefCmp(const void *a, const void *b)
{
	const RowRef *x = a,
			   *y = b;

	if (x->row != y->row)
		return x->row < y->row ? -1 : 1;
	return x->slot - y->slot;
}

/* Copies the (centred) rows at the given positions into out[slot], in one pass. */
void
KmeansFetchRows(KmeansData *data, const int64 *rows, int64 m, float *out)
{
	RowRef	   *refs = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(RowRef) * m);
	int64	   *sorted = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * m);
	int		   *slots = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * m);
	FetchState	fs;

	for (int64 i = 0; i < m; i++)
	{
		refs[i].row = rows[i];
		refs[i].slot = i;
	}
	qsort(refs, m, sizeof(RowRef), RowRefCmp);
	for (int64 i = 0; i < m; i++)
	{
		sorted[i] = refs[i].row;
		slots[i] = refs[i].slot;
	}
	fs.m = m;
	fs.rows = sorted;
	fs.slot = slots;
	fs.next = 0;
	fs.d = data->d;
	fs.out = out;
	KmeansScan(data, FetchBatch, &fs);
	if (fs.next != m)
		elog(ERROR, "kmeans: fetched " INT64_FORMAT " of " INT64_FORMAT " rows (this is a bug)",
			 fs.next, m);
	pfree(refs);
	pfree(sorted);
	pfree(slots);
}
