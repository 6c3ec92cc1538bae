/*
 * km_cuda_blas.cuh -- cuBLAS, loaded when first needed (dlopen) so that the extension loads
 * where it is absent; under KM_CUDA_EMU a plain loop in double plays its one call, SGEMM.
 *
 * CPU twin: the packed GEMM of km_gemm.c (km_gemm_argmin), which the large-d assignment's
 * scores mirror.  Tested by test/engine/test_cuda.c, RunCase: the "gemm" and "wide" cases
 * (km_use_gemm true) against the CPU backend's labels and distances.
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_private.cuh.
 */

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
