// The kernels SE-CNN and its peers are made of, for GPGPU-Sim (PTX mode, no GPU needed).
//
// Each run of this program launches ONE kernel set, described by a case file, and prints
// `SECNN_CASE <name> ok` once the results are checked against a host reference. GPGPU-Sim
// prints the simulated cycles of every kernel; experiments.gpgpusim reads them.
//
// Layers are 1x1 convolutions (GEMMs): input x [M, K] (positions x input channels), weights
// W [K, N], output y [M, N]. The event codes of every input neuron ([M, K] uint8: 0 ZZ, 1 ZN,
// 2 VH, 3 VM, as secnn_jax.events) come from real traces; values are synthesised from them
// (non-zero where the neuron fires, a prediction that equals the value on a hit).
//
// Kernel classes (the timing model's names in brackets):
//   dense_simt    a tiled SIMT GEMM, every input used                       [dense on SIMT]
//   zero_skip     the same kernel whose lanes skip zero inputs               [zero_skip]
//   compare       real vs predicted per neuron, writes codes and the update [secnn compare]
//   compact       stream compaction of mispredicted inputs (atomic slots)    [compaction]
//   amend         y += W^T delta over mispredicted inputs (gathered, lanes   [amendment]
//                 skip predicted-right inputs), read-modify-write of y
//   detect        DeltaCNN change detection: |x - acc| > tau -> delta, acc   [deltacnn detect]
//   parallel_N    N independent zero_skip layers on N streams                [parallel phase]
//   serial_N      the same N layers in one stream                            [serial chain]
//
// Pointers are deliberately not __restrict__: the read-only loads (ld.global.nc) that it
// enables deadlock GPGPU-Sim's memory pipeline (dev branch, PTX mode).
//
// Tile of the GEMM kernels: BM positions x BN output channels per CTA, one thread per position
// holding BN accumulators, K consumed in steps of BK staged through shared memory.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <cmath>
#include <vector>
#include <string>

#define BM 128
#define BN 16
#define BK 16
#define EW_THREADS 256
#define EW_PER_THREAD 4

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
  exit(2); } } while (0)

// y[m, n] (+)= sum_k x[m, k] W[k, n]; with skip, a lane skips x[m, k] == 0 (its own row).
__global__ void gemm_1x1(const float* x, const float* w,
                         float* y, int M, int K, int N, int skip, int accumulate) {
  __shared__ float xs[BM][BK + 1];
  __shared__ __align__(16) float ws[BK][BN];
  int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN, t = threadIdx.x;
  int m = m0 + t;
  float acc[BN];
#pragma unroll
  for (int j = 0; j < BN; ++j) acc[j] = 0.f;
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = t; i < BM * BK; i += BM) {  // coalesced over k
      int r = i / BK, c = i % BK;
      xs[r][c] = (m0 + r < M && k0 + c < K) ? x[(size_t)(m0 + r) * K + k0 + c] : 0.f;
    }
    for (int i = t; i < BK * BN; i += BM) {
      int r = i / BN, c = i % BN;
      ws[r][c] = (k0 + r < K && n0 + c < N) ? w[(size_t)(k0 + r) * N + n0 + c] : 0.f;
    }
    __syncthreads();
    for (int kk = 0; kk < BK; ++kk) {
      float v = xs[t][kk];
      if (skip && v == 0.f) continue;
      // The weight row as four 16-byte shared loads issued before the FMAs: GPGPU-Sim runs the
      // PTX as written (no ptxas scheduling), so the kernel is written the way ptxas would
      // emit it (LDS.128 hoisted above the FFMAs).
      const float4* wr = reinterpret_cast<const float4*>(&ws[kk][0]);
      float4 w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3];
      acc[0] += v * w0.x; acc[1] += v * w0.y; acc[2] += v * w0.z; acc[3] += v * w0.w;
      acc[4] += v * w1.x; acc[5] += v * w1.y; acc[6] += v * w1.z; acc[7] += v * w1.w;
      acc[8] += v * w2.x; acc[9] += v * w2.y; acc[10] += v * w2.z; acc[11] += v * w2.w;
      acc[12] += v * w3.x; acc[13] += v * w3.y; acc[14] += v * w3.z; acc[15] += v * w3.w;
    }
    __syncthreads();
  }
  if (m < M) {
#pragma unroll
    for (int j = 0; j < BN; ++j) {
      if (n0 + j < N) {
        size_t o = (size_t)m * N + n0 + j;
        y[o] = accumulate ? y[o] + acc[j] : acc[j];
      }
    }
  }
}

