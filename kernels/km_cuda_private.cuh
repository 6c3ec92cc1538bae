/*
 * km_cuda_private.cuh -- what every piece of the GPU backend shares: the CUDA (or emulator)
 * headers, the launch sizes, the status a failed CUDA call is recorded as (with its file and
 * line, converted once by the PostgreSQL side), and the backend's and a block's state.
 *
 * No kernels here, so no CPU twin; the structs' twins are CpuBackend and the CPU's KmBlock
 * (km_cpu.c).  Part of km_cuda.cu's unity build, included first.
 */

#ifdef KM_CUDA_EMU
#include "km_cuda_emu.h"
#else
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <dlfcn.h>
#define KM_LAUNCH(kernel, grid, block, stream, ...) \
	kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#include "km_dtw.h"
#include "km_kernels.h"
#include "km_quality.h"
#include "km_state.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 256
/* floats of centers staged in shared memory by the direct kernel: 16 KiB */
#define TILE_FLOATS 4096
/* 64-bit accumulators a block pre-aggregates in shared memory: 32 KiB */
#define SHARED_SLOTS 4096
/* widest row the per-entry accumulation walks in one thread */
#define NARROW_D 32
/* scores of one GEMM tile: at most this many floats (128 MiB) */
#define SCORE_FLOATS ((size_t) 1 << 25)
/* clusters, over all labellings, the silhouette kernel keeps in shared memory */
#define SIL_SLOTS 3072

/* The cuBLAS calls the backend makes; BlasLoad (km_cuda_blas.cuh) fills them in. */
typedef struct BlasApi
{
	int			(*create) (void **handle);
	int			(*destroy) (void *handle);
	int			(*set_stream) (void *handle, cudaStream_t stream);
	/* column-major C = op(A) op(B), op(A) transposed, op(B) not: cublasSgemm(T, N, ...) */
	int			(*sgemm_tn) (void *handle, int m, int n, int k, const float *a, int lda,
							 const float *b, int ldb, float *c, int ldc);
} BlasApi;

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

static KmStatus
CudaFail(KmError *err, cudaError_t e, const char *what, const char *file, int line)
{
	KmStatus	st = e == cudaErrorMemoryAllocation ? KM_ERR_DEVICE_NOMEM :
		e == cudaErrorNoDevice ? KM_ERR_NO_DEVICE : KM_ERR_DEVICE;

	return km_fail(err, st, file, line, "%s: %s", what, cudaGetErrorString(e));
}

/* Returns from the calling function when a CUDA call fails. */
#define CUDA_TRY(call) \
	do { \
		cudaError_t e_ = (call); \
		if (e_ != cudaSuccess) \
			return CudaFail(err, e_, #call, __FILE__, __LINE__); \
	} while (0)

/* Launches a kernel and checks that the launch was accepted. */
#define LAUNCH(kernel, grid, block, ...) \
	do { \
		KM_LAUNCH(kernel, grid, block, cb->stream, __VA_ARGS__); \
		CUDA_TRY(cudaGetLastError()); \
	} while (0)

/* ---------------------------------------------------------------------------------------------
 * Backend state
 * ------------------------------------------------------------------------------------------- */

struct KmBlock
{
	int64_t		n;
	const float *hx;			/* the centred rows on the host */
	float	   *dx;				/* device copy, NULL when the block streams */
	float	   *dnorm;
	size_t		bytes;			/* charged to the budget for dx and dnorm */
	double		maxabs;			/* largest |value|: bounds the fixed-point sums */
	int			stage_slot;		/* the staging slot last filled with it, or -1 */
	uint64_t	stage_serial;	/* ... and that filling's number: still there if it matches */
};

/* A device buffer that grows on demand. */
typedef struct DevBuf
{
	void	   *p;
	size_t		cap;
} DevBuf;

/* A host buffer, pinned where the driver allows it (copies from it are then asynchronous). */
typedef struct HostBuf
{
	void	   *p;
	size_t		cap;
	int			pinned;
} HostBuf;

typedef struct CudaBackend
{
	KmBackend	base;
	int			device;
	size_t		budget;
	size_t		used;
	cudaStream_t stream;
	BlasApi		blas;
	void	   *blas_handle;

	/* installed centers */
	int			k;
	int			nseg;
	int		   *seg_off;		/* host copy */
	DevBuf		dc,
				dcnorm,
				dseg_off;
	double		cmaxnorm;

	/*
	 * Staging for blocks that are not resident: two slots, filled in turn, each a pinned host
	 * buffer and device rows and norms.  A slot's host buffer is refilled only once the copy
	 * out of it has finished (pin_free), so the host prepares one block while the device
	 * copies and works on the other.
	 */
	DevBuf		stage_x[2],
				stage_norm[2];
	HostBuf		pin[2];
	cudaEvent_t pin_free[2];
	uint64_t	slot_serial[2];	/* the filling each slot holds */
	uint64_t	serial;
	int			next_slot;
	int			no_pin;			/* the driver refused pinned memory once: use pageable */

	/* Lloyd passes with each row's label and distance kept on the device */
	DevBuf		st_labels,		/* st_n * st_nseg int32, segment-local */
				st_dist,		/* st_n * st_nseg float */
				pass_acc,		/* sums, inertia (double), counts, changed (uint64) */
				pass_segs;		/* installed segment -> state segment */
	int64_t		st_n;
	int			st_nseg;
	int			pass_open;
	HostBuf		pass_host;
	cudaEvent_t pass_done[2];	/* recorded after each block of a pass, used in turn */
	int64_t		pass_blocks;	/* blocks enqueued in this pass */

	int			pass_exact;		/* this pass's distances are summed directly */

	/* k-means++ with mindist kept on the device */
	DevBuf		seed_mind;		/* seed_n floats */
	int64_t		seed_n;

	/*
	 * The same state in host memory (km_state.c) when the device had no room for it: the
	 * passes of a fit (host_pass) or its seeding (host_seed) then run assign_accumulate,
	 * mindist_update and potentials with the arrays on the host.
	 */
	KmHostState host;
	int			host_pass;
	int			host_seed;

	/* scratch */
	DevBuf		labels,			/* n * nseg int32 */
				dist,			/* n * nseg float */
				scores,			/* a GEMM tile */
				acc,			/* fixed-point sums, then counts and inertia */
				dmax,			/* largest distance of an accumulation, as float bits */
				mind,			/* k-means++: a block's mindist from the host */
				cand,
				run_sums,
				order,			/* wide sums: entries grouped by label */
				cursor,			/* ... and each group's next place */
				sil,			/* silhouette inputs and outputs */
				series;			/* a DTW assignment's rows, centers, results and scratch */
	unsigned long long *host_acc;
	size_t		host_acc_cap;
} CudaBackend;
