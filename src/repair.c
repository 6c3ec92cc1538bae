/*
 * repair.c -- empty clusters after a Lloyd pass, relocated to the rows farthest from their
 * centers so that k never shrinks.
 */
#include "kmeans.h"

#include "lloyd.h"
#include "miscadmin.h"

/* The weight of a row: 1 in an unweighted fit. */
static inline float
RowWeight(const KmeansData *data, int64 row)
{
	return data->weights ? data->weights[row] : 1.0f;
}

/* A candidate row for an empty cluster: far from its center. */
typedef struct FarRow
{
	float		dist;
	int64		row;
	int32		label;			/* global in the run set */
	float	   *x;
} FarRow;

/* True when a is a better relocation candidate than b: farther, then earlier. */
static inline bool
FarBetter(const FarRow *a, const FarRow *b)
{
	return a->dist > b->dist || (a->dist == b->dist && a->row < b->row);
}

/* Swaps two heap entries. */
static inline void
FarSwap(FarRow *h, int a, int b)
{
	FarRow		tmp = h[a];

	h[a] = h[b];
	h[b] = tmp;
}

/* Moves entry i down until neither child is worse. */
static void
HeapSiftDown(FarRow *h, int size, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					w = i;

		if (l < size && FarBetter(&h[w], &h[l]))
			w = l;
		if (r < size && FarBetter(&h[w], &h[r]))
			w = r;
		if (w == i)
			return;
		FarSwap(h, i, w);
		i = w;
	}
}

/* Moves entry i up while it is worse than its parent. */
static void
HeapSiftUp(FarRow *h, int i)
{
	while (i > 0)
	{
		int			p = (i - 1) / 2;

		if (!FarBetter(&h[p], &h[i]))
			return;
		FarSwap(h, i, p);
		i = p;
	}
}

/* Pushes a candidate into a bounded min-heap on FarBetter (the worst kept candidate on top). */
static void
HeapOffer(FarRow *h, int *size, int cap, const FarRow *cand)
{
	if (*size < cap)
	{
		h[*size] = *cand;
		HeapSiftUp(h, (*size)++);
	}
	else if (FarBetter(cand, &h[0]))
	{
		h[0] = *cand;
		HeapSiftDown(h, *size, 0);
	}
}

static int
FarRowCmp(const void *a, const void *b)
{
	const FarRow *x = a,
			   *y = b;

	if (FarBetter(x, y))
		return -1;
	if (FarBetter(y, x))
		return 1;
	return 0;
}

/*
 * Whether center j is empty: no rows, or, where rows carry weights, no weight (its mean is
 * undefined either way).
 */
static inline bool
Empty(const KmAccum *acc, int j)
{
	return acc->mass ? acc->mass[j] == 0.0 : acc->counts[j] == 0;
}

/*
 * Whether a row of weight w (1 unweighted) may leave center j: it has weight, and its cluster
 * keeps rows and weight without it.
 */
static inline bool
Movable(const KmAccum *acc, int j, float w)
{
	if (acc->mass == NULL)
		return acc->counts[j] > 1;
	return w > 0.0f && acc->mass[j] - w > 0.0;
}

/* The farthest rows of one running segment that has an empty cluster. */
typedef struct FarHeap
{
	FarRow	   *h;				/* NULL: the segment has no empty cluster */
	int			size;
	int			cap;
} FarHeap;

/*
 * Offers every row of the running segments that have an empty cluster to their heaps: the
 * pass just made left each row's label and distance with the backend, read back a batch of
 * rows at a time, in row order.
 */
