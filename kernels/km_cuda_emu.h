/*
 * km_cuda_emu.h -- runs km_cuda.cu on the CPU, so that its kernels' logic is tested on every
 * machine, GPU or not.  Only the engine tests use it (km_cuda.cu compiled as C++ with
 * -DKM_CUDA_EMU); the extension itself is built from km_cuda.cu by nvcc, or without it.
 *
 * Execution model.  A launch runs its blocks one after another.  Each thread of a block is a
 * coroutine (ucontext) on one OS thread: it runs until __syncthreads(), where it yields; when
 * every thread of the block has yielded, the round ends and all resume.  (A block whose first
 * thread finishes without a barrier runs the rest as plain calls.)  A block in which some
 * threads return while others wait at a barrier is a kernel bug (a hang or undefined behaviour
 * on a GPU) and stops the test program with a message.  __shared__ variables are function
 * statics: shared by the threads of the running block, as on a GPU, and left with the previous
 * block's contents, as a GPU may leave them.  Device memory is host memory filled with a
 * garbage pattern on allocation, so a kernel that reads what it never wrote fails its test.
 *
 * Streams are queues, as on a GPU: launches, copies and memsets are only enqueued, and they run
 * when the host waits (cudaStreamSynchronize, cudaEventSynchronize, a copy into pageable host
 * memory, cudaFree).  This plays a GPU that is always far behind the host, so a result read
 * before its wait, or a pinned buffer overwritten while a copy from it is still queued, gives
 * wrong numbers in the tests rather than passing by luck.  The rules are CUDA's: a launch's
 * arguments are taken when it is enqueued; a copy from pageable host memory takes its source at
 * once, a copy from pinned memory (cudaMallocHost) when it runs; a copy into pageable memory
 * returns when it is done.  KM_EMU_EAGER=1 runs everything at once instead.
 *
 * Only what km_cuda.cu uses is here: no warp intrinsics, no dynamic shared memory, and the
 * single cuBLAS call (SGEMM) done by a plain loop.
 */
#ifndef KM_CUDA_EMU_H
#define KM_CUDA_EMU_H

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <tuple>
#include <vector>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/* AddressSanitizer's spelling under gcc, and under clang */
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
/* valgrind's client requests, where its header is installed (they cost nothing without it) */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define EMU_VALGRIND 1
#endif
#endif

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
	void	   *fake_stack;		/* ASan's, kept while the thread waits at a barrier */
} EmuThread;

static ucontext_t emu_main;
static EmuThread emu_threads[EMU_MAX_THREADS];
static int	emu_cur;
static std::function<void()> *emu_body;

/*
 * AddressSanitizer follows the switches between stacks through its fiber interface (declared
 * in <sanitizer/common_interface_defs.h>): a switch starts with the stack it goes to and ends,
 * on that stack, with the fake stack (detect_stack_use_after_return) this context left behind.
 * Unannounced, a thread's stack is to ASan the heap block it was allocated as, and its
 * no-return handling and fake stacks go by the wrong stack.  The stack emu_launch runs on is
 * learnt from the switches into the threads.  Without ASan these do nothing.  (ASan still
 * prints, once, that it does not fully support swapcontext: its interceptor cannot know that
 * the switches are announced.)
 */
static const void *emu_main_stack;
static size_t emu_main_stack_size;
static void *emu_main_fake_stack;

/* Announces a switch to the stack [bottom, bottom + size); save NULL: this context ends. */
static inline void
emu_switch_start(void **save, const void *bottom, size_t size)
{
#ifdef EMU_ASAN
	__sanitizer_start_switch_fiber(save, bottom, size);
#else
	(void) save;
	(void) bottom;
	(void) size;
#endif
}

/* Completes a switch on the new stack; from_* receive the stack left, when wanted. */
static inline void
emu_switch_finish(void *fake_stack, const void **from, size_t *from_size)
{
#ifdef EMU_ASAN
	__sanitizer_finish_switch_fiber(fake_stack, from, from_size);
#else
	(void) fake_stack;
	(void) from;
	(void) from_size;
#endif
}

