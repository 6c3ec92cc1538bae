/*
 * km_cuda.cu -- the GPU backend: the engine's operations (km_kernels.h) as CUDA kernels.
 *
 * Ownership.  The backend owns one CUDA stream, a cuBLAS handle, the device copy of the
 * installed centers, the device copies of resident blocks and scratch buffers that grow on
 * demand.  Every device allocation goes through DevAlloc, which charges it to a budget (the
 * smaller of kmeans.gpu_memory_limit and the memory free when the backend started) and fails
 * with both numbers before asking CUDA.  A block that does not fit stays on the host and is
 * copied through one of two staging slots (pinned host memory and device memory, used in turn)
 * each time an operation needs it: the streaming mode.  The host fills one slot while the
 * device copies and works on the other.
 *
 * Synchronisation.  An operation enqueues its copies and kernels on the backend's stream and
 * waits once, at the end, when its results are on the host.  A Lloyd pass (pass_begin,
 * pass_block per block, pass_end) keeps each row's label and distance on the device, compares
 * and counts changes there, and folds every block's totals into the pass's on the device, so
 * the whole iteration, however many blocks, waits once: in pass_end.  Nothing else waits:
 * copies from pageable memory have taken their source when they return.
 *
 * Determinism.  Row-wise results (labels, distances) are computed by one thread per row and
 * segment, in a fixed order.  Cluster sums, counts and inertia are accumulated as 64-bit
 * fixed-point integers: each value is scaled by a power of two chosen from a bound on the
 * block's values, so that no sum can overflow, and rounded once; integer addition is
 * associative, so the totals are exact and independent of the order atomics land in.  The
 * k-means++ sums are taken per run of KM_SUB_ROWS rows by one thread in row order.  The same
 * input on the same device therefore gives bit-identical results.
 *
 * Threads.  CUDA and cuBLAS start helper threads; they are created with every signal blocked
 * (see BlockSignals) so that PostgreSQL's handlers only run in the backend's own thread.
 *
 * Built by nvcc into the extension, or as C++ with KM_CUDA_EMU for the engine tests, where
 * km_cuda_emu.h runs the kernels on the CPU.
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

#include "km_kernels.h"
#include "km_quality.h"

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

/* ---------------------------------------------------------------------------------------------
 * cuBLAS, loaded when first needed so that the extension loads where it is absent
 * ------------------------------------------------------------------------------------------- */

typedef struct BlasApi
{
	int			(*create) (void **handle);
	int			(*destroy) (void *handle);
	int			(*set_stream) (void *handle, cudaStream_t stream);
	/* column-major C = op(A) op(B), op(A) transposed, op(B) not: cublasSgemm(T, N, ...) */
	int			(*sgemm_tn) (void *handle, int m, int n, int k, const float *a, int lda,
							 const float *b, int ldb, float *c, int ldc);
} BlasApi;

#ifdef KM_CUDA_EMU

/* The emulated handle is the stream its products are enqueued on. */
static int
EmuBlasCreate(void **handle)
{
	*handle = calloc(1, sizeof(cudaStream_t));
	return *handle == NULL;
}

static int
EmuBlasDestroy(void *handle)
{
	free(handle);
	return 0;
}

static int
EmuBlasSetStream(void *handle, cudaStream_t stream)
{
	*(cudaStream_t *) handle = stream;
	return 0;
}

/* C[i + j*ldc] = sum_t A[t + i*lda] * B[t + j*ldb], in double so it is an honest reference */
static int
EmuBlasSgemmTN(void *handle, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
			   float *c, int ldc)
{
	emu_enqueue(*(cudaStream_t *) handle, [=]() {
		for (int j = 0; j < n; j++)
			for (int i = 0; i < m; i++)
			{
				double		s = 0.0;

				for (int t = 0; t < k; t++)
					s += (double) a[t + (size_t) i * lda] * b[t + (size_t) j * ldb];
				c[i + (size_t) j * ldc] = (float) s;
			}
	});
	return 0;
}

static KmStatus
BlasLoad(BlasApi *api, KmError *err)
{
	(void) err;
	api->create = EmuBlasCreate;
	api->destroy = EmuBlasDestroy;
	api->set_stream = EmuBlasSetStream;
	api->sgemm_tn = EmuBlasSgemmTN;
	return KM_OK;
}

#else

typedef cublasStatus_t (*CreateFn) (cublasHandle_t *);
typedef cublasStatus_t (*DestroyFn) (cublasHandle_t);
typedef cublasStatus_t (*SetStreamFn) (cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*SetMathModeFn) (cublasHandle_t, cublasMath_t);
typedef cublasStatus_t (*SgemmFn) (cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
								   int, const float *, const float *, int, const float *, int,
								   const float *, float *, int);

static struct
{
	void	   *lib;
	CreateFn	create;
	DestroyFn	destroy;
	SetStreamFn set_stream;
	SetMathModeFn set_math_mode;
	SgemmFn		sgemm;
}			blas;

static int
BlasCreate(void **handle)
{
	cublasHandle_t h;
	cublasStatus_t st = blas.create(&h);

	if (st == CUBLAS_STATUS_SUCCESS)
	{
		/* plain fp32 products: TF32 would round the inputs to 10 bits of mantissa */
		st = blas.set_math_mode(h, CUBLAS_PEDANTIC_MATH);
		if (st != CUBLAS_STATUS_SUCCESS)
			blas.destroy(h);
	}
	*handle = st == CUBLAS_STATUS_SUCCESS ? (void *) h : NULL;
	return (int) st;
}

static int
BlasDestroy(void *handle)
{
	return (int) blas.destroy((cublasHandle_t) handle);
}

static int
BlasSetStream(void *handle, cudaStream_t stream)
{
	return (int) blas.set_stream((cublasHandle_t) handle, stream);
}

static int
BlasSgemmTN(void *handle, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
			float *c, int ldc)
{
	const float one = 1.0f,
				zero = 0.0f;

	return (int) blas.sgemm((cublasHandle_t) handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one,
							a, lda, b, ldb, &zero, c, ldc);
}

#define KM_STR2(x) #x
#define KM_STR(x) KM_STR2(x)

/* Finds cuBLAS of the major version we were compiled against; once per process. */
static KmStatus
BlasLoad(BlasApi *api, KmError *err)
{
	if (blas.lib == NULL)
	{
		const char *names[] = {"libcublas.so." KM_STR(CUBLAS_VER_MAJOR), "libcublas.so"};
		void	   *lib = NULL;

		for (int i = 0; i < 2 && lib == NULL; i++)
			lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (lib == NULL)
			return KM_FAIL(err, KM_ERR_NO_DEVICE, "could not load cuBLAS (%s): %s", names[0],
						   dlerror());
		blas.create = (CreateFn) dlsym(lib, "cublasCreate_v2");
		blas.destroy = (DestroyFn) dlsym(lib, "cublasDestroy_v2");
		blas.set_stream = (SetStreamFn) dlsym(lib, "cublasSetStream_v2");
		blas.set_math_mode = (SetMathModeFn) dlsym(lib, "cublasSetMathMode");
		blas.sgemm = (SgemmFn) dlsym(lib, "cublasSgemm_v2");
		if (!blas.create || !blas.destroy || !blas.set_stream || !blas.set_math_mode || !blas.sgemm)
		{
			dlclose(lib);
			return KM_FAIL(err, KM_ERR_NO_DEVICE, "%s lacks the functions kmeans needs", names[0]);
		}
		blas.lib = lib;
	}
	api->create = BlasCreate;
	api->destroy = BlasDestroy;
	api->set_stream = BlasSetStream;
	api->sgemm_tn = BlasSgemmTN;
	return KM_OK;
}

#endif							/* KM_CUDA_EMU */

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

/* Blocks every signal in this thread until RestoreSignals, so threads it starts inherit that. */
static void
BlockSignals(sigset_t *saved)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, saved);
}

static void
RestoreSignals(const sigset_t *saved)
{
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

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

	/* k-means++ with mindist kept on the device */
	DevBuf		seed_mind;		/* seed_n floats */
	int64_t		seed_n;

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
				sil;			/* silhouette inputs and outputs */
	unsigned long long *host_acc;
	size_t		host_acc_cap;
} CudaBackend;

/* Allocates bytes of device memory charged to the budget. */
static KmStatus
DevAlloc(CudaBackend *cb, void **p, size_t bytes, const char *what, KmError *err)
{
	cudaError_t e;

	*p = NULL;
	if (bytes > cb->budget - cb->used)
		return KM_FAIL(err, KM_ERR_DEVICE_NOMEM,
					   "%s needs %.1f MB of GPU memory; %.1f MB of the %.1f MB budget are in use",
					   what, bytes / 1048576.0, cb->used / 1048576.0, cb->budget / 1048576.0);
	e = cudaMalloc(p, bytes ? bytes : 1);
	if (e != cudaSuccess)
	{
		*p = NULL;
		return km_fail(err, KM_ERR_DEVICE_NOMEM, __FILE__, __LINE__,
					   "cudaMalloc of %.1f MB for %s: %s", bytes / 1048576.0, what,
					   cudaGetErrorString(e));
	}
	cb->used += bytes;
	return KM_OK;
}

