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

typedef struct LloydState
{
	KmeansData *data;
	KmeansModelSet *ms;
	RunSet	   *rs;
	int32	   *labels_old;		/* n * nseg, segment-local */
	float	   *dist_all;		/* n * nseg: each row's distance in this pass, for repairs */
	int64	   *changed;		/* per running segment */
	int32	   *labels;			/* per batch: rows * nrun */
	float	   *dist;
	bool		accumulate;
	bool		exact;			/* distances summed directly: the final pass reports them */
	bool		device_state;	/* the backend keeps labels_old and dist_all (pass_begin) */
	KmeansLabelFn sink;
	void	   *sink_arg;
} LloydState;

extern void KmeansLloydHostState(LloydState *ls);
extern void KmeansRepairEmpty(KmeansData *data, LloydState *ls);

#endif							/* KMEANS_LLOYD_H */