/* The first frame of every thread: the kernel body, then back to emu_launch for good. */
static void
emu_entry(void)
{
	emu_switch_finish(NULL, &emu_main_stack, &emu_main_stack_size);
	(*emu_body)();
	emu_threads[emu_cur].done = 1;
	/* this context is never resumed: ASan may drop its fake stack */
	emu_switch_start(NULL, emu_main_stack, emu_main_stack_size);
	swapcontext(&emu_threads[emu_cur].ctx, &emu_main);
}

/* Set while a block runs its threads as plain calls (see emu_launch): no barrier may come. */
static int	emu_direct;

/* A barrier: back to emu_launch, which resumes this thread once every other has come. */
static inline void
__syncthreads(void)
{
	if (emu_direct)
	{
		fprintf(stderr, "emu: block (%u,%u,%u): thread %d reached __syncthreads, which thread 0 never did\n",
				blockIdx.x, blockIdx.y, blockIdx.z, emu_cur);
		abort();
	}
	{
		EmuThread  *th = &emu_threads[emu_cur];

		emu_switch_start(&th->fake_stack, emu_main_stack, emu_main_stack_size);
		swapcontext(&th->ctx, &emu_main);
		emu_switch_finish(th->fake_stack, &emu_main_stack, &emu_main_stack_size);
	}
}

/* Makes thread t ready to run the kernel body from its start. */
static void
emu_thread_start(unsigned t)
{
	EmuThread  *th = &emu_threads[t];

	if (th->stack == NULL)
	{
		if ((th->stack = (char *) malloc(EMU_STACK)) == NULL)
			abort();
#ifdef EMU_VALGRIND
		/* a stack, for valgrind, which would take each switch to it for a huge frame */
		VALGRIND_STACK_REGISTER(th->stack, th->stack + EMU_STACK);
#endif
	}
	getcontext(&th->ctx);
	th->ctx.uc_stack.ss_sp = th->stack;
	th->ctx.uc_stack.ss_size = EMU_STACK;
	th->ctx.uc_link = NULL;
	th->done = 0;
	th->fake_stack = NULL;
	makecontext(&th->ctx, emu_entry, 0);
#ifdef EMU_ASAN

	/*
	 * makecontext has taken the stack; nothing reads uc_stack after it but ASan's swapcontext
	 * interceptor, which clears the shadow of the stack named there on every switch: its
	 * fallback for coroutines that do not announce their switches.  These do, and the
	 * clearing would erase the redzones of every frame waiting at a barrier (an overflow
	 * after the barrier would go unseen) and take half the run time.
	 */
	th->ctx.uc_stack.ss_sp = NULL;
	th->ctx.uc_stack.ss_size = 0;
#endif
}

/* Runs thread t until its next barrier, or its end. */
static void
emu_thread_run(unsigned t, dim3 block)
{
	EmuThread  *th = &emu_threads[t];

	emu_cur = (int) t;
	threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
	emu_switch_start(&emu_main_fake_stack, th->stack, EMU_STACK);
	swapcontext(&emu_main, &th->ctx);
	emu_switch_finish(emu_main_fake_stack, NULL, NULL);
}

/*
 * Runs body once per thread of every block of grid.  Thread 0 of a block runs first, as a
 * coroutine; when it returns without reaching a barrier, the block has none (barriers must be
 * reached by all threads or none), and the other threads run as plain calls, which is much
 * faster than switching stacks.  Otherwise all threads run in rounds from barrier to barrier.
 */
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
				unsigned	start = 1,
							ended = 0;

				blockIdx = dim3(bx, by, bz);
				emu_thread_start(0);
				emu_thread_run(0, block);
				if (emu_threads[0].done)
				{
					emu_direct = 1;
					for (unsigned t = 1; t < nt; t++)
					{
						emu_cur = (int) t;
						threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
						body();
					}
					emu_direct = 0;
					continue;
				}
				for (unsigned t = 1; t < nt; t++)
					emu_thread_start(t);
				for (;;)
				{
					for (unsigned t = start; t < nt; t++)
					{
						emu_thread_run(t, block);
						if (emu_threads[t].done)
							ended++;
					}
					if (ended != 0 && ended != nt)
					{
						fprintf(stderr, "emu: block (%u,%u,%u): %u of %u threads returned while the others wait at __syncthreads\n",
								bx, by, bz, ended, nt);
						abort();
					}
					if (ended == nt)
						break;
					start = 0;
					ended = 0;
				}
			}
	emu_body = NULL;
}