static void
DevFree(CudaBackend *cb, void *p, size_t bytes)
{
	if (p == NULL)
		return;
	cudaFree(p);
	cb->used -= bytes;
}

/* Makes buf hold at least bytes; its old contents are lost. */
static KmStatus
Reserve(CudaBackend *cb, DevBuf *buf, size_t bytes, const char *what, KmError *err)
{
	KmStatus	st;

	if (buf->cap >= bytes && buf->p != NULL)
		return KM_OK;
	DevFree(cb, buf->p, buf->cap);
	buf->p = NULL;
	buf->cap = 0;
	/* grow by half again, where that fits, so a slowly growing need does not reallocate often */
	if (bytes + bytes / 2 <= cb->budget - cb->used)
		bytes += bytes / 2;
	if ((st = DevAlloc(cb, &buf->p, bytes, what, err)) != KM_OK)
		return st;
	buf->cap = bytes;
	return KM_OK;
}

static void
Release(CudaBackend *cb, DevBuf *buf)
{
	DevFree(cb, buf->p, buf->cap);
	buf->p = NULL;
	buf->cap = 0;
}

static void
HostRelease(HostBuf *buf)
{
	if (buf->p == NULL)
		return;
	if (buf->pinned)
		cudaFreeHost(buf->p);
	else
		free(buf->p);
	buf->p = NULL;
	buf->cap = 0;
	buf->pinned = 0;
}

/*
 * Makes buf hold at least bytes of host memory, its old contents lost: pinned, or pageable
 * where the driver refuses to pin (copies then still work, through the driver's own staging).
 */
static KmStatus
HostReserve(CudaBackend *cb, HostBuf *buf, size_t bytes, KmError *err)
{
	if (buf->cap >= bytes && buf->p != NULL)
		return KM_OK;
	HostRelease(buf);
	if (!cb->no_pin)
	{
		if (cudaMallocHost(&buf->p, bytes ? bytes : 1) == cudaSuccess)
		{
			buf->cap = bytes;
			buf->pinned = 1;
			return KM_OK;
		}
		buf->p = NULL;
		(void) cudaGetLastError();	/* not sticky: clear it */
		cb->no_pin = 1;
	}
	if ((buf->p = malloc(bytes ? bytes : 1)) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %.1f MB of host staging memory",
					   bytes / 1048576.0);
	buf->cap = bytes;
	return KM_OK;
}

/* Waits for the stream: the one host synchronisation of an operation. */
static KmStatus
Sync(CudaBackend *cb, KmError *err)
{
	CUDA_TRY(cudaStreamSynchronize(cb->stream));
	return KM_OK;
}

static inline unsigned
Blocks(int64_t work, int per)
{
	int64_t		b = (work + per - 1) / per;

	return (unsigned) (b < 1 ? 1 : (b > 65535 * 512 ? 65535 * 512 : b));
}

/* ---------------------------------------------------------------------------------------------
 * Kernels.  Each has a CPU twin: km_row_norms, km_argmin_ref and the CPU backend's operations,
 * against which test/engine/test_cuda.c checks it.
 * ------------------------------------------------------------------------------------------- */

/* Squared distance of row x to center c, summed in index order, as the CPU's direct kernel. */
static __device__ __forceinline__ float
Dist2(const float *x, const float *c, int d)
{
	float		diff = x[0] - c[0];
	float		sum = diff * diff;

	for (int t = 1; t < d; t++)
	{
		diff = x[t] - c[t];
		sum = __fmaf_rn(diff, diff, sum);
	}
	return sum;
}

/* |x_i|^2 per row, as km_row_norms. */
static __global__ void
row_norms_kernel(const float *x, int64_t n, int d, float *norms)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (int64_t) gridDim.x * blockDim.x)
	{
		const float *r = x + i * d;
		float		s = r[0] * r[0];

		for (int t = 1; t < d; t++)
			s = __fmaf_rn(r[t], r[t], s);
		norms[i] = s;
	}
}

/*
 * Small d: nearest center per segment by direct distances, one thread per row, the centers
 * staged through shared memory in tiles.  Segments are contiguous runs of centers, so walking
 * all centers once in order serves every segment; ties go to the lowest index.
 */
static __global__ void
assign_direct_kernel(const float *x, int64_t n, int d, const float *c, int k, int nseg,
					 const int *seg_off, int32_t *labels, float *dist)
{
	__shared__ float tile[TILE_FLOATS];
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int			live = i < n;
	int			per = TILE_FLOATS / d;
	float		xr[KM_SMALL_D_MAX];
	int			s = 0;
	int			seg_end = seg_off[1];
	float		best = INFINITY;
	int			arg = seg_off[0];

	for (int t = 0; t < d; t++)
		xr[t] = live ? x[i * d + t] : 0.0f;
	for (int j0 = 0; j0 < k; j0 += per)
	{
		int			m = k - j0 < per ? k - j0 : per;

		__syncthreads();
		for (int q = threadIdx.x; q < m * d; q += blockDim.x)
			tile[q] = c[(int64_t) j0 * d + q];
		__syncthreads();
		if (!live)
			continue;
		for (int jj = 0; jj < m; jj++)
		{
			int			j = j0 + jj;
			float		v;

			while (j >= seg_end)
			{
				labels[i * nseg + s] = arg;
				dist[i * nseg + s] = best;
				s++;
				seg_end = seg_off[s + 1];
				best = INFINITY;
				arg = seg_off[s];
			}
			v = Dist2(xr, tile + jj * d, d);
			if (v < best)
			{
				best = v;
				arg = j;
			}
		}
	}
	if (live)
	{
		labels[i * nseg + s] = arg;
		dist[i * nseg + s] = best;
	}
}

/*
 * Large d, after the GEMM: scores[r * k + j] = x_r . c_j for a tile of rows.  A block takes 8
 * rows, a warp's worth of lanes per row; each lane keeps the best of its strided centers and
 * the lanes are reduced through shared memory, lowest index winning ties.  The squared
 * distance is |x|^2 + |c|^2 - 2 x.c, clamped at zero.
 */
static __global__ void
argmin_scores_kernel(const float *scores, int rows, int k, const float *xnorm, const float *cnorm,
					 int nseg, const int *seg_off, int32_t *labels, float *dist)
{
	__shared__ float sb[THREADS];
	__shared__ int sa[THREADS];
	int			lane = threadIdx.x & 31;
	int			r = blockIdx.x * (THREADS / 32) + (threadIdx.x >> 5);
	int			live = r < rows;

	for (int s = 0; s < nseg; s++)
	{
		float		best = INFINITY;
		int			arg = INT_MAX;

		if (live)
			for (int j = seg_off[s] + lane; j < seg_off[s + 1]; j += 32)
			{
				float		v = __fmaf_rn(-2.0f, scores[(int64_t) r * k + j], cnorm[j]);

				if (v < best)
				{
					best = v;
					arg = j;
				}
			}
		sb[threadIdx.x] = best;
		sa[threadIdx.x] = arg;
		__syncthreads();
		for (int w = 16; w >= 1; w >>= 1)
		{
			if (lane < w)
			{
				float		ob = sb[threadIdx.x + w];
				int			oa = sa[threadIdx.x + w];

				if (ob < sb[threadIdx.x] || (ob == sb[threadIdx.x] && oa < sa[threadIdx.x]))
				{
					sb[threadIdx.x] = ob;
					sa[threadIdx.x] = oa;
				}
			}
			__syncthreads();
		}
		if (live && lane == 0)
		{
			float		d2 = xnorm[r] + sb[threadIdx.x];

			labels[(int64_t) r * nseg + s] = sa[threadIdx.x];
			dist[(int64_t) r * nseg + s] = d2 > 0.0f ? d2 : 0.0f;
		}
		__syncthreads();
	}
}

/* Replaces each distance by the one summed directly from the row and its center. */
static __global__ void
exact_dist_kernel(const float *x, int64_t n, int d, const float *c, int nseg,
				  const int32_t *labels, float *dist)
{
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < n * nseg;
		 e += (int64_t) gridDim.x * blockDim.x)
		dist[e] = Dist2(x + (e / nseg) * d, c + (int64_t) labels[e] * d, d);
}

/*
 * The power of two that turns values of magnitude up to bound, summed up to count times, into
 * integers below 2^62.  The same function on host and device, so both agree on the scale.
 */
static __host__ __device__ double
FixScale(double bound, int64_t count)
{
	double		total = bound * (double) (count > 0 ? count : 1);
	int			e;

	if (!(total > 0.0))
		return 1.0;
	frexp(total, &e);			/* total < 2^e */
	return ldexp(1.0, 62 - e);
}

static __device__ __forceinline__ unsigned long long
Fix(float v, double scale)
{
	return (unsigned long long) __double2ll_rn((double) v * scale);
}

/* The largest distance of the entries, as the bits of a non-negative float. */
static __global__ void
max_dist_kernel(const float *dist, int64_t entries, unsigned *dmax)
{
	unsigned	m = 0;

	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		unsigned	u = __float_as_uint(dist[e]);

		/* distances are >= 0, whose bit patterns order as the values do; -0 counts as 0 */
		if (u < 0x80000000u && u > m)
			m = u;
	}
	atomicMax(dmax, m);
}