static void
OfferRows(KmeansData *data, LloydState *ls, FarHeap *heaps)
{
	RunSet	   *rs = ls->rs;
	int			nseg = ls->ms->nseg;
	KmBackend  *be = data->be;

	KmeansLloydBuffers(ls);
	for (int64 lo = 0; lo < data->n; lo += ls->rows)
	{
		int64		m = Min(ls->rows, data->n - lo);
		KmError		err = {0};

		CHECK_FOR_INTERRUPTS();
		KmeansCheckStatus(be->ops->state_fetch(be, lo, m, ls->labels, ls->dist, &err), &err);
		for (int r = 0; r < rs->nrun; r++)
		{
			int			seg = rs->segs[r];

			if (heaps[r].h == NULL)
				continue;
			for (int64 i = 0; i < m; i++)
			{
				FarRow		cand;

				cand.dist = ls->dist[i * nseg + seg];
				cand.row = lo + i;
				cand.label = ls->labels[i * nseg + seg] + rs->off[r];
				cand.x = NULL;
				HeapOffer(heaps[r].h, &heaps[r].size, heaps[r].cap, &cand);
			}
		}
	}
}

/*
 * Empty clusters: each takes one of the rows farthest from their centers, moved out of a cluster
 * that keeps at least one row (as scikit-learn relocates, so k never shrinks).  Among the k
 * farthest rows at most k - m are the last row of their cluster, so m movable rows are found.
 * The candidates are chosen from the state the pass left (OfferRows); only their vectors are
 * fetched from the data.
 */
void
KmeansRepairEmpty(KmeansData *data, LloydState *ls)
{
	RunSet	   *rs = ls->rs;
	int			d = data->d;
	bool		any = false;
	FarHeap    *heaps;

	for (int j = 0; j < rs->k; j++)
		any |= Empty(&rs->acc, j);
	if (!any)
		return;

	heaps = palloc0(sizeof(FarHeap) * rs->nrun);
	for (int r = 0; r < rs->nrun; r++)
		for (int j = rs->off[r]; j < rs->off[r + 1]; j++)
			if (Empty(&rs->acc, j))
			{
				heaps[r].cap = (int) Min((int64) (rs->off[r + 1] - rs->off[r]), data->n);
				heaps[r].h = palloc(sizeof(FarRow) * heaps[r].cap);
				break;
			}
	OfferRows(data, ls, heaps);

	for (int r = 0; r < rs->nrun; r++)
	{
		int			k = rs->off[r + 1] - rs->off[r];
		FarRow	   *h = heaps[r].h;
		int			size = heaps[r].size;
		int			next = 0;
		int64	   *rows;
		float	   *x;

		if (h == NULL)
			continue;
		qsort(h, size, sizeof(FarRow), FarRowCmp);
		rows = palloc(sizeof(int64) * size);
		x = palloc(sizeof(float) * size * d);
		for (int i = 0; i < size; i++)
		{
			rows[i] = h[i].row;
			h[i].x = x + (int64) i * d;
		}
		KmeansFetchRows(data, rows, size, x);

		for (int j = rs->off[r]; j < rs->off[r + 1]; j++)
		{
			FarRow	   *f;
			double	   *sj = rs->acc.sums + (int64) j * d;
			double	   *so;

			float		w;

			if (!Empty(&rs->acc, j))
				continue;
			while (next < size &&
				   !Movable(&rs->acc, h[next].label, RowWeight(data, h[next].row)))
				next++;
			if (next == size)
				break;			/* fewer distinct rows than clusters: nothing left to move */
			f = &h[next++];
			so = rs->acc.sums + (int64) f->label * d;
			/* the row's (weighted) contribution moves; j had no weight, so its sums were 0 */
			w = RowWeight(data, f->row);
			for (int t = 0; t < d; t++)
			{
				so[t] -= (double) w * f->x[t];
				sj[t] = (double) w * f->x[t];
			}
			if (rs->acc.mass)
			{
				rs->acc.mass[f->label] -= w;
				rs->acc.mass[j] = w;
			}
			rs->acc.counts[f->label]--;
			rs->acc.counts[j]++;
			if (KmeansTracing())
				ereport(NOTICE,
						(errmsg("kmeans: cluster %d of k=%d was empty; moved row " INT64_FORMAT " into it",
								j - rs->off[r], k, f->row + 1)));
		}
		pfree(h);
		pfree(rows);
		pfree(x);
	}
	pfree(heaps);
}