/* ---- streams ----------------------------------------------------------------------------- */

typedef struct EmuStream
{
	std::deque<std::function<void()>> queue;
	uint64_t	enqueued;		/* operations ever enqueued */
	uint64_t	done;			/* of which have run */
} EmuStream;

typedef EmuStream *cudaStream_t;

static std::set<EmuStream *> emu_streams;

static int
emu_eager(void)
{
	static int	eager = -1;

	if (eager < 0)
		eager = getenv("KM_EMU_EAGER") != NULL && strcmp(getenv("KM_EMU_EAGER"), "0") != 0;
	return eager;
}

/* Runs the stream's operations up to number upto (all of them with UINT64_MAX). */
static void
emu_run(EmuStream *s, uint64_t upto)
{
	while (s->done < upto && !s->queue.empty())
	{
		std::function<void()> op = std::move(s->queue.front());

		s->queue.pop_front();
		op();
		s->done++;
	}
}

/* What cudaFree and cudaFreeHost imply: every stream has finished. */
static void
emu_run_all(void)
{
	for (EmuStream *s : emu_streams)
		emu_run(s, UINT64_MAX);
}

static void
emu_enqueue(EmuStream *s, std::function<void()> op)
{
	s->enqueued++;
	if (emu_eager())
	{
		op();
		s->done++;
		return;
	}
	s->queue.push_back(std::move(op));
}

/* A launch: the arguments converted to the kernel's parameter types now, the kernel run later. */
template <typename... P, typename... A>
static void
emu_kernel(cudaStream_t s, dim3 grid, dim3 block, void (*kernel) (P...), A... args)
{
	std::tuple<typename std::decay<P>::type...> params(static_cast<P>(args)...);

	emu_enqueue(s, [=]() {
		emu_launch(grid, block, [&]() { std::apply(kernel, params); });
	});
}

#define KM_LAUNCH(kernel, grid, block, stream, ...) \
	emu_kernel((stream), dim3(grid), dim3(block), kernel, __VA_ARGS__)

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

/* Single float operations, rounded to nearest and never contracted: the CPU's own. */
static inline float
__fmul_rn(float a, float b)
{
	return a * b;
}

static inline float
__fsub_rn(float a, float b)
{
	return a - b;
}

static inline float
__fdiv_rn(float a, float b)
{
	return a / b;
}

/* The same in float64: each rounded once, and the fused one fused (DTW, km_cuda_series.cuh). */
static inline double
__dadd_rn(double a, double b)
{
	return a + b;
}

static inline double
__dsub_rn(double a, double b)
{
	return a - b;
}

static inline double
__dmul_rn(double a, double b)
{
	return a * b;
}