/*
 * Counts and fixed-point inertia per center: acc[2j] counts, acc[2j+1] inertia.  With few
 * centers a block first adds into shared memory, then once per center into global memory.
 */
static __global__ void
counts_kernel(const int32_t *labels, const float *dist, int64_t entries, int k,
			  const unsigned *dmax, int64_t rows, unsigned long long *acc)
{
	__shared__ unsigned long long sh[SHARED_SLOTS];
	int			local = 2 * k <= SHARED_SLOTS;
	double		scale = FixScale((double) __uint_as_float(*dmax), rows);
	unsigned long long *dst = local ? sh : acc;

	if (local)
		for (int q = threadIdx.x; q < 2 * k; q += blockDim.x)
			sh[q] = 0;
	__syncthreads();
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		int			j = labels[e];

		atomicAdd(&dst[2 * j], 1ULL);
		atomicAdd(&dst[2 * j + 1], Fix(dist[e], scale));
	}
	__syncthreads();
	if (local)
		for (int q = threadIdx.x; q < 2 * k; q += blockDim.x)
			if (sh[q] != 0)
				atomicAdd(&acc[q], sh[q]);
}

/* Fixed-point sums per center for narrow rows: one thread per (row, segment) entry. */
static __global__ void
sums_narrow_kernel(const float *x, int d, const int32_t *labels, int64_t entries, int nseg,
				   int k, double scale, unsigned long long *sums)
{
	__shared__ unsigned long long sh[SHARED_SLOTS];
	int			local = k * d <= SHARED_SLOTS;
	unsigned long long *dst = local ? sh : sums;

	if (local)
		for (int q = threadIdx.x; q < k * d; q += blockDim.x)
			sh[q] = 0;
	__syncthreads();
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		const float *r = x + (e / nseg) * d;
		unsigned long long *sp = dst + (int64_t) labels[e] * d;

		for (int t = 0; t < d; t++)
			atomicAdd(&sp[t], Fix(r[t], scale));
	}
	__syncthreads();
	if (local)
		for (int q = threadIdx.x; q < k * d; q += blockDim.x)
			if (sh[q] != 0)
				atomicAdd(&sums[q], sh[q]);
}

/*
 * Fixed-point sums per center for wide rows.  One atomic per entry and column would be
 * n * d atomics on k * d addresses (10^8 for 10^6 rows of 128), so the entries are grouped by
 * label first, a counting sort: the counts are counts_kernel's (at stride 2), their prefix
 * sums the groups' starts, and each entry takes the next place in its group.  A block then
 * walks a span of the grouped order, which holds one or two labels, adds each column of a run
 * of equal labels in a register and does one atomic per run and column.  The order inside a
 * group depends on the atomics; fixed-point sums do not depend on order, so the totals are
 * the same bits either way.
 */
#define GROUP_SPAN 256

/* Exclusive prefix sums of the k counts (counts[2j]) into cursor, by one block. */
static __global__ void
group_starts_kernel(const unsigned long long *counts, int k, unsigned long long *cursor)
{
	__shared__ unsigned long long sh[THREADS];
	unsigned long long carry = 0;

	for (int base = 0; base < k; base += blockDim.x)
	{
		int			j = base + threadIdx.x;
		unsigned long long v = j < k ? counts[2 * (int64_t) j] : 0;

		sh[threadIdx.x] = v;
		__syncthreads();
		for (int off = 1; off < (int) blockDim.x; off <<= 1)
		{
			unsigned long long add = threadIdx.x >= (unsigned) off ? sh[threadIdx.x - off] : 0;

			__syncthreads();
			sh[threadIdx.x] += add;
			__syncthreads();
		}
		if (j < k)
			cursor[j] = carry + sh[threadIdx.x] - v;
		carry += sh[blockDim.x - 1];
		__syncthreads();
	}
}

/* Each entry's place in the grouped order. */
static __global__ void
group_scatter_kernel(const int32_t *labels, int64_t entries, unsigned long long *cursor,
					 unsigned long long *order)
{
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
		order[atomicAdd(&cursor[labels[e]], 1ULL)] = (unsigned long long) e;
}

/* Sums over spans of GROUP_SPAN grouped entries, threads across columns. */
static __global__ void
sums_grouped_kernel(const float *x, int d, const int32_t *labels,
					const unsigned long long *order, int64_t entries, int nseg, double scale,
					unsigned long long *sums)
{
	for (int64_t lo = (int64_t) blockIdx.x * GROUP_SPAN; lo < entries;
		 lo += (int64_t) gridDim.x * GROUP_SPAN)
	{
		int64_t		hi = lo + GROUP_SPAN < entries ? lo + GROUP_SPAN : entries;

		for (int t = threadIdx.x; t < d; t += blockDim.x)
		{
			int32_t		cur = -1;
			unsigned long long run = 0;

			for (int64_t p = lo; p < hi; p++)
			{
				int64_t		e = (int64_t) order[p];
				int32_t		l = labels[e];

				if (l != cur)
				{
					if (cur >= 0)
						atomicAdd(&sums[(int64_t) cur * d + t], run);
					cur = l;
					run = 0;
				}
				run += Fix(x[(e / nseg) * d + t], scale);
			}
			if (cur >= 0)
				atomicAdd(&sums[(int64_t) cur * d + t], run);
		}
	}
}

/* k-means++: mind_out[i] = min(mind_in[i], |x_i - c|^2). */
static __global__ void
mindist_kernel(const float *x, int64_t n, int d, const float *c, const float *mind_in,
			   float *mind_out)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (int64_t) gridDim.x * blockDim.x)
	{
		float		v = Dist2(x + i * d, c, d);
		float		m = mind_in[i];

		mind_out[i] = v < m ? v : m;
	}
}

/* The sum of each run of KM_SUB_ROWS values, in row order, in float64. */
static __global__ void
run_sums_kernel(const float *v, int64_t n, double *sums)
{
	int64_t		r = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;

	if (r < runs)
	{
		int64_t		lo = r * KM_SUB_ROWS,
					hi = lo + KM_SUB_ROWS < n ? lo + KM_SUB_ROWS : n;
		double		s = 0.0;

		for (int64_t i = lo; i < hi; i++)
			s += v[i];
		sums[r] = s;
	}
}

/*
 * k-means++ trials: block (run, j) sums min(mindist, |x_i - cand_j|^2) over one run of rows,
 * the values gathered in shared memory and added by one thread in row order.
 */
static __global__ void
potentials_kernel(const float *x, int64_t n, int d, const float *cand, int t, const float *mind,
				  double *run_sums)
{
	__shared__ float vals[KM_SUB_ROWS];
	int64_t		run = blockIdx.x;
	int			j = blockIdx.y;
	int64_t		lo = run * KM_SUB_ROWS;
	int			m = (int) (n - lo < KM_SUB_ROWS ? n - lo : KM_SUB_ROWS);

	for (int q = threadIdx.x; q < m; q += blockDim.x)
	{
		float		v = Dist2(x + (lo + q) * d, cand + (int64_t) j * d, d);
		float		md = mind[lo + q];

		vals[q] = v < md ? v : md;
	}
	__syncthreads();
	if (threadIdx.x == 0)
	{
		double		s = 0.0;

		for (int q = 0; q < m; q++)
			s += vals[q];
		run_sums[run * t + j] = s;
	}
}

/*
 * Silhouette of one row per block against the whole sample, for nlab labellings: distances to
 * a tile of sample rows in float64, then per-cluster sums added by one thread per labelling in
 * sample order.  cnt holds the cluster sizes, off the first slot of each labelling.
 */
static __global__ void
silhouette_kernel(const float *x, int64_t s, int d, const int32_t *labels, int nlab,
				  const int *off, const int *cnt, const int *occupied, int64_t row_begin,
				  double *out)
{
	__shared__ double dtile[THREADS];
	__shared__ double csum[SIL_SLOTS];
	int64_t		i = row_begin + blockIdx.x;
	const float *xi = x + i * d;

	for (int q = threadIdx.x; q < off[nlab]; q += blockDim.x)
		csum[q] = 0.0;
	for (int64_t j0 = 0; j0 < s; j0 += THREADS)
	{
		int64_t		j = j0 + threadIdx.x;
		int			m = (int) (s - j0 < THREADS ? s - j0 : THREADS);

		if (j < s)
		{
			double		acc = 0.0;

			for (int t = 0; t < d; t++)
			{
				double		diff = (double) xi[t] - (double) x[j * d + t];

				acc += diff * diff;
			}
			dtile[threadIdx.x] = sqrt(acc);
		}
		__syncthreads();
		for (int l = threadIdx.x; l < nlab; l += blockDim.x)
			for (int q = 0; q < m; q++)
				csum[off[l] + labels[(j0 + q) * nlab + l]] += dtile[q];
		__syncthreads();
	}
	for (int l = threadIdx.x; l < nlab; l += blockDim.x)
	{
		int			own = labels[i * nlab + l];
		double		a,
					b = INFINITY,
					v;

		if (occupied[l] < 2)
			v = NAN;
		else if (cnt[off[l] + own] <= 1)
			v = 0.0;
		else
		{
			a = csum[off[l] + own] / (cnt[off[l] + own] - 1);
			for (int c = 0; c < off[l + 1] - off[l]; c++)
				if (c != own && cnt[off[l] + c] > 0)
				{
					double		mean = csum[off[l] + c] / cnt[off[l] + c];

					if (mean < b)
						b = mean;
				}
			v = (a > b ? a : b) > 0.0 ? (b - a) / (a > b ? a : b) : 0.0;
		}
		out[blockIdx.x * nlab + l] = v;
	}
}