// codes[i] from real x and prediction p (tau = 0), p <- x (last-value update); delta = x - p_old.
__global__ void compare(const float* x, float* p,
                        uint8_t* codes, float* delta, int n) {
  int base = (blockIdx.x * EW_THREADS) * EW_PER_THREAD + threadIdx.x;
#pragma unroll
  for (int e = 0; e < EW_PER_THREAD; ++e) {
    int i = base + e * EW_THREADS;
    if (i < n) {
      float xv = x[i], pv = p[i];
      bool miss = xv > pv || xv < pv;  // secnn_jax.events.missed at tau = 0
      uint8_t c = pv == 0.f ? (xv == 0.f ? 0 : 1) : (miss ? 3 : 2);
      codes[i] = c;
      delta[i] = miss ? xv - pv : 0.f;
      p[i] = xv;
    }
  }
}

// Indices of mispredicted inputs (codes 1 or 3): one atomic per CTA reserves its slots.
__global__ void compact(const uint8_t* codes, int* idx,
                        int* count, int n) {
  __shared__ int warp_sums[EW_THREADS / 32];
  __shared__ int cta_base;
  int i = blockIdx.x * EW_THREADS + threadIdx.x;
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  bool miss = i < n && (codes[i] & 1);
  unsigned ballot = __ballot_sync(0xffffffffu, miss);
  int rank = __popc(ballot & ((1u << lane) - 1));
  if (lane == 0) warp_sums[wid] = __popc(ballot);
  __syncthreads();
  if (threadIdx.x == 0) {
    int s = 0;
    for (int q = 0; q < EW_THREADS / 32; ++q) { int v = warp_sums[q]; warp_sums[q] = s; s += v; }
    cta_base = atomicAdd(count, s);
  }
  __syncthreads();
  if (miss) idx[cta_base + warp_sums[wid] + rank] = i;
}

// DeltaCNN-style detection: delta = x - acc where |x - acc| > tau (then acc <- x), else 0.
__global__ void detect(const float* x, float* acc,
                       float* delta, int n, float tau) {
  int base = (blockIdx.x * EW_THREADS) * EW_PER_THREAD + threadIdx.x;
#pragma unroll
  for (int e = 0; e < EW_PER_THREAD; ++e) {
    int i = base + e * EW_THREADS;
    if (i < n) {
      float xv = x[i], av = acc[i];
      bool fire = xv > av + tau || xv < av - tau;
      delta[i] = fire ? xv - av : 0.f;
      if (fire) acc[i] = xv;
    }
  }
}

struct Layer { int M, K, N; std::vector<uint8_t> codes; };

static bool read_layer(const std::string& path, Layer* L) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return false;
  int32_t hdr[3];
  if (fread(hdr, 4, 3, f) != 3) { fclose(f); return false; }
  L->M = hdr[0]; L->K = hdr[1]; L->N = hdr[2];
  L->codes.resize((size_t)L->M * L->K);
  size_t got = fread(L->codes.data(), 1, L->codes.size(), f);
  fclose(f);
  return got == L->codes.size();
}