static inline double
__fma_rn(double a, double b, double c)
{
	return fma(a, b, c);
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

/* Pinned host allocations (cudaMallocHost): start address -> size. */
static std::map<const char *, size_t> emu_pinned;

/* Device allocations and events alive, so that the tests can see that nothing leaks. */
static std::map<void *, size_t> emu_device;
static long emu_events;

extern "C" size_t
km_cuda_emu_live(void)
{
	return emu_device.size() + emu_pinned.size() + (size_t) emu_events;
}

static int
emu_is_pinned(const void *p, size_t bytes)
{
	const char *c = (const char *) p;
	auto		it = emu_pinned.upper_bound(c);

	if (it == emu_pinned.begin())
		return 0;
	--it;
	return c + bytes <= it->first + it->second;
}

static inline cudaError_t
cudaMalloc(void **p, size_t bytes)
{
	*p = malloc(bytes ? bytes : 1);
	if (*p == NULL)
		return cudaErrorMemoryAllocation;
	memset(*p, 0xA5, bytes);
	emu_device[*p] = bytes;
	return cudaSuccess;
}

static inline cudaError_t
cudaFree(void *p)
{
	emu_run_all();
	if (p != NULL && emu_device.erase(p) == 0)
	{
		fprintf(stderr, "emu: cudaFree of %p, which cudaMalloc did not return\n", p);
		abort();
	}
	free(p);
	return cudaSuccess;
}

static inline cudaError_t
cudaMallocHost(void **p, size_t bytes)
{
	/* KM_EMU_NO_PINNED=1 plays a host that refuses to pin memory */
	if (getenv("KM_EMU_NO_PINNED"))
	{
		*p = NULL;
		return cudaErrorMemoryAllocation;
	}
	*p = malloc(bytes ? bytes : 1);
	if (*p == NULL)
		return cudaErrorMemoryAllocation;
	memset(*p, 0x5A, bytes);
	emu_pinned[(const char *) *p] = bytes ? bytes : 1;
	return cudaSuccess;
}

static inline cudaError_t
cudaFreeHost(void *p)
{
	emu_run_all();
	emu_pinned.erase((const char *) p);
	free(p);
	return cudaSuccess;
}

static inline cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
	if (bytes == 0)
		return cudaSuccess;
	if (kind == cudaMemcpyHostToDevice && !emu_is_pinned(src, bytes))
	{
		/* pageable: the driver stages the source before the call returns */
		std::vector<char> copy((const char *) src, (const char *) src + bytes);

		emu_enqueue(s, [=]() { memcpy(dst, copy.data(), bytes); });
		return cudaSuccess;
	}
	emu_enqueue(s, [=]() { memcpy(dst, src, bytes); });
	if (kind == cudaMemcpyDeviceToHost && !emu_is_pinned(dst, bytes))
		emu_run(s, s->enqueued);	/* pageable: returns once the copy is done */
	return cudaSuccess;
}

static inline cudaError_t
cudaMemsetAsync(void *dst, int v, size_t bytes, cudaStream_t s)
{
	emu_enqueue(s, [=]() { memset(dst, v, bytes); });
	return cudaSuccess;
}

static inline cudaError_t
cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	(void) flags;
	*s = new EmuStream();
	(*s)->enqueued = (*s)->done = 0;
	emu_streams.insert(*s);
	return cudaSuccess;
}

#define cudaStreamNonBlocking 1

static inline cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
	emu_run(s, UINT64_MAX);
	emu_streams.erase(s);
	delete s;
	return cudaSuccess;
}

static inline cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
	emu_run(s, UINT64_MAX);
	return cudaSuccess;
}

/* An event marks a point in one stream; waiting for it runs the stream up to there. */
typedef struct EmuEvent
{
	EmuStream  *stream;
	uint64_t	at;
} EmuEvent;

typedef EmuEvent *cudaEvent_t;

#define cudaEventDisableTiming 2

static inline cudaError_t
cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
	(void) flags;
	*e = new EmuEvent();
	(*e)->stream = NULL;
	(*e)->at = 0;
	emu_events++;
	return cudaSuccess;
}

static inline cudaError_t
cudaEventDestroy(cudaEvent_t e)
{
	delete e;
	emu_events--;
	return cudaSuccess;
}

static inline cudaError_t
cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	e->stream = s;
	e->at = s->enqueued;
	return cudaSuccess;
}

static inline cudaError_t
cudaEventSynchronize(cudaEvent_t e)
{
	/* an event never recorded counts as done, as in CUDA */
	if (e->stream != NULL && emu_streams.count(e->stream))
		emu_run(e->stream, e->at);
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