/*
 * Lloyd passes with the state on the device: for entry e = (row i, installed segment r) of a
 * block starting at row first, compare the segment-local label with the state's, count the
 * changes per installed segment (in shared memory first where they fit), and store the new
 * label and distance.  Counts are integers, so the order of the additions does not matter.
 */
static __global__ void
changes_kernel(const int32_t *labels, const float *dist, int64_t entries, int nrun,
			   const int *seg_off, const int *segs, int st_nseg, int64_t first,
			   int32_t *st_labels, float *st_dist, unsigned long long *changed)
{
	__shared__ unsigned long long sh[SHARED_SLOTS];
	int			local = nrun <= SHARED_SLOTS;
	unsigned long long *dst = local ? sh : changed;

	if (local)
		for (int q = threadIdx.x; q < nrun; q += blockDim.x)
			sh[q] = 0;
	__syncthreads();
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		int			r = (int) (e % nrun);
		int32_t		lab = labels[e] - seg_off[r];
		int64_t		at = (first + e / nrun) * st_nseg + segs[r];

		if (st_labels[at] != lab)
		{
			atomicAdd(&dst[r], 1ULL);
			st_labels[at] = lab;
		}
		st_dist[at] = dist[e];
	}
	__syncthreads();
	if (local)
		for (int q = threadIdx.x; q < nrun; q += blockDim.x)
			if (sh[q] != 0)
				atomicAdd(&changed[q], sh[q]);
}

/*
 * Adds a block's fixed-point totals into the pass's float64 ones, one thread per slot, in the
 * order the blocks were enqueued: the same arithmetic, value for value, as AccumulateHost.
 */
static __global__ void
fold_kernel(const unsigned long long *acc, int k, int d, double xs, const unsigned *dmax,
			int64_t rows, double *sums, double *inertia, unsigned long long *counts)
{
	int64_t		kd = (int64_t) k * d;
	double		ds = 1.0 / FixScale((double) __uint_as_float(*dmax), rows);

	for (int64_t q = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; q < kd + k;
		 q += (int64_t) gridDim.x * blockDim.x)
	{
		if (q < kd)
			sums[q] += (double) (long long) acc[q] * xs;
		else
		{
			int64_t		j = q - kd;

			counts[j] += acc[kd + 2 * j];
			inertia[j] += (double) (long long) acc[kd + 2 * j + 1] * ds;
		}
	}
}

/* ---------------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------------- */

/*
 * The device rows and norms of a block: its own copy, or a staging slot.  A block that is
 * still in the slot it was last copied to is used from there; otherwise the other slot is
 * filled: the rows go into its pinned buffer (once the copy out of that buffer two fillings
 * ago is done) and are copied to the device asynchronously, so the caller goes on while they
 * travel.
 */
static KmStatus
BlockRows(CudaBackend *cb, KmBlock *blk, const float **x, const float **norms, KmError *err)
{
	int			d = cb->base.d;
	size_t		bytes = sizeof(float) * (size_t) blk->n * d;
	int			s = blk->stage_slot;
	KmStatus	st;

	if (blk->dx != NULL)
	{
		*x = blk->dx;
		*norms = blk->dnorm;
		return KM_OK;
	}
	if (s < 0 || cb->slot_serial[s] != blk->stage_serial)
	{
		s = cb->next_slot;
		cb->next_slot ^= 1;
		/* forget the slot's contents first: a failure below leaves it half filled */
		cb->slot_serial[s] = 0;
		if ((st = Reserve(cb, &cb->stage_x[s], bytes, "a streamed block", err)) != KM_OK ||
			(st = Reserve(cb, &cb->stage_norm[s], sizeof(float) * blk->n, "a streamed block", err)) != KM_OK)
			return st;
		CUDA_TRY(cudaEventSynchronize(cb->pin_free[s]));
		if ((st = HostReserve(cb, &cb->pin[s], bytes, err)) != KM_OK)
			return st;
		memcpy(cb->pin[s].p, blk->hx, bytes);
		CUDA_TRY(cudaMemcpyAsync(cb->stage_x[s].p, cb->pin[s].p, bytes, cudaMemcpyHostToDevice,
								 cb->stream));
		CUDA_TRY(cudaEventRecord(cb->pin_free[s], cb->stream));
		LAUNCH(row_norms_kernel, Blocks(blk->n, THREADS), THREADS,
			   (const float *) cb->stage_x[s].p, blk->n, d, (float *) cb->stage_norm[s].p);
		blk->stage_slot = s;
		blk->stage_serial = cb->slot_serial[s] = ++cb->serial;
	}
	*x = (const float *) cb->stage_x[s].p;
	*norms = (const float *) cb->stage_norm[s].p;
	return KM_OK;
}

static void CudaBlockDestroy(KmBackend *be, KmBlock *blk);

/*
 * Centres the rows on the host in place (as the CPU backend does, so both see the same
 * values), then, for a block that is kept, copies them to the device when they fit the budget.
 * Other blocks go through the staging slots; a batch (not kept) starts its copy at once.
 */
