/*
 * km_cuda_quality.cuh -- the silhouette of a slice of a sample for several labellings at once,
 * distances in float64; labellings with more clusters than shared memory holds go to the CPU.
 *
 * CPU twin: km_silhouette_rows (km_quality.c), as CpuSilhouette calls it (km_cpu.c).  Tested by
 * test/engine/test_cuda.c, RunCase "silhouette of every labelling": the GPU in two slices
 * within 1e-9 of the CPU, NaN in both or neither.
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_seed.cuh.
 */

/*
 * Silhouette of one row per block against the whole sample, for nlab labellings: distances to
 * a tile of sample rows in float64, then per-cluster sums added by one thread per labelling in
 * sample order.  cnt holds the cluster sizes, off the first slot of each labelling.
 */
static __global__ void
silhouette_kernel(const float *x, int64_t s, int d, int metric, const int32_t *labels, int nlab,
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
			/* cosine: 1 - cos of unit rows, |x - y|^2 / 2; IoU: 1 - IoU (km_kernels.h, KmMetric) */
			if (metric == KM_METRIC_IOU)
			{
				double		w1 = xi[0],
							h1 = xi[1],
							w2 = x[j * 2],
							h2 = x[j * 2 + 1];
				double		inter = (w1 < w2 ? w1 : w2) * (h1 < h2 ? h1 : h2);

				dtile[threadIdx.x] = 1.0 - inter / (w1 * h1 + w2 * h2 - inter);
			}
			else
				dtile[threadIdx.x] = metric == KM_METRIC_COSINE ? acc * 0.5 : sqrt(acc);
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
			return km_silhouette_rows(x, s, d, be->metric, labels, nlab, ks, row_begin, row_end,
									  out, err);
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
					  (int) be->metric,
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
