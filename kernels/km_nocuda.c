/*
 * km_nocuda.c -- the GPU backend's entry points in a build without CUDA (no nvcc, or
 * USE_CUDA=0): every call says that this build has no GPU backend.
 */
#include "km_kernels.h"

int
km_cuda_built(void)
{
	return 0;
}

KmStatus
km_cuda_probe(int device, char *desc, size_t desclen, KmError *err)
{
	(void) device;
	if (desc != NULL && desclen > 0)
		desc[0] = '\0';
	return KM_FAIL(err, KM_ERR_NO_DEVICE, "this build of kmeans has no GPU backend (it was built without nvcc)");
}

KmStatus
km_cuda_backend_create(int device, int d, size_t memory_limit, KmBackend **be, KmError *err)
{
	(void) d;
	(void) memory_limit;
	*be = NULL;
	return km_cuda_probe(device, NULL, 0, err);
}