static KmStatus
BlockMake(KmBackend *be, float *x, int64_t n, const float *shift, int keep, KmBlock **out,
		  KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			d = be->d;
	KmBlock    *blk = (KmBlock *) calloc(1, sizeof(KmBlock));
	size_t		bytes = (sizeof(float) * (size_t) d + sizeof(float)) * (size_t) n;
	double		maxabs = 0.0;
	KmStatus	st;

	if (blk == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate a block");
	for (int64_t i = 0; i < n; i++)
		for (int t = 0; t < d; t++)
		{
			float	   *v = x + i * d + t;

			if (shift)
				*v -= shift[t];
			if (fabs(*v) > maxabs)
				maxabs = fabs(*v);
		}
	blk->n = n;
	blk->hx = x;
	blk->maxabs = maxabs;
	blk->stage_slot = -1;
	*out = blk;
	if (n == 0)
		return KM_OK;
	if (!keep)
	{
		const float *dx,
				   *dnorm;

		if ((st = BlockRows(cb, blk, &dx, &dnorm, err)) != KM_OK)
			goto fail;
		return KM_OK;
	}
	/* resident when the block and a GEMM tile's worth of scratch still fit */
	if (bytes + (cb->budget / 8) <= cb->budget - cb->used)
	{
		void	   *p;

		if ((st = DevAlloc(cb, &p, bytes, "a resident block", err)) != KM_OK)
			goto fail;
		blk->bytes = bytes;
		blk->dx = (float *) p;
		blk->dnorm = blk->dx + (size_t) n * d;
		if (cudaMemcpyAsync(blk->dx, x, sizeof(float) * n * d, cudaMemcpyHostToDevice,
							cb->stream) != cudaSuccess)
		{
			st = KM_FAIL(err, KM_ERR_DEVICE, "could not copy a block to the GPU");
			goto fail;
		}
		KM_LAUNCH(row_norms_kernel, Blocks(n, THREADS), THREADS, cb->stream,
				  (const float *) blk->dx, n, d, blk->dnorm);
		if ((st = Sync(cb, err)) != KM_OK)
			goto fail;
	}
	return KM_OK;
fail:
	CudaBlockDestroy(be, blk);
	*out = NULL;
	return st;
}

static KmStatus
CudaBlockCreate(KmBackend *be, float *x, int64_t n, const float *shift, KmBlock **out,
				KmError *err)
{
	return BlockMake(be, x, n, shift, 1, out, err);
}

static KmStatus
CudaBatchCreate(KmBackend *be, float *x, int64_t n, const float *shift, KmBlock **out,
				KmError *err)
{
	return BlockMake(be, x, n, shift, 0, out, err);
}

static void
CudaBlockDestroy(KmBackend *be, KmBlock *blk)
{
	CudaBackend *cb = (CudaBackend *) be;

	if (blk == NULL)
		return;
	DevFree(cb, blk->dx, blk->bytes);
	free(blk);
}

/* Copies the centers and their segments to the device and computes their norms there. */
static KmStatus
CudaSetCenters(KmBackend *be, const float *c, int d, int nseg, const int *seg_off, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			k = seg_off[nseg];
	int		   *so;
	KmStatus	st;

	if (d != be->d || nseg < 1 || k < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "bad center set: d=%d nseg=%d k=%d", d, nseg, k);
	if ((so = (int *) malloc(sizeof(int) * (nseg + 1))) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %d segments", nseg);
	free(cb->seg_off);
	cb->seg_off = so;
	memcpy(so, seg_off, sizeof(int) * (nseg + 1));
	cb->k = 0;
	if ((st = Reserve(cb, &cb->dc, sizeof(float) * (size_t) k * d, "the centers", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dcnorm, sizeof(float) * (size_t) k, "the centers", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dseg_off, sizeof(int) * (size_t) (nseg + 1), "the centers", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->dc.p, c, sizeof(float) * (size_t) k * d, cudaMemcpyHostToDevice,
							 cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->dseg_off.p, seg_off, sizeof(int) * (nseg + 1),
							 cudaMemcpyHostToDevice, cb->stream));
	LAUNCH(row_norms_kernel, Blocks(k, THREADS), THREADS, (const float *) cb->dc.p, (int64_t) k,
		   d, (float *) cb->dcnorm.p);
	/* no wait: a copy from pageable memory has taken c before it returns */
	cb->k = k;
	cb->nseg = nseg;
	return KM_OK;
}

/* Enqueues the assignment of a block into the device labels and distances. */
static KmStatus
AssignDevice(CudaBackend *cb, KmBlock *blk, int exact, const float **xout, KmError *err)
{
	int			d = cb->base.d;
	int			nseg = cb->nseg;
	int64_t		n = blk->n;
	const float *x = NULL,
			   *norms = NULL;
	int32_t    *labels;
	float	   *dist;
	KmStatus	st;

	if (cb->k == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "assign before set_centers");
	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = Reserve(cb, &cb->labels, sizeof(int32_t) * n * nseg, "labels", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dist, sizeof(float) * n * nseg, "distances", err)) != KM_OK)
		return st;
	labels = (int32_t *) cb->labels.p;
	dist = (float *) cb->dist.p;
	*xout = x;
	if (!km_use_gemm(d, cb->k))
	{
		LAUNCH(assign_direct_kernel, Blocks(n, THREADS), THREADS, x, n, d,
			   (const float *) cb->dc.p, cb->k, nseg, (const int *) cb->dseg_off.p, labels, dist);
		return KM_OK;
	}

	{
		int64_t		tile = (int64_t) (SCORE_FLOATS / (size_t) cb->k);

		if (tile > n)
			tile = n;
		if (tile < 8)
			tile = 8;
		if ((st = Reserve(cb, &cb->scores, sizeof(float) * (size_t) tile * cb->k, "GEMM scores",
						  err)) != KM_OK)
			return st;
		for (int64_t r0 = 0; r0 < n; r0 += tile)
		{
			int			rows = (int) (n - r0 < tile ? n - r0 : tile);
			int			bst = cb->blas.sgemm_tn(cb->blas_handle, cb->k, rows, d,
												(const float *) cb->dc.p, d, x + r0 * d, d,
												(float *) cb->scores.p, cb->k);

			if (bst != 0)
				return KM_FAIL(err, KM_ERR_DEVICE, "cublasSgemm failed with status %d", bst);
			LAUNCH(argmin_scores_kernel, Blocks(rows, THREADS / 32), THREADS,
				   (const float *) cb->scores.p, rows, cb->k, norms + r0,
				   (const float *) cb->dcnorm.p, nseg, (const int *) cb->dseg_off.p,
				   labels + r0 * nseg, dist + r0 * nseg);
		}
	}
	if (exact)
		LAUNCH(exact_dist_kernel, Blocks(n * nseg, THREADS), THREADS, x, n, d,
			   (const float *) cb->dc.p, nseg, (const int32_t *) labels, dist);
	return KM_OK;
}

/* Copies a block's labels and distances back to the host (not yet waited for). */
static KmStatus
LabelsToHost(CudaBackend *cb, KmBlock *blk, int32_t *labels, float *dist, KmError *err)
{
	size_t		entries = (size_t) blk->n * cb->nseg;

	CUDA_TRY(cudaMemcpyAsync(labels, cb->labels.p, sizeof(int32_t) * entries,
							 cudaMemcpyDeviceToHost, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(dist, cb->dist.p, sizeof(float) * entries, cudaMemcpyDeviceToHost,
							 cb->stream));
	return KM_OK;
}

static KmStatus
CudaAssign(KmBackend *be, KmBlock *blk, int32_t *labels, float *dist, int exact, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	const float *x;
	KmStatus	st;

	if (blk->n == 0)
		return KM_OK;
	if ((st = AssignDevice(cb, blk, exact, &x, err)) != KM_OK ||
		(st = LabelsToHost(cb, blk, labels, dist, err)) != KM_OK)
		return st;
	return Sync(cb, err);
}

/*
 * Enqueues the fixed-point accumulation of the device labels and distances of a block with
 * nseg segments over k centers into cb->acc (sums, then counts and inertia per center) and
 * its largest distance into cb->dmax.
 */
static KmStatus
AccumulateEnqueue(CudaBackend *cb, KmBlock *blk, const float *x, int nseg, int k, KmError *err)
{
	int			d = cb->base.d;
	int64_t		entries = blk->n * nseg;
	size_t		slots = (size_t) k * d + 2 * (size_t) k;
	unsigned long long *acc;
	KmStatus	st;

	if ((st = Reserve(cb, &cb->acc, sizeof(unsigned long long) * slots, "cluster sums", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dmax, sizeof(unsigned), "cluster sums", err)) != KM_OK)
		return st;
	if (d > NARROW_D &&
		((st = Reserve(cb, &cb->order, sizeof(unsigned long long) * entries, "cluster sums", err)) != KM_OK ||
		 (st = Reserve(cb, &cb->cursor, sizeof(unsigned long long) * k, "cluster sums", err)) != KM_OK))
		return st;
	acc = (unsigned long long *) cb->acc.p;
	CUDA_TRY(cudaMemsetAsync(acc, 0, sizeof(unsigned long long) * slots, cb->stream));
	CUDA_TRY(cudaMemsetAsync(cb->dmax.p, 0, sizeof(unsigned), cb->stream));
	LAUNCH(max_dist_kernel, Blocks(entries, THREADS * 16), THREADS, (const float *) cb->dist.p,
		   entries, (unsigned *) cb->dmax.p);
	LAUNCH(counts_kernel, Blocks(entries, THREADS * 16), THREADS, (const int32_t *) cb->labels.p,
		   (const float *) cb->dist.p, entries, k, (const unsigned *) cb->dmax.p, blk->n,
		   acc + (size_t) k * d);
	if (d <= NARROW_D)
		LAUNCH(sums_narrow_kernel, Blocks(entries, THREADS * 16), THREADS, x, d,
			   (const int32_t *) cb->labels.p, entries, nseg, k,
			   FixScale(blk->maxabs, blk->n), acc);
	else
	{
		LAUNCH(group_starts_kernel, 1, THREADS, (const unsigned long long *) acc + (size_t) k * d,
			   k, (unsigned long long *) cb->cursor.p);
		LAUNCH(group_scatter_kernel, Blocks(entries, THREADS * 16), THREADS,
			   (const int32_t *) cb->labels.p, entries, (unsigned long long *) cb->cursor.p,
			   (unsigned long long *) cb->order.p);
		LAUNCH(sums_grouped_kernel, Blocks(entries, GROUP_SPAN),
			   d < THREADS ? ((d + 31) / 32) * 32 : THREADS, x, d, (const int32_t *) cb->labels.p,
			   (const unsigned long long *) cb->order.p, entries, nseg,
			   FixScale(blk->maxabs, blk->n), acc);
	}
	return KM_OK;
}

/* AccumulateEnqueue, and the copy of the block's totals to the host buffer (not waited for). */
static KmStatus
AccumulateDevice(CudaBackend *cb, KmBlock *blk, const float *x, int nseg, int k, KmError *err)
{
	size_t		slots = (size_t) k * cb->base.d + 2 * (size_t) k;
	KmStatus	st;

	if ((st = AccumulateEnqueue(cb, blk, x, nseg, k, err)) != KM_OK)
		return st;
	if (cb->host_acc_cap < slots + 1)
	{
		free(cb->host_acc);
		cb->host_acc = (unsigned long long *) malloc(sizeof(unsigned long long) * (slots + 1));
		cb->host_acc_cap = cb->host_acc ? slots + 1 : 0;
		if (cb->host_acc == NULL)
			return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu cluster sums", slots);
	}
	CUDA_TRY(cudaMemcpyAsync(cb->host_acc, cb->acc.p, sizeof(unsigned long long) * slots,
							 cudaMemcpyDeviceToHost, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->host_acc + slots, cb->dmax.p, sizeof(unsigned),
							 cudaMemcpyDeviceToHost, cb->stream));
	return KM_OK;
}

/* Adds the host copy of the fixed-point totals into acc, once the stream has been waited for. */
static void
AccumulateHost(CudaBackend *cb, KmBlock *blk, KmAccum *acc)
{
	int			d = acc->d;
	int			k = acc->k;
	const unsigned long long *h = cb->host_acc;
	const unsigned long long *ci = h + (size_t) k * d;
	unsigned	dmax_bits;
	float		dmax;
	double		xs = 1.0 / FixScale(blk->maxabs, blk->n);
	double		ds;

	memcpy(&dmax_bits, h + (size_t) k * d + 2 * (size_t) k, sizeof(unsigned));
	memcpy(&dmax, &dmax_bits, sizeof(float));
	ds = 1.0 / FixScale((double) dmax, blk->n);
	for (size_t q = 0; q < (size_t) k * d; q++)
		acc->sums[q] += (double) (long long) h[q] * xs;
	for (int j = 0; j < k; j++)
	{
		acc->counts[j] += (int64_t) ci[2 * j];
		acc->inertia[j] += (double) (long long) ci[2 * j + 1] * ds;
	}
}

static KmStatus
CudaAccumulate(KmBackend *be, KmBlock *blk, int nseg, const int32_t *labels, const float *dist,
			   KmAccum *acc, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	size_t		entries = (size_t) blk->n * nseg;
	const float *x = NULL,
			   *norms = NULL;
	KmStatus	st;

	if (acc->d != be->d)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator of dimension %d for rows of %d",
					   acc->d, be->d);
	if (blk->n == 0)
		return KM_OK;
	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = Reserve(cb, &cb->labels, sizeof(int32_t) * entries, "labels", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dist, sizeof(float) * entries, "distances", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->labels.p, labels, sizeof(int32_t) * entries,
							 cudaMemcpyHostToDevice, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->dist.p, dist, sizeof(float) * entries, cudaMemcpyHostToDevice,
							 cb->stream));
	if ((st = AccumulateDevice(cb, blk, x, nseg, acc->k, err)) != KM_OK ||
		(st = Sync(cb, err)) != KM_OK)
		return st;
	AccumulateHost(cb, blk, acc);
	return KM_OK;
}