// Values from codes: fires (ZN, VH, VM) -> non-zero x; prediction = x on VH, 0 on ZZ/ZN,
// x + 0.5 on VM (a value miss).
static void synth(const Layer& L, std::vector<float>* x, std::vector<float>* p) {
  size_t n = L.codes.size();
  x->assign(n, 0.f); p->assign(n, 0.f);
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = L.codes[i];
    float v = 0.25f + (float)((i * 2654435761u) % 1000) / 1000.f;
    if (c == 1 || c == 2 || c == 3) (*x)[i] = v;
    if (c == 2) (*p)[i] = v;
    if (c == 3) (*p)[i] = v + 0.5f;
  }
}

static std::vector<float> weights(int K, int N) {
  std::vector<float> w((size_t)K * N);
  for (size_t i = 0; i < w.size(); ++i) w[i] = (float)((i * 40503u) % 97) / 97.f - 0.5f;
  return w;
}

static float* dev(const std::vector<float>& h) {
  float* d; CHECK(cudaMalloc(&d, h.size() * 4 + 4));
  CHECK(cudaMemcpy(d, h.data(), h.size() * 4, cudaMemcpyHostToDevice)); return d;
}

static bool close(float a, float b) { return fabsf(a - b) <= 1e-3f * (1.f + fabsf(b)); }

// Host reference of y = x W (or y0 + delta W) for checking.
static std::vector<float> ref_gemm(const std::vector<float>& x, const std::vector<float>& w,
                                   int M, int K, int N) {
  std::vector<float> y((size_t)M * N, 0.f);
  for (int m = 0; m < M; ++m) for (int k = 0; k < K; ++k) {
    float v = x[(size_t)m * K + k]; if (v == 0.f) continue;
    for (int n = 0; n < N; ++n) y[(size_t)m * N + n] += v * w[(size_t)k * N + n];
  }
  return y;
}

