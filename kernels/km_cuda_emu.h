/*
 * km_cuda_emu.h -- runs km_cuda.cu on the CPU, so that its kernels' logic is tested on every
 * machine, GPU or not.  Only the engine tests use it (km_cuda.cu compiled as C++ with
 * -DKM_CUDA_EMU); the extension itself is built from km_cuda.cu by nvcc, or without it.
 *
 * Execution model.  A launch runs its blocks one after another.  Each thread of a block is a
 * coroutine (ucontext) on one OS thread: it runs until __syncthreads(), where it yields; when
 * every thread of the block has yielded, the round ends and all resume.  A block in which some
 * threads return while others wait at a barrier is a kernel bug (a hang or undefined behaviour
 * on a GPU) and stops the test program with a message.  __shared__ variables are function
 * statics: shared by the threads of the running block, as on a GPU, and left with the previous
 * block's contents, as a GPU may leave them.  Device memory is host memory filled with a
 * garbage pattern on allocation, so a kernel that reads what it never wrote fails its test.
 *
 * Only what km_cuda.cu uses is here: no warp intrinsics, no dynamic shared memory, and the
 * single cuBLAS call (SGEMM) done by a plain loop.
 */
#ifndef KM_CUDA_EMU_H
#define KM_CUDA_EMU_H

#include <functional>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)

struct dim3
{
	unsigned	x,
				y,
				z;

	dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

static dim3 threadIdx,
			blockIdx,
			blockDim,
			gridDim;

/* ---- execution ---------------------------------------------------------------------------- */

#define EMU_STACK (128 * 1024)
#define EMU_MAX_THREADS 1024

typedef struct EmuThread
{
	ucontext_t	ctx;
	char	   *stack;
	int			done;
} EmuThread;

static ucontext_t emu_main;
static EmuThread emu_threads[EMU_MAX_THREADS];
static int	emu_cur;
static std::function<void()> *emu_body;

static void
emu_entry(void)
{
	(*emu_body)();
	emu_threads[emu_cur].done = 1;
	swapcontext(&emu_threads[emu_cur].ctx, &emu_main);
}

static inline void
__syncthreads(void)
{
	swapcontext(&emu_threads[emu_cur].ctx, &emu_main);
}

/* Runs body once per thread of every block of grid. */
static void
emu_launch(dim3 grid, dim3 block, std::function<void()> body)
{
	unsigned	nt = block.x * block.y * block.z;

	if (nt == 0 || nt > EMU_MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0)
	{
		fprintf(stderr, "emu: bad launch %ux%ux%u blocks of %u threads\n", grid.x, grid.y, grid.z, nt);
		abort();
	}
	emu_body = &body;
	blockDim = block;
	gridDim = grid;
	for (unsigned bz = 0; bz < grid.z; bz++)
		for (unsigned by = 0; by < grid.y; by++)
			for (unsigned bx = 0; bx < grid.x; bx++)
			{
				unsigned	finished = 0;

				blockIdx = dim3(bx, by, bz);
				for (unsigned t = 0; t < nt; t++)
				{
					EmuThread  *th = &emu_threads[t];

					if (th->stack == NULL && (th->stack = (char *) malloc(EMU_STACK)) == NULL)
						abort();
					getcontext(&th->ctx);
					th->ctx.uc_stack.ss_sp = th->stack;
					th->ctx.uc_stack.ss_size = EMU_STACK;
					th->ctx.uc_link = NULL;
					th->done = 0;
					makecontext(&th->ctx, emu_entry, 0);
				}
				while (finished < nt)
				{
					unsigned	ended = 0;

					for (unsigned t = 0; t < nt; t++)
					{
						emu_cur = (int) t;
						threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
						swapcontext(&emu_main, &emu_threads[t].ctx);
						if (emu_threads[t].done)
							ended++;
					}
					if (ended != 0 && ended != nt)
					{
						fprintf(stderr, "emu: block (%u,%u,%u): %u of %u threads returned while the others wait at __syncthreads\n",
								bx, by, bz, ended, nt);
						abort();
					}
					finished = ended;
				}
			}
	emu_body = NULL;
}

#define KM_LAUNCH(kernel, grid, block, stream, ...) \
	emu_launch((grid), (block), [=]() { kernel(__VA_ARGS__); })

/* ---- device functions --------------------------------------------------------------------- */

static inline unsigned long long
atomicAdd(unsigned long long *p, unsigned long long v)
{
	unsigned long long old = *p;

	*p = old + v;
	return old;
}

static inline int
atomicAdd(int *p, int v)
{
	int			old = *p;

	*p = old + v;
	return old;
}

static inline unsigned
atomicMax(unsigned *p, unsigned v)
{
	unsigned	old = *p;

	if (v > old)
		*p = v;
	return old;
}

static inline float
__fmaf_rn(float a, float b, float c)
{
	return fmaf(a, b, c);
}

static inline long long
__double2ll_rn(double v)
{
	return llrint(v);
}

static inline unsigned
__float_as_uint(float f)
{
	unsigned	u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float
__uint_as_float(unsigned u)
{
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* ---- runtime API -------------------------------------------------------------------------- */

typedef enum cudaError
{
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorNoDevice = 100
} cudaError_t;

typedef struct EmuStream *cudaStream_t;

enum cudaMemcpyKind
{
	cudaMemcpyHostToDevice,
	cudaMemcpyDeviceToHost,
	cudaMemcpyDeviceToDevice
};

struct cudaDeviceProp
{
	char		name[256];
	size_t		totalGlobalMem;
	int			multiProcessorCount;
	int			major;
	int			minor;
};

/* Device memory the emulated card reports free: KM_EMU_MEMORY bytes, 1 GiB by default. */
static size_t
emu_memory(void)
{
	const char *v = getenv("KM_EMU_MEMORY");

	return v ? (size_t) strtoull(v, NULL, 10) : (size_t) 1 << 30;
}

static inline cudaError_t
cudaGetDeviceCount(int *n)
{
	/* KM_EMU_NO_DEVICE=1 plays a machine without a GPU */
	*n = getenv("KM_EMU_NO_DEVICE") ? 0 : 1;
	return *n ? cudaSuccess : cudaErrorNoDevice;
}

static inline cudaError_t
cudaSetDevice(int dev)
{
	return dev == 0 ? cudaSuccess : cudaErrorInvalidValue;
}

static inline cudaError_t
cudaGetDeviceProperties(cudaDeviceProp *p, int dev)
{
	if (dev != 0)
		return cudaErrorInvalidValue;
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "emulated GPU");
	p->totalGlobalMem = emu_memory();
	p->multiProcessorCount = 4;
	p->major = 9;
	return cudaSuccess;
}

static inline cudaError_t
cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
	*free_bytes = emu_memory();
	*total = emu_memory();
	return cudaSuccess;
}

static inline cudaError_t
cudaMalloc(void **p, size_t bytes)
{
	*p = malloc(bytes ? bytes : 1);
	if (*p == NULL)
		return cudaErrorMemoryAllocation;
	memset(*p, 0xA5, bytes);
	return cudaSuccess;
}

static inline cudaError_t
cudaFree(void *p)
{
	free(p);
	return cudaSuccess;
}

static inline cudaError_t
cudaMallocHost(void **p, size_t bytes)
{
	return cudaMalloc(p, bytes);
}

static inline cudaError_t
cudaFreeHost(void *p)
{
	free(p);
	return cudaSuccess;
}

static inline cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
	(void) kind;
	(void) s;
	if (bytes)
		memcpy(dst, src, bytes);
	return cudaSuccess;
}

static inline cudaError_t
cudaMemsetAsync(void *dst, int v, size_t bytes, cudaStream_t s)
{
	(void) s;
	memset(dst, v, bytes);
	return cudaSuccess;
}

static inline cudaError_t
cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	(void) flags;
	*s = (cudaStream_t) malloc(1);
	return cudaSuccess;
}

#define cudaStreamNonBlocking 1

static inline cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
	free(s);
	return cudaSuccess;
}

static inline cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
	(void) s;
	return cudaSuccess;
}

static inline cudaError_t
cudaGetLastError(void)
{
	return cudaSuccess;
}

static inline const char *
cudaGetErrorString(cudaError_t e)
{
	switch (e)
	{
		case cudaSuccess:
			return "no error";
		case cudaErrorInvalidValue:
			return "invalid argument";
		case cudaErrorMemoryAllocation:
			return "out of memory";
		case cudaErrorNoDevice:
			return "no CUDA-capable device is detected";
	}
	return "unknown error";
}

#endif							/* KM_CUDA_EMU_H */