/* A Lloyd step for one block with a single wait: assign, accumulate, copy everything back. */
static KmStatus
CudaAssignAccumulate(KmBackend *be, KmBlock *blk, int32_t *labels, float *dist, int exact,
					 KmAccum *acc, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	const float *x;
	KmStatus	st;

	if (acc->d != be->d || acc->k != cb->k)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator for %d x %d, centers %d x %d",
					   acc->k, acc->d, cb->k, be->d);
	if (blk->n == 0)
		return KM_OK;
	if ((st = AssignDevice(cb, blk, exact, &x, err)) != KM_OK ||
		(st = AccumulateDevice(cb, blk, x, cb->nseg, cb->k, err)) != KM_OK ||
		(st = LabelsToHost(cb, blk, labels, dist, err)) != KM_OK ||
		(st = Sync(cb, err)) != KM_OK)
		return st;
	AccumulateHost(cb, blk, acc);
	return KM_OK;
}

/*
 * Lloyd passes with the state on the device.  A pass is enqueued block by block, nothing
 * waited for until pass_end; the totals of the pass are float64 on the device, in the layout
 * sums (k * d), inertia (k), counts (k), changed (nseg of the installed centers).
 */
static KmStatus
CudaPassBegin(KmBackend *be, int64_t n, int nseg, const int *segs, int reset, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	size_t		slots = (size_t) cb->k * be->d + 2 * (size_t) cb->k + (size_t) cb->nseg;
	KmStatus	st;

	cb->pass_open = 0;
	if (cb->k == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin before set_centers");
	if (n < 1 || nseg < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin: n=%lld nseg=%d", (long long) n, nseg);
	for (int r = 0; r < cb->nseg; r++)
		if (segs[r] < 0 || segs[r] >= nseg)
			return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin: segment %d maps to %d of %d", r,
						   segs[r], nseg);
	/* the seeding is over once the passes begin: its distances give their room back */
	Release(cb, &cb->seed_mind);
	cb->seed_n = 0;
	if (cb->st_n != n || cb->st_nseg != nseg)
	{
		size_t		entries = (size_t) n * nseg;

		/* exactly the size asked for: the state can be the largest thing on the device */
		Release(cb, &cb->st_labels);
		Release(cb, &cb->st_dist);
		cb->st_n = 0;
		cb->st_nseg = 0;
		if ((st = DevAlloc(cb, &cb->st_labels.p, sizeof(int32_t) * entries, "the rows' labels", err)) != KM_OK)
			return st;
		cb->st_labels.cap = sizeof(int32_t) * entries;
		if ((st = DevAlloc(cb, &cb->st_dist.p, sizeof(float) * entries, "the rows' labels", err)) != KM_OK)
		{
			Release(cb, &cb->st_labels);
			return st;
		}
		cb->st_dist.cap = sizeof(float) * entries;
		cb->st_n = n;
		cb->st_nseg = nseg;
		reset = 1;
	}
	if ((st = Reserve(cb, &cb->pass_acc, sizeof(double) * slots, "cluster sums", err)) != KM_OK ||
		(st = Reserve(cb, &cb->pass_segs, sizeof(int) * cb->nseg, "cluster sums", err)) != KM_OK ||
		(st = HostReserve(cb, &cb->pass_host, sizeof(double) * slots, err)) != KM_OK)
	{
		/* a caller that keeps the labels itself now needs the room the state took */
		Release(cb, &cb->st_labels);
		Release(cb, &cb->st_dist);
		cb->st_n = 0;
		cb->st_nseg = 0;
		return st;
	}
	if (reset)
		CUDA_TRY(cudaMemsetAsync(cb->st_labels.p, 0xff, sizeof(int32_t) * (size_t) n * nseg,
								 cb->stream));
	CUDA_TRY(cudaMemsetAsync(cb->pass_acc.p, 0, sizeof(double) * slots, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->pass_segs.p, segs, sizeof(int) * cb->nseg,
							 cudaMemcpyHostToDevice, cb->stream));
	cb->pass_open = 1;
	cb->pass_blocks = 0;
	return KM_OK;
}

static KmStatus
CudaPassBlock(KmBackend *be, KmBlock *blk, int64_t first, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			d = be->d;
	int			k = cb->k;
	int64_t		kd = (int64_t) k * d;
	int64_t		entries = blk->n * cb->nseg;
	double	   *sums = (double *) cb->pass_acc.p;
	const float *x;
	KmStatus	st;

	if (!cb->pass_open)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_block outside a pass");
	if (first < 0 || first + blk->n > cb->st_n)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_block: rows %lld..%lld of %lld",
					   (long long) first, (long long) (first + blk->n), (long long) cb->st_n);
	if (blk->n == 0)
		return KM_OK;

	/*
	 * The host stays at most two blocks ahead of the device: the device always has the next
	 * block queued, and a cancel (checked by the caller between blocks) never waits for more
	 * than two blocks of work, however large the data.
	 */
	if (cb->pass_blocks >= 2)
		CUDA_TRY(cudaEventSynchronize(cb->pass_done[cb->pass_blocks % 2]));
	if ((st = AssignDevice(cb, blk, 0, &x, err)) != KM_OK)
		return st;
	LAUNCH(changes_kernel, Blocks(entries, THREADS * 16), THREADS, (const int32_t *) cb->labels.p,
		   (const float *) cb->dist.p, entries, cb->nseg, (const int *) cb->dseg_off.p,
		   (const int *) cb->pass_segs.p, cb->st_nseg, first, (int32_t *) cb->st_labels.p,
		   (float *) cb->st_dist.p, (unsigned long long *) (sums + kd + 2 * k));
	if ((st = AccumulateEnqueue(cb, blk, x, cb->nseg, k, err)) != KM_OK)
		return st;
	LAUNCH(fold_kernel, Blocks(kd + k, THREADS), THREADS, (const unsigned long long *) cb->acc.p,
		   k, d, 1.0 / FixScale(blk->maxabs, blk->n), (const unsigned *) cb->dmax.p, blk->n, sums,
		   sums + kd, (unsigned long long *) (sums + kd + k));
	CUDA_TRY(cudaEventRecord(cb->pass_done[cb->pass_blocks % 2], cb->stream));
	cb->pass_blocks++;
	return KM_OK;
}

static KmStatus
CudaPassEnd(KmBackend *be, KmAccum *acc, int64_t *changed, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			k = cb->k;
	int64_t		kd = (int64_t) k * be->d;
	size_t		slots = (size_t) kd + 2 * (size_t) k + (size_t) cb->nseg;
	const double *h = (const double *) cb->pass_host.p;
	const unsigned long long *hc = (const unsigned long long *) (h + kd + k);
	KmStatus	st;

	if (!cb->pass_open)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_end outside a pass");
	cb->pass_open = 0;
	if (acc->d != be->d || acc->k != k)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator for %d x %d, centers %d x %d",
					   acc->k, acc->d, k, be->d);
	CUDA_TRY(cudaMemcpyAsync(cb->pass_host.p, cb->pass_acc.p, sizeof(double) * slots,
							 cudaMemcpyDeviceToHost, cb->stream));
	if ((st = Sync(cb, err)) != KM_OK)
		return st;
	for (int64_t q = 0; q < kd; q++)
		acc->sums[q] += h[q];
	for (int j = 0; j < k; j++)
	{
		acc->inertia[j] += h[kd + j];
		acc->counts[j] += (int64_t) hc[j];
	}
	for (int r = 0; r < cb->nseg; r++)
		changed[r] = (int64_t) hc[k + r];
	return KM_OK;
}

