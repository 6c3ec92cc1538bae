/*
 * dtw.h -- what the fit loop of the series metrics (dtw.c) shares with soft-DTW's own steps
 * (softdtw.c): the fit's rows and per-row state, and the slices its passes are cut into.
 */
#ifndef KMEANS_DTW_H
#define KMEANS_DTW_H

#include "kmeans.h"
#include "km_dtw.h"

/* One series fit: the rows, the center length and the per-row state of the current run. */
typedef struct DtwFit
{
	KmeansData *data;
	const KmeansOptions *opt;
	KmSeries	s;
	int64		n;
	int			lc;				/* the centers' length */
	int			max_len;		/* the longest row */
	int			nthreads;
	bool		same_len;		/* every row has lc samples: envelopes are computed per center */
	int32	   *labels;			/* n */
	double	   *dist;			/* n: DTW^2 (soft-DTW under softdtw) to the row's center */
	double	   *env;			/* k_max x lc x 2: the centers' envelopes when same_len */
	int		   *queue;			/* 2 lc: the envelopes' scratch */
	int64		computed;		/* DTWs started in this run's passes */
} DtwFit;

static inline double
KmeansDtwRowWeight(const DtwFit *f, int64 i)
{
	return f->s.w != NULL ? (double) f->s.w[i] : 1.0;
}

/* dtw.c: rows of a slice of work between two cancel checks, for cells_per_row cells each */
extern int64 KmeansDtwSliceRows(double cells_per_row);

/* softdtw.c */
extern void KmeansSoftDtwAssign(DtwFit *f, int k, const double *c, int64 r0, int64 r1,
								int32 *labels, double *value);
extern int64 KmeansSoftDtwUpdate(DtwFit *f, int k, double *c, const double *mass);
extern double KmeansSoftDtwRow(const DtwFit *f, int64 i, const double *c);

#endif							/* KMEANS_DTW_H */