static bool check(const float* d, const std::vector<float>& ref) {
  std::vector<float> h(ref.size());
  CHECK(cudaMemcpy(h.data(), d, h.size() * 4, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < h.size(); ++i) if (!close(h[i], ref[i])) {
    fprintf(stderr, "mismatch at %zu: %g vs %g\n", i, h[i], ref[i]); return false; }
  return true;
}

static dim3 gemm_grid(const Layer& L) { return dim3((L.M + BM - 1) / BM, (L.N + BN - 1) / BN); }
static int ew_ctas(size_t n) { return (int)((n + EW_THREADS * EW_PER_THREAD - 1) / (EW_THREADS * EW_PER_THREAD)); }

int main(int argc, char** argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s CLASS LAYER_FILE [LAYER_FILE...]\n", argv[0]); return 1; }
  std::string cls = argv[1];
  std::vector<Layer> Ls(argc - 2);
  for (int i = 2; i < argc; ++i)
    if (!read_layer(argv[i], &Ls[i - 2])) { fprintf(stderr, "cannot read %s\n", argv[i]); return 1; }
  const Layer& L = Ls[0];
  size_t n = L.codes.size();
  std::vector<float> x, p; synth(L, &x, &p);
  std::vector<float> w = weights(L.K, L.N);
  bool ok = true;
  if (cls == "dense_simt" || cls == "zero_skip") {
    float *dx = dev(x), *dw = dev(w), *dy;
    CHECK(cudaMalloc(&dy, (size_t)L.M * L.N * 4));
    gemm_1x1<<<gemm_grid(L), BM>>>(dx, dw, dy, L.M, L.K, L.N, cls == "zero_skip", 0);
    CHECK(cudaDeviceSynchronize());
    ok = check(dy, ref_gemm(x, w, L.M, L.K, L.N));
  } else if (cls == "amend") {
    std::vector<float> delta(n, 0.f);
    for (size_t i = 0; i < n; ++i) if (L.codes[i] & 1) delta[i] = x[i] - p[i];
    std::vector<float> y0 = ref_gemm(p, w, L.M, L.K, L.N);
    float *dd = dev(delta), *dw = dev(w), *dy = dev(y0);
    gemm_1x1<<<gemm_grid(L), BM>>>(dd, dw, dy, L.M, L.K, L.N, 1, 1);
    CHECK(cudaDeviceSynchronize());
    ok = check(dy, ref_gemm(x, w, L.M, L.K, L.N));
  } else if (cls == "compare") {
    float *dx = dev(x), *dp = dev(p), *dd; uint8_t* dc;
    CHECK(cudaMalloc(&dd, n * 4)); CHECK(cudaMalloc(&dc, n));
    compare<<<ew_ctas(n), EW_THREADS>>>(dx, dp, dc, dd, (int)n);
    CHECK(cudaDeviceSynchronize());
    std::vector<uint8_t> hc(n); CHECK(cudaMemcpy(hc.data(), dc, n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n && ok; ++i) ok = hc[i] == L.codes[i];
  } else if (cls == "compact") {
    uint8_t* dc; int *di, *dn;
    CHECK(cudaMalloc(&dc, n)); CHECK(cudaMalloc(&di, n * 4 + 4)); CHECK(cudaMalloc(&dn, 4));
    CHECK(cudaMemcpy(dc, L.codes.data(), n, cudaMemcpyHostToDevice)); CHECK(cudaMemset(dn, 0, 4));
    compact<<<(int)((n + EW_THREADS - 1) / EW_THREADS), EW_THREADS>>>(dc, di, dn, (int)n);
    CHECK(cudaDeviceSynchronize());
    int hn; CHECK(cudaMemcpy(&hn, dn, 4, cudaMemcpyDeviceToHost));
    size_t want = 0; for (size_t i = 0; i < n; ++i) want += L.codes[i] & 1;
    ok = (size_t)hn == want;
  } else if (cls == "detect") {
    // acc = the prediction (DeltaCNN's accumulated input), tau = 0.
    float *dx = dev(x), *da = dev(p), *dd; CHECK(cudaMalloc(&dd, n * 4));
    detect<<<ew_ctas(n), EW_THREADS>>>(dx, da, dd, (int)n, 0.f);
    CHECK(cudaDeviceSynchronize());
    std::vector<float> hd(n); CHECK(cudaMemcpy(hd.data(), dd, n * 4, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n && ok; ++i) ok = (hd[i] != 0.f) == ((L.codes[i] & 1) != 0);
  } else if (cls == "parallel" || cls == "serial") {
    int N = (int)Ls.size();
    std::vector<cudaStream_t> st(N);
    std::vector<float*> dx(N), dw(N), dy(N);
    std::vector<std::vector<float>> xs(N), ws(N);
    for (int i = 0; i < N; ++i) {
      std::vector<float> pi; synth(Ls[i], &xs[i], &pi); ws[i] = weights(Ls[i].K, Ls[i].N);
      dx[i] = dev(xs[i]); dw[i] = dev(ws[i]);
      CHECK(cudaMalloc(&dy[i], (size_t)Ls[i].M * Ls[i].N * 4));
      CHECK(cudaStreamCreate(&st[i]));
    }
    for (int i = 0; i < N; ++i)
      gemm_1x1<<<gemm_grid(Ls[i]), BM, 0, cls == "parallel" ? st[i] : st[0]>>>(
          dx[i], dw[i], dy[i], Ls[i].M, Ls[i].K, Ls[i].N, 1, 0);
    CHECK(cudaDeviceSynchronize());
    for (int i = 0; i < N && ok; ++i) ok = check(dy[i], ref_gemm(xs[i], ws[i], Ls[i].M, Ls[i].K, Ls[i].N));
  } else {
    fprintf(stderr, "unknown class %s\n", cls.c_str()); return 1;
  }
  printf("SECNN_CASE %s %s\n", cls.c_str(), ok ? "ok" : "WRONG");
  return ok ? 0 : 3;
}