static KmStatus
CudaStateFetch(KmBackend *be, int32_t *labels, float *dist, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	size_t		entries = (size_t) cb->st_n * cb->st_nseg;

	if (cb->st_n == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "state_fetch before any pass");
	CUDA_TRY(cudaMemcpyAsync(labels, cb->st_labels.p, sizeof(int32_t) * entries,
							 cudaMemcpyDeviceToHost, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(dist, cb->st_dist.p, sizeof(float) * entries,
							 cudaMemcpyDeviceToHost, cb->stream));
	return Sync(cb, err);
}

/*
 * k-means++.  The host-array operations copy mindist in (and out) on every call; the seed_*
 * operations keep it on the device (cb->seed_mind, one float per row of the data), so a step
 * moves only the candidates in and the run sums out.  Both enqueue the same kernels.
 */

/* Makes room for a step over a block with t candidates and copies the candidates over. */
static KmStatus
CandInputs(CudaBackend *cb, KmBlock *blk, const float *cand, int t, KmError *err)
{
	int			d = cb->base.d;
	int64_t		runs = (blk->n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	KmStatus	st;

	if (runs > 65535 * 512 || t > 65535)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "k-means++: %lld runs of %d candidates",
					   (long long) runs, t);
	if ((st = Reserve(cb, &cb->cand, sizeof(float) * (size_t) t * d, "k-means++ candidates", err)) != KM_OK ||
		(st = Reserve(cb, &cb->run_sums, sizeof(double) * (size_t) runs * t, "k-means++ sums", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->cand.p, cand, sizeof(float) * (size_t) t * d,
							 cudaMemcpyHostToDevice, cb->stream));
	return KM_OK;
}

/* mind_out = min(mind_in, |x - c|^2) over a block, and the run sums of mind_out to the host. */
static KmStatus
MindistSteps(CudaBackend *cb, KmBlock *blk, const float *c, const float *mind_in, float *mind_out,
			 double *sub_sums, KmError *err)
{
	int64_t		n = blk->n;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	const float *x = NULL,
			   *norms = NULL;
	KmStatus	st;

	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = CandInputs(cb, blk, c, 1, err)) != KM_OK)
		return st;
	LAUNCH(mindist_kernel, Blocks(n, THREADS), THREADS, x, n, cb->base.d,
		   (const float *) cb->cand.p, mind_in, mind_out);
	LAUNCH(run_sums_kernel, Blocks(runs, 64), 64, (const float *) mind_out, n,
		   (double *) cb->run_sums.p);
	CUDA_TRY(cudaMemcpyAsync(sub_sums, cb->run_sums.p, sizeof(double) * runs,
							 cudaMemcpyDeviceToHost, cb->stream));
	return KM_OK;
}

/* pot[j] += the potential of candidate j over a block, mindist on the device at mind. */
static KmStatus
PotentialSteps(CudaBackend *cb, KmBlock *blk, const float *cand, int t, const float *mind,
			   double *pot, KmError *err)
{
	int64_t		n = blk->n;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	const float *x = NULL,
			   *norms = NULL;
	double	   *sums;
	KmStatus	st;

	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = CandInputs(cb, blk, cand, t, err)) != KM_OK)
		return st;
	if ((sums = (double *) malloc(sizeof(double) * (size_t) runs * t)) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %lld run sums", (long long) runs * t);
	KM_LAUNCH(potentials_kernel, dim3((unsigned) runs, (unsigned) t), THREADS, cb->stream, x, n,
			  cb->base.d, (const float *) cb->cand.p, t, mind, (double *) cb->run_sums.p);
	if (cudaGetLastError() != cudaSuccess ||
		cudaMemcpyAsync(sums, cb->run_sums.p, sizeof(double) * (size_t) runs * t,
						cudaMemcpyDeviceToHost, cb->stream) != cudaSuccess)
		st = KM_FAIL(err, KM_ERR_DEVICE, "k-means++ potentials failed on the GPU");
	else
		st = Sync(cb, err);
	if (st == KM_OK)
		for (int64_t r = 0; r < runs; r++)
			for (int j = 0; j < t; j++)
				pot[j] += sums[r * t + j];
	free(sums);
	return st;
}

static KmStatus
CudaMindistUpdate(KmBackend *be, KmBlock *blk, const float *c, float *mindist, double *sub_sums,
				  KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int64_t		n = blk->n;
	float	   *m;
	KmStatus	st;

	if (n == 0)
		return KM_OK;
	if ((st = Reserve(cb, &cb->mind, sizeof(float) * n, "k-means++ distances", err)) != KM_OK)
		return st;
	m = (float *) cb->mind.p;
	CUDA_TRY(cudaMemcpyAsync(m, mindist, sizeof(float) * n, cudaMemcpyHostToDevice, cb->stream));
	if ((st = MindistSteps(cb, blk, c, m, m, sub_sums, err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(mindist, m, sizeof(float) * n, cudaMemcpyDeviceToHost, cb->stream));
	return Sync(cb, err);
}

static KmStatus
CudaPotentials(KmBackend *be, KmBlock *blk, const float *cand, int t, const float *mindist,
			   double *pot, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int64_t		n = blk->n;
	KmStatus	st;

	if (n == 0 || t == 0)
		return KM_OK;
	if ((st = Reserve(cb, &cb->mind, sizeof(float) * n, "k-means++ distances", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->mind.p, mindist, sizeof(float) * n, cudaMemcpyHostToDevice,
							 cb->stream));
	return PotentialSteps(cb, blk, cand, t, (const float *) cb->mind.p, pot, err);
}

/* +Inf in every entry, for a seeding that starts. */
static __global__ void
fill_inf_kernel(float *v, int64_t n)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (int64_t) gridDim.x * blockDim.x)
		v[i] = INFINITY;
}

static KmStatus
CudaSeedBegin(KmBackend *be, int64_t n, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	if (n < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "seed_begin: n=%lld", (long long) n);
	/* a new seeding starts a new fit, whose first pass starts its labels afresh anyway */
	Release(cb, &cb->st_labels);
	Release(cb, &cb->st_dist);
	cb->st_n = 0;
	cb->st_nseg = 0;
	if (cb->seed_n != n)
	{
		Release(cb, &cb->seed_mind);
		cb->seed_n = 0;
		if ((st = DevAlloc(cb, &cb->seed_mind.p, sizeof(float) * n, "the k-means++ distances", err)) != KM_OK)
			return st;
		cb->seed_mind.cap = sizeof(float) * n;
		cb->seed_n = n;
	}
	LAUNCH(fill_inf_kernel, Blocks(n, THREADS), THREADS, (float *) cb->seed_mind.p, n);
	return KM_OK;
}

static KmStatus
SeedRows(CudaBackend *cb, int64_t first, int64_t m, KmError *err)
{
	if (cb->seed_n == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "k-means++ step before seed_begin");
	if (first < 0 || m < 0 || first + m > cb->seed_n)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "k-means++: rows %lld..%lld of %lld",
					   (long long) first, (long long) (first + m), (long long) cb->seed_n);
	return KM_OK;
}

static KmStatus
CudaSeedUpdate(KmBackend *be, KmBlock *blk, int64_t first, const float *c, double *sub_sums,
			   KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	float	   *m;
	KmStatus	st;

	if ((st = SeedRows(cb, first, blk->n, err)) != KM_OK || blk->n == 0)
		return st;
	m = (float *) cb->seed_mind.p + first;
	if ((st = MindistSteps(cb, blk, c, m, m, sub_sums, err)) != KM_OK)
		return st;
	return Sync(cb, err);
}

static KmStatus
CudaSeedPotentials(KmBackend *be, KmBlock *blk, int64_t first, const float *cand, int t,
				   double *pot, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	if ((st = SeedRows(cb, first, blk->n, err)) != KM_OK || blk->n == 0 || t == 0)
		return st;
	return PotentialSteps(cb, blk, cand, t, (const float *) cb->seed_mind.p + first, pot, err);
}

static KmStatus
CudaSeedFetch(KmBackend *be, int64_t first, int64_t m, float *out, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	if ((st = SeedRows(cb, first, m, err)) != KM_OK || m == 0)
		return st;
	CUDA_TRY(cudaMemcpyAsync(out, (const float *) cb->seed_mind.p + first, sizeof(float) * m,
							 cudaMemcpyDeviceToHost, cb->stream));
	return Sync(cb, err);
}

/*
 * Silhouette of a slice of a sample, into out[i * nlab + m] for the slice's rows i (indexed
 * as the whole sample is, as the CPU twin does).  The sample, its labels and the cluster sizes go to the
 * device on every call (the sample is small by design); labellings with more clusters in all
 * than shared memory holds are scored by the CPU twin instead.
 */
