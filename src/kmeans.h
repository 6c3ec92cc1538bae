/*
 * kmeans.h -- declarations shared by the PostgreSQL side of the extension.
 */
#ifndef KMEANS_H
#define KMEANS_H

#include "postgres.h"

#include "fmgr.h"
#include "access/tupdesc.h"
#include "utils/array.h"
#include "km_kernels.h"

#define KMEANS_DEFAULT_BATCH_ROWS 65536
#define KMEANS_MAX_K 1000000

/*
 * Rows of one resident chunk on the CPU: a multiple of KM_SUB_ROWS, small enough to cancel
 * quickly.  The GPU takes KM_CUDA_BLOCK_ROWS: launches large enough to fill the device.
 */
#define KMEANS_CHUNK_ROWS (16 * KM_SUB_ROWS)

typedef enum KmeansDevice
{
	KMEANS_DEVICE_AUTO,
	KMEANS_DEVICE_CPU,
	KMEANS_DEVICE_GPU
} KmeansDevice;

typedef enum KmeansInit
{
	KMEANS_INIT_PLUSPLUS,
	KMEANS_INIT_RANDOM,
	KMEANS_INIT_EXPLICIT
} KmeansInit;

/* GUCs (gucs.c) */
extern int	kmeans_device;
extern int	kmeans_batch_rows;
extern int	kmeans_memory_limit;	/* kB */
extern int	kmeans_threads;
extern bool kmeans_verbose;
extern int	kmeans_gpu_id;
extern int	kmeans_gpu_memory_limit;	/* MB; 0: what the device has free */

/* The options every fitting function shares. */
typedef struct KmeansOptions
{
	int			max_iter;
	double		tol;
	KmeansInit	init;
	const char *init_name;
	ArrayType  *init_centers;	/* k x d, when init is explicit */
	int			n_init;
	int64		seed;
	KmeansDevice device;
	const char *device_name;
} KmeansOptions;

/* Where the rows come from: the query the reader runs, and names for messages. */
typedef struct KmeansSource
{
	char	   *source;			/* as the user wrote it */
	char	   *column;
	char	   *id_column;		/* NULL: no id */
	char	   *query;			/* SELECT (column)::real[] [, (id)::int8] FROM ... */
} KmeansSource;

/* One batch of rows handed to a pass callback. */
typedef struct KmeansBatch
{
	int64		first;			/* global index (0-based, NULL rows excluded) of row 0 */
	int64		n;
	const float *x;				/* centred rows, n x d */
	const int64 *ids;			/* NULL without an id column */
	KmBlock    *blk;
} KmeansBatch;

typedef void (*KmeansBatchFn) (KmeansBatch *batch, void *arg);

/* The data of one fit: resident chunks or a source re-read each pass. */
typedef struct KmeansData
{
	KmeansSource *src;
	MemoryContext cxt;
	int			d;
	int64		n;				/* non-NULL rows */
	int64		nulls;
	bool		resident;
	float	   *mean;			/* d: the offset subtracted from every row */
	double		mean_var;		/* mean of the per-dimension variances */

	/* resident chunks of chunk_rows rows (the last one may hold fewer) */
	int64		chunk_rows;
	int			nchunks;
	float	  **chunks;
	int64	  **chunk_ids;
	KmBlock   **blocks;

	/* streaming */
	int			batch_rows;
	void	   *plan;			/* SPIPlanPtr */

	KmBackend  *be;
	int			guc_nest;		/* the GUC nest level of the scan settings */
} KmeansData;

/* reader.c */
extern KmeansSource *KmeansSourceMake(text *source, text *column, text *id_column);
extern KmeansData *KmeansDataLoad(KmeansSource *src, int64 chunk_rows);
extern void KmeansDataAttach(KmeansData *data, KmBackend *be);
extern void KmeansDataDetach(KmeansData *data);
extern void KmeansScan(KmeansData *data, KmeansBatchFn fn, void *arg);
extern char *KmeansRowName(int64 rowno, bool has_id, int64 id);
extern const char *KmeansNonFiniteName(float v);

/* engine.c */

/* A set of models iterated together: one segment per k. */
typedef struct KmeansModelSet
{
	int			nseg;
	int			d;
	int		   *seg_off;		/* nseg + 1 */
	float	   *centers;		/* seg_off[nseg] x d, centred */
	int		   *n_iter;			/* per segment */
	bool	   *converged;
	int64	   *sizes;			/* per center, after the final pass */
	double	   *inertia;		/* per center, after the final pass */
	double	   *sums;			/* per center x d, after the final pass: the label means' sums */
} KmeansModelSet;

typedef void (*KmeansLabelFn) (KmeansBatch *batch, const int32 *labels, const float *dist,
							   int nseg, void *arg);

extern KmeansModelSet *KmeansModelSetMake(int d, int nseg, const int *ks);
extern void KmeansSeed(KmeansData *data, const KmeansOptions *opt, int k, KmRng *rng,
					   float *centers);
extern void KmeansFetchRows(KmeansData *data, const int64 *rows, int64 m, float *out);
extern void KmeansLloyd(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms);
extern void KmeansFinalPass(KmeansData *data, KmeansModelSet *ms, KmeansLabelFn fn, void *arg);
extern KmeansModelSet *KmeansFitOne(KmeansData *data, const KmeansOptions *opt, int k);
extern void KmeansRunRng(const KmeansOptions *opt, int run, KmRng *rng);
extern double KmeansSegmentInertia(const KmeansModelSet *ms, int s);
extern void KmeansCheckStatus(KmStatus st, const KmError *err);
extern KmeansData *KmeansBegin(text *source, text *column, text *id_column,
								const KmeansOptions *opt, int k_max, const char *what);
extern void KmeansEnd(KmeansData *data);

/* options.c */

/* Where each option sits in a function's arguments; -1 when the function has no such option. */
typedef struct KmeansArgPos
{
	int			max_iter;
	int			tol;
	int			init;
	int			init_centers;
	int			n_init;
	int			seed;
	int			device;
} KmeansArgPos;

extern void KmeansParseOptions(FunctionCallInfo fcinfo, const KmeansArgPos *pos,
							   KmeansOptions *opt);
extern void KmeansCheckK(int k, int64 n, const char *what);
extern char *KmeansOptionsJson(const KmeansOptions *opt, const KmeansSource *src);

/* fit.c */
extern struct Tuplestorestate *KmeansResultStore(FunctionCallInfo fcinfo, TupleDesc *desc);
extern Datum KmeansVectorDatum(const float *v, int d);

/* models.c */
extern char *KmeansModelsTable(FunctionCallInfo fcinfo);
extern void KmeansModelCheckSave(FunctionCallInfo fcinfo, const char *name);
extern void KmeansModelSave(const char *table, const char *name, const KmeansSource *src, const KmeansOptions *opt,
							KmeansData *data, KmeansModelSet *ms, int seg);
extern float *KmeansCentersOut(KmeansData *data, KmeansModelSet *ms, int seg);

#endif							/* KMEANS_H */
