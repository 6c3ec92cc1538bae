/*
 * km_cuda_backend.cuh -- the backend as the engine sees it: its operation table, the entry
 * points of km_kernels.h (km_cuda_built, km_cuda_probe, km_cuda_backend_create) and the
 * teardown that releases every buffer, event and handle; CUDA and cuBLAS started with every
 * signal blocked (see km_cuda.cu, Threads).
 *
 * CPU twin: km_cpu_backend_create, CpuDestroy, CpuOps and CpuSteps (km_cpu.c).  Tested by
 * test/engine/test_cuda.c: main (probe, or a clean skip without a device; under the emulator,
 * no device memory, pinned buffer or event left once every backend is destroyed) and
 * RunOnBackends (fresh backends per case).
 *
 * Part of km_cuda.cu's unity build, included last.
 */

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

static void
CudaDestroy(KmBackend *be)
{
	CudaBackend *cb = (CudaBackend *) be;
	DevBuf	   *bufs[] = {&cb->dc, &cb->dcnorm, &cb->dseg_off, &cb->stage_x[0], &cb->stage_x[1],
		&cb->stage_norm[0], &cb->stage_norm[1], &cb->st_labels, &cb->st_dist, &cb->pass_acc,
		&cb->pass_segs, &cb->seed_mind, &cb->labels, &cb->dist, &cb->scores, &cb->acc, &cb->dmax, &cb->mind,
	&cb->cand, &cb->run_sums, &cb->order, &cb->cursor, &cb->sil, &cb->series};

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
	km_host_state_free(&cb->host);
	free(cb->seg_off);
	free(cb->host_acc);
	free(cb);
}

static const KmBackendOps CudaOps = {
	"gpu",
	CudaDestroy,
	CudaBlockCreate,
	CudaBatchCreate,
	CudaBlockDestroy,
	km_backend_set_metric,
	CudaSetCenters,
	CudaPassBegin,
	CudaPassBlock,
	CudaPassEnd,
	CudaStateFetch,
	CudaSeedBegin,
	CudaSeedUpdate,
	CudaSeedPotentials,
	CudaSeedFetch,
	CudaSilhouette,
	CudaSeriesAssign,
};

static const KmStepOps CudaSteps = {
	CudaAssign,
	CudaAccumulate,
	CudaAssignAccumulate,
	CudaMindistUpdate,
	CudaPotentials,
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
	cb->base.steps = &CudaSteps;
	cb->base.d = d;
	cb->base.metric = KM_METRIC_EUCLIDEAN;
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