static KmStatus
CudaSilhouette(KmBackend *be, const float *x, int64_t s, const int32_t *labels, int nlab,
			   const int *ks, int64_t row_begin, int64_t row_end, double *out, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			d = be->d;
	int64_t		rows = row_end - row_begin;
	int			slots = 0;
	int		   *meta;			/* off (nlab + 1), cnt (slots), occupied (nlab) */
	size_t		xb,
				lb,
				mb,
				ob;
	char	   *base;
	KmStatus	st;

	if (s < 0 || nlab < 0 || row_begin < 0 || row_end > s || row_begin > row_end)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "silhouette: bad sizes (s=%lld nlab=%d rows %lld..%lld)",
					   (long long) s, nlab, (long long) row_begin, (long long) row_end);
	if (nlab == 0 || rows == 0)
		return KM_OK;
	for (int m = 0; m < nlab; m++)
	{
		if (ks[m] < 1)
			return KM_FAIL(err, KM_ERR_ARGUMENT, "silhouette: labelling %d has k=%d", m, ks[m]);
		slots += ks[m];
		if (slots > SIL_SLOTS)
			return km_silhouette_rows(x, s, d, labels, nlab, ks, row_begin, row_end, out, err);
	}
	if ((meta = (int *) calloc((size_t) 2 * nlab + 1 + slots, sizeof(int))) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate silhouette sizes");
	for (int m = 0; m < nlab; m++)
		meta[m + 1] = meta[m] + ks[m];
	for (int64_t i = 0; i < s; i++)
		for (int m = 0; m < nlab; m++)
		{
			int32_t		l = labels[i * nlab + m];
			int		   *c = meta + nlab + 1 + meta[m] + l;

			if (l < 0 || l >= ks[m])
			{
				free(meta);
				return KM_FAIL(err, KM_ERR_ARGUMENT,
							   "silhouette: row %lld has label %d outside 0..%d in labelling %d",
							   (long long) i, (int) l, ks[m] - 1, m);
			}
			if ((*c)++ == 0)
				meta[nlab + 1 + slots + m]++;
		}
	xb = sizeof(float) * (size_t) s * d;
	lb = sizeof(int32_t) * (size_t) s * nlab;
	mb = sizeof(int) * ((size_t) 2 * nlab + 1 + slots);
	ob = sizeof(double) * (size_t) rows * nlab;
	/* each piece starts on an 8-byte boundary */
	xb = (xb + 7) & ~(size_t) 7;
	lb = (lb + 7) & ~(size_t) 7;
	mb = (mb + 7) & ~(size_t) 7;
	if ((st = Reserve(cb, &cb->sil, xb + lb + mb + ob, "the silhouette sample", err)) != KM_OK)
	{
		free(meta);
		return st;
	}
	base = (char *) cb->sil.p;
	if (cudaMemcpyAsync(base, x, sizeof(float) * (size_t) s * d, cudaMemcpyHostToDevice, cb->stream) != cudaSuccess ||
		cudaMemcpyAsync(base + xb, labels, sizeof(int32_t) * (size_t) s * nlab, cudaMemcpyHostToDevice, cb->stream) != cudaSuccess ||
		cudaMemcpyAsync(base + xb + lb, meta, sizeof(int) * ((size_t) 2 * nlab + 1 + slots), cudaMemcpyHostToDevice, cb->stream) != cudaSuccess)
		st = KM_FAIL(err, KM_ERR_DEVICE, "could not copy the silhouette sample to the GPU");
	else
	{
		const int  *dmeta = (const int *) (base + xb + lb);

		for (int64_t r0 = 0; r0 < rows && st == KM_OK; r0 += 65535)
		{
			unsigned	nb = (unsigned) (rows - r0 < 65535 ? rows - r0 : 65535);

			KM_LAUNCH(silhouette_kernel, nb, THREADS, cb->stream, (const float *) base, s, d,
					  (const int32_t *) (base + xb), nlab, dmeta, dmeta + nlab + 1,
					  dmeta + nlab + 1 + slots, row_begin + r0,
					  (double *) (base + xb + lb + mb) + r0 * nlab);
			if (cudaGetLastError() != cudaSuccess)
				st = KM_FAIL(err, KM_ERR_DEVICE, "the silhouette kernel could not be launched");
		}
		if (st == KM_OK &&
			cudaMemcpyAsync(out + row_begin * nlab, base + xb + lb + mb, ob, cudaMemcpyDeviceToHost,
							cb->stream) != cudaSuccess)
			st = KM_FAIL(err, KM_ERR_DEVICE, "could not copy silhouette values from the GPU");
		if (st == KM_OK)
			st = Sync(cb, err);
	}
	/* meta is only read by the copies, which the wait above (or the failure) has settled */
	cudaStreamSynchronize(cb->stream);
	free(meta);
	return st;
}

static void
CudaDestroy(KmBackend *be)
{
	CudaBackend *cb = (CudaBackend *) be;
	DevBuf	   *bufs[] = {&cb->dc, &cb->dcnorm, &cb->dseg_off, &cb->stage_x[0], &cb->stage_x[1],
		&cb->stage_norm[0], &cb->stage_norm[1], &cb->st_labels, &cb->st_dist, &cb->pass_acc,
		&cb->pass_segs, &cb->seed_mind, &cb->labels, &cb->dist, &cb->scores, &cb->acc, &cb->dmax, &cb->mind,
	&cb->cand, &cb->run_sums, &cb->order, &cb->cursor, &cb->sil};

	if (cb == NULL)
		return;
	if (cb->stream)
		cudaStreamSynchronize(cb->stream);
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		Release(cb, bufs[i]);
	HostRelease(&cb->pin[0]);
	HostRelease(&cb->pin[1]);
	HostRelease(&cb->pass_host);
	for (int s = 0; s < 2; s++)
	{
		if (cb->pin_free[s])
			cudaEventDestroy(cb->pin_free[s]);
		if (cb->pass_done[s])
			cudaEventDestroy(cb->pass_done[s]);
	}
	if (cb->blas_handle)
		cb->blas.destroy(cb->blas_handle);
	if (cb->stream)
		cudaStreamDestroy(cb->stream);
	free(cb->seg_off);
	free(cb->host_acc);
	free(cb);
}

static const KmBackendOps CudaOps = {
	"gpu",
	CudaDestroy,
	CudaBlockCreate,
	CudaBlockDestroy,
	CudaSetCenters,
	CudaAssign,
	CudaAccumulate,
	CudaMindistUpdate,
	CudaPotentials,
	CudaSilhouette,
	CudaAssignAccumulate,
	CudaPassBegin,
	CudaPassBlock,
	CudaPassEnd,
	CudaStateFetch,
	CudaBatchCreate,
	CudaSeedBegin,
	CudaSeedUpdate,
	CudaSeedPotentials,
	CudaSeedFetch,
};

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */

extern "C" int
km_cuda_built(void)
{
	return 1;
}

/* Checks that device can be used, naming it in desc; initialises CUDA in this process. */
extern "C" KmStatus
km_cuda_probe(int device, char *desc, size_t desclen, KmError *err)
{
	int			count = 0;
	cudaError_t e;
	cudaDeviceProp prop;
	BlasApi		api;
	sigset_t	saved;
	KmStatus	st = KM_OK;

	BlockSignals(&saved);
	e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess || count == 0)
		st = km_fail(err, KM_ERR_NO_DEVICE, __FILE__, __LINE__, "no usable GPU: %s",
					 e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports no devices");
	else if (device < 0 || device >= count)
		st = KM_FAIL(err, KM_ERR_NO_DEVICE, "GPU %d does not exist; this machine has %d (0..%d)",
					 device, count, count - 1);
	else if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess)
		st = CudaFail(err, e, "cudaGetDeviceProperties", __FILE__, __LINE__);
	else
		st = BlasLoad(&api, err);
	RestoreSignals(&saved);
	if (st == KM_OK && desc != NULL && desclen > 0)
		snprintf(desc, desclen, "GPU %d (%s, %.1f GB)", device, prop.name,
				 prop.totalGlobalMem / 1e9);
	return st;
}

/*
 * Starts the GPU backend on device for rows of d values.  memory_limit (bytes, 0 for none)
 * caps the device memory it may use, which is also capped by what is free now.
 */
extern "C" KmStatus
km_cuda_backend_create(int device, int d, size_t memory_limit, KmBackend **out, KmError *err)
{
	CudaBackend *cb;
	size_t		free_bytes = 0,
				total = 0;
	sigset_t	saved;
	KmStatus	st;
	cudaError_t e;

	*out = NULL;
	if (d < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "bad dimension %d", d);
	if ((st = km_cuda_probe(device, NULL, 0, err)) != KM_OK)
		return st;
	if ((cb = (CudaBackend *) calloc(1, sizeof(CudaBackend))) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the GPU backend");
	cb->base.ops = &CudaOps;
	cb->base.d = d;
	cb->device = device;

	BlockSignals(&saved);
	if ((e = cudaSetDevice(device)) != cudaSuccess ||
		(e = cudaMemGetInfo(&free_bytes, &total)) != cudaSuccess ||
		(e = cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking)) != cudaSuccess ||
		(e = cudaEventCreateWithFlags(&cb->pin_free[0], cudaEventDisableTiming)) != cudaSuccess ||
		(e = cudaEventCreateWithFlags(&cb->pin_free[1], cudaEventDisableTiming)) != cudaSuccess ||
		(e = cudaEventCreateWithFlags(&cb->pass_done[0], cudaEventDisableTiming)) != cudaSuccess ||
		(e = cudaEventCreateWithFlags(&cb->pass_done[1], cudaEventDisableTiming)) != cudaSuccess)
		st = CudaFail(err, e, "starting the GPU", __FILE__, __LINE__);
	else if ((st = BlasLoad(&cb->blas, err)) == KM_OK)
	{
		int			bst = cb->blas.create(&cb->blas_handle);

		if (bst != 0 || (bst = cb->blas.set_stream(cb->blas_handle, cb->stream)) != 0)
			st = KM_FAIL(err, KM_ERR_DEVICE, "could not start cuBLAS (status %d)", bst);
	}
	RestoreSignals(&saved);
	if (st != KM_OK)
	{
		CudaDestroy(&cb->base);
		return st;
	}
	/* leave a little of the free memory to the driver and other processes */
	cb->budget = free_bytes - free_bytes / 16;
	if (memory_limit > 0 && memory_limit < cb->budget)
		cb->budget = memory_limit;
	*out = &cb->base;
	return KM_OK;
}
