/*
 * lloyd.h -- the state of one Lloyd pass, shared by lloyd.c and the empty-cluster repair.
 */
#ifndef KMEANS_LLOYD_H
#define KMEANS_LLOYD_H

#include "kmeans.h"

/* The centers of the running segments, as installed in the backend for one pass. */
typedef struct RunSet
{
	int			nrun;
	int		   *segs;			/* running segment -> model-set segment */
	int		   *off;			/* nrun + 1, offsets into the run set's centers */
	int			k;
	KmAccum		acc;
} RunSet;

/*
 * One pass.  Each row's label and distance per segment stay with the backend (pass_begin);
 * the engine reads them back in ranges of rows, into labels and dist, only for the final
 * labels (sink) and a repair.
 */
typedef struct LloydState
{
	KmeansData *data;
	KmeansModelSet *ms;
	RunSet	   *rs;
	int64	   *changed;		/* per running segment */
	int64		rows;			/* rows the buffers hold: one batch's */
	int32	   *labels;			/* rows * nseg, segment-local */
	float	   *dist;
	KmeansLabelFn sink;
	void	   *sink_arg;
	struct KmeansStepSums *agg_sums;	/* strategy => 'aggregate': the pass's states, per running segment */
} LloydState;

extern RunSet *KmeansRunSetMake(KmeansData *data, KmeansModelSet *ms, bool all);
extern void KmeansRunSetReset(RunSet *rs);
extern void KmeansRunSetFree(RunSet *rs);
extern void KmeansLloydBuffers(LloydState *ls);
extern void KmeansRepairEmpty(KmeansData *data, LloydState *ls);
extern double *KmeansMedianCenters(KmeansData *data, LloydState *ls);

#endif							/* KMEANS_LLOYD_H */
