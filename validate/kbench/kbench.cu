// kbench: CUDA kernel measurements for `einsim validate`. Needs only the CUDA toolkit.
//
//   kbench OUTDIR [--quick]      measure; writes OUTDIR/kbench.csv
//   kbench --check OUTDIR        run einsim's attention kernels on small shapes and dump their
//                                inputs and outputs (OUTDIR/attention-*.bin) for the comparison
//                                with einsim's reference executor (tests/validate/kbench_check)
//
// Benchmarks (each a sweep of shapes): cuBLASLt GEMMs in bf16, fp16 and fp8 (where the GPU has
// it), square and the projection shapes of Llama-2-7B and Llama-3-70B for 1..4096 tokens; our
// 1-pass fused attention (FuseMax Cascade 5 / FlashAttention-2's algorithm: a running max,
// denominator and numerator per query, keys in tiles) and a naive 3-pass attention (scores to
// memory, softmax, weighted values) at prefill shapes; decode attention over a KV cache
// (batch x context); HBM copy and triad; pinned host<->device copies. Each time is the median of
// CUDA-event-timed repeats after warm-up; power and SM clock come from nvidia-smi sampled every
// 50 ms while the benchmark is held running for at least 200 ms. The CSV has einsim's kernel
// columns (validate/data/README.md) plus power_w and sm_clock_mhz, after comment lines naming
// the device, driver, clocks, command and date.
//
// Exit status: 0 done; 1 usage or CUDA error; 77 no GPU (the conventional "skipped").
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#if CUDART_VERSION >= 11080
#include <cuda_fp8.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "kbench: %s failed: %s (%s:%d)\n", #x, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

using Clock = std::chrono::steady_clock;

// Power and SM clock samples from `nvidia-smi -lms 50`, read on a thread.
class Sampler {
 public:
  // nvidia-smi runs as our own child, so stopping it touches no other process.
  Sampler() {
    int fd[2];
    if (pipe(fd) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char* argv[] = {const_cast<char*>("nvidia-smi"), const_cast<char*>("--query-gpu=power.draw,clocks.sm"),
                    const_cast<char*>("--format=csv,noheader,nounits"), const_cast<char*>("-i"), const_cast<char*>("0"),
                    const_cast<char*>("-lms"), const_cast<char*>("50"), nullptr};
    const bool spawned = posix_spawnp(&child_, "nvidia-smi", &fa, nullptr, argv, environ) == 0;
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (!spawned) {
      close(fd[0]);
      return;
    }
    pipe_ = fdopen(fd[0], "r");
    if (pipe_) reader_ = std::thread([this] { read(); });
  }
  ~Sampler() {
    stop_ = true;
    if (child_ > 0) {
      kill(child_, SIGTERM);
      waitpid(child_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
    if (pipe_) std::fclose(pipe_);
  }
  // Mean power (W) and SM clock (MHz) of the samples taken in [t0, t1]; NaN when none.
  std::pair<double, double> mean(Clock::time_point t0, Clock::time_point t1) {
    std::lock_guard<std::mutex> g(m_);
    double w = 0, c = 0;
    int n = 0;
    for (const Sample& s : samples_)
      if (s.t >= t0 && s.t <= t1) w += s.watts, c += s.mhz, ++n;
    if (!n) return {NAN, NAN};
    return {w / n, c / n};
  }

 private:
  struct Sample {
    Clock::time_point t;
    double watts, mhz;
  };
  void read() {
    char line[256];
    while (!stop_ && std::fgets(line, sizeof line, pipe_)) {
      double w = 0, c = 0;
      if (std::sscanf(line, "%lf, %lf", &w, &c) == 2) {
        std::lock_guard<std::mutex> g(m_);
        samples_.push_back({Clock::now(), w, c});
      }
    }
  }
  FILE* pipe_ = nullptr;
  pid_t child_ = -1;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::vector<Sample> samples_;
};

struct Row {
  std::string kind, op, dtype;
  long long m = 0, n = 0, k = 0, batch = 0, heads = 0, seq = 0, kv = 0;
  double bytes = 0, flops = 0, median = 0, min = 0;
  int reps = 0;
  double watts = NAN, mhz = NAN;
};

// Times `fn` (which enqueues one kernel or copy on stream 0): warm-up, then `reps` event-timed
// calls; then holds it running for at least `hold_s` while power is sampled.
template <typename F>
void timed(Row& r, Sampler& power, F fn, int reps = 30, double hold_s = 0.2) {
  for (int i = 0; i < 5; ++i) fn();
  CK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  r.median = ms[ms.size() / 2] * 1e-3;
  r.min = ms.front() * 1e-3;
  r.reps = reps;
  const auto t0 = Clock::now();
  const int batch = std::max(1, static_cast<int>(0.02 / std::max(r.median, 1e-7)));
  while (std::chrono::duration<double>(Clock::now() - t0).count() < hold_s) {
    for (int i = 0; i < batch; ++i) fn();
    CK(cudaDeviceSynchronize());
  }
  const auto p = power.mean(t0 + std::chrono::milliseconds(50), Clock::now());
  r.watts = p.first;
  r.mhz = p.second;
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
}

__global__ void fill_kernel(__nv_bfloat16* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u + seed;
    x ^= x >> 13;
    p[i] = __float2bfloat16(static_cast<float>(x % 2001) / 1000.0f - 1.0f);
  }
}

void fill(void* p, size_t bytes, unsigned seed) {
  fill_kernel<<<1024, 256>>>(static_cast<__nv_bfloat16*>(p), bytes / 2, seed);
  CK(cudaGetLastError());
}

// ---------------------------------------------------------------------------------------
// GEMMs: Z[m,n] = A[m,k] B[k,n] with cuBLASLt, fp32 accumulation.

struct Lt {
  cublasLtHandle_t h = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 64u << 20;
  Lt() {
    if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "kbench: cublasLtCreate failed\n");
      std::exit(1);
    }
    CK(cudaMalloc(&workspace, workspace_bytes));
  }
  ~Lt() {
    cudaFree(workspace);
    cublasLtDestroy(h);
  }
};

// Column-major: D'[n,m] = B'[n,k] A'[k,m] computes the row-major Z. fp8 needs A transposed
// (cuBLASLt's TN rule), so the operands are laid out for op(A) = T, op(B) = N throughout.
bool gemm(Lt& lt, Sampler& power, Row& r, cudaDataType_t in, cudaDataType_t out, long long m, long long n, long long k, void* A, void* B,
          void* D) {
  cublasLtMatmulDesc_t op;
  cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  // Rows of the column-major problem: M' = n, N' = m.
  cublasLtMatrixLayout_t la, lb, ld;
  cublasLtMatrixLayoutCreate(&la, in, k, n, k);   // op(A') = T: stored k x n
  cublasLtMatrixLayoutCreate(&lb, in, k, m, k);   // B' stored k x m
  cublasLtMatrixLayoutCreate(&ld, out, n, m, n);  // D' n x m
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt.workspace_bytes, sizeof lt.workspace_bytes);
  cublasLtMatmulHeuristicResult_t best{};
  int found = 0;
  const bool ok = cublasLtMatmulAlgoGetHeuristic(lt.h, op, la, lb, ld, ld, pref, 1, &best, &found) == CUBLAS_STATUS_SUCCESS && found > 0;
  if (ok) {
    const float alpha = 1, beta = 0;
    timed(r, power, [&] {
      cublasLtMatmul(lt.h, op, &alpha, B, la, A, lb, &beta, D, ld, D, ld, &best.algo, lt.workspace, lt.workspace_bytes, 0);
    });
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(op);
  return ok;
}

// ---------------------------------------------------------------------------------------
// Attention, bf16 in and out, fp32 inside. Q [b,h,q,d], K and V [b,h,kv,d], O [b,h,q,d].

constexpr int kD = 128;          // head size the kernels are built for
constexpr int kLanes = kD / 32;  // elements of a row per lane
constexpr int kTile = 64;        // keys per shared-memory tile
constexpr int kWarps = 8;
constexpr int kQPerWarp = 4;     // queries each warp carries through the key loop

__device__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// 1-pass: a CTA takes kWarps x kQPerWarp queries of one (batch, head); key tiles go through
// shared memory; each query keeps its running max (RM), denominator (RD) and numerator (RNV).
__global__ void attention_1pass(const __nv_bfloat16* Q, const __nv_bfloat16* K, const __nv_bfloat16* V, __nv_bfloat16* O, int q_len, int kv_len,
                                float scale) {
  __shared__ __nv_bfloat16 ks[kTile][kD], vs[kTile][kD];
  const int bh = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t qbase = static_cast<size_t>(bh) * q_len * kD, kbase = static_cast<size_t>(bh) * kv_len * kD;
  float q[kQPerWarp][kLanes], acc[kQPerWarp][kLanes], rm[kQPerWarp], rd[kQPerWarp];
  int rows[kQPerWarp];
  for (int j = 0; j < kQPerWarp; ++j) {
    rows[j] = (blockIdx.x * kWarps + warp) * kQPerWarp + j;
    rm[j] = -INFINITY, rd[j] = 0;
    for (int i = 0; i < kLanes; ++i) {
      acc[j][i] = 0;
      q[j][i] = rows[j] < q_len ? __bfloat162float(Q[qbase + static_cast<size_t>(rows[j]) * kD + lane + 32 * i]) * scale : 0.f;
    }
  }
  for (int t0 = 0; t0 < kv_len; t0 += kTile) {
    const int n = min(kTile, kv_len - t0);
    for (int e = threadIdx.x; e < n * kD; e += blockDim.x) {
      ks[e / kD][e % kD] = K[kbase + static_cast<size_t>(t0) * kD + e];
      vs[e / kD][e % kD] = V[kbase + static_cast<size_t>(t0) * kD + e];
    }
    __syncthreads();
    for (int m = 0; m < n; ++m) {
      float kr[kLanes], vr[kLanes];
      for (int i = 0; i < kLanes; ++i) kr[i] = __bfloat162float(ks[m][lane + 32 * i]), vr[i] = __bfloat162float(vs[m][lane + 32 * i]);
      for (int j = 0; j < kQPerWarp; ++j) {
        float s = 0;
        for (int i = 0; i < kLanes; ++i) s += q[j][i] * kr[i];
        s = warp_sum(s);
        const float nm = fmaxf(rm[j], s), prm = __expf(rm[j] - nm), p = __expf(s - nm);
        rd[j] = rd[j] * prm + p;
        for (int i = 0; i < kLanes; ++i) acc[j][i] = acc[j][i] * prm + p * vr[i];
        rm[j] = nm;
      }
    }
    __syncthreads();
  }
  for (int j = 0; j < kQPerWarp; ++j)
    if (rows[j] < q_len)
      for (int i = 0; i < kLanes; ++i) O[qbase + static_cast<size_t>(rows[j]) * kD + lane + 32 * i] = __float2bfloat16(acc[j][i] / rd[j]);
}

// 3-pass, pass 1 and 3 are batched GEMMs (cuBLAS); pass 2: softmax of each score row in place
// (a max pass, an exp-and-sum pass, a divide pass), one CTA per row.
__global__ void softmax_rows(float* S, int cols) {
  float* row = S + static_cast<size_t>(blockIdx.x) * cols;
  __shared__ float red[32];
  float m = -INFINITY;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row[c]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = m;
  __syncthreads();
  m = -INFINITY;
  for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) m = fmaxf(m, red[i]);
  __syncthreads();
  float s = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float e = __expf(row[c] - m);
    row[c] = e;
    s += e;
  }
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = s;
  __syncthreads();
  s = 0;
  for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) s += red[i];
  for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] /= s;
}

__global__ void to_float(const __nv_bfloat16* x, float* y, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = __bfloat162float(x[i]);
}
__global__ void to_bf16(const float* x, __nv_bfloat16* y, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = __float2bfloat16(x[i]);
}

struct ThreePass {
  cublasHandle_t h = nullptr;
  float *qf = nullptr, *kf = nullptr, *vf = nullptr, *s = nullptr, *of = nullptr;
  ThreePass() {
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "kbench: cublasCreate failed\n");
      std::exit(1);
    }
  }
  ~ThreePass() { cublasDestroy(h); }
  // Scores S = Q K^T (fp32, to memory), softmax, O = S V; fp32 GEMMs on converted inputs.
  void run(const __nv_bfloat16* Q, const __nv_bfloat16* K, const __nv_bfloat16* V, __nv_bfloat16* O, int bh, int q_len, int kv_len, float scale) {
    const size_t nq = static_cast<size_t>(bh) * q_len * kD, nk = static_cast<size_t>(bh) * kv_len * kD;
    to_float<<<1024, 256>>>(Q, qf, nq);
    to_float<<<1024, 256>>>(K, kf, nk);
    to_float<<<1024, 256>>>(V, vf, nk);
    const float one = 1, zero = 0;
    // Column-major: S^T[kv, q] = K[kv, d] (as d x kv, transposed) x Q^T[d, q].
    cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, kv_len, q_len, kD, &scale, kf, kD, static_cast<long long>(kv_len) * kD, qf, kD,
                              static_cast<long long>(q_len) * kD, &zero, s, kv_len, static_cast<long long>(q_len) * kv_len, bh);
    softmax_rows<<<bh * q_len, 256>>>(s, kv_len);
    // O^T[d, q] = V^T[d, kv] x P^T[kv, q].
    cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, kD, q_len, kv_len, &one, vf, kD, static_cast<long long>(kv_len) * kD, s, kv_len,
                              static_cast<long long>(q_len) * kv_len, &zero, of, kD, static_cast<long long>(q_len) * kD, bh);
    to_bf16<<<1024, 256>>>(of, O, nq);
  }
};

// Decode: one query per (batch, head); the CTA's warps split the keys and merge their running
// (max, denominator, numerator) at the end.
__global__ void attention_decode(const __nv_bfloat16* Q, const __nv_bfloat16* K, const __nv_bfloat16* V, __nv_bfloat16* O, int kv_len, float scale) {
  const int bh = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t kbase = static_cast<size_t>(bh) * kv_len * kD;
  float q[kLanes], acc[kLanes], rm = -INFINITY, rd = 0;
  for (int i = 0; i < kLanes; ++i) q[i] = __bfloat162float(Q[static_cast<size_t>(bh) * kD + lane + 32 * i]) * scale, acc[i] = 0;
  for (int m = warp; m < kv_len; m += kWarps) {
    float s = 0;
    for (int i = 0; i < kLanes; ++i) s += q[i] * __bfloat162float(K[kbase + static_cast<size_t>(m) * kD + lane + 32 * i]);
    s = warp_sum(s);
    const float nm = fmaxf(rm, s), prm = __expf(rm - nm), p = __expf(s - nm);
    rd = rd * prm + p;
    for (int i = 0; i < kLanes; ++i) acc[i] = acc[i] * prm + p * __bfloat162float(V[kbase + static_cast<size_t>(m) * kD + lane + 32 * i]);
    rm = nm;
  }
  __shared__ float wm[kWarps], wd[kWarps], wacc[kWarps][kD];
  if (lane == 0) wm[warp] = rm, wd[warp] = rd;
  for (int i = 0; i < kLanes; ++i) wacc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  if (warp == 0) {
    float gm = -INFINITY;
    for (int w = 0; w < kWarps; ++w) gm = fmaxf(gm, wm[w]);
    float d = 0, o[kLanes] = {};
    for (int w = 0; w < kWarps; ++w) {
      const float f = wm[w] == -INFINITY ? 0.f : __expf(wm[w] - gm);
      d += wd[w] * f;
      for (int i = 0; i < kLanes; ++i) o[i] += wacc[w][lane + 32 * i] * f;
    }
    for (int i = 0; i < kLanes; ++i) O[static_cast<size_t>(bh) * kD + lane + 32 * i] = __float2bfloat16(o[i] / d);
  }
}

// ---------------------------------------------------------------------------------------
// Memory: copy Z = A and triad Z = A + 2 B over fp32 arrays.

__global__ void copy_kernel(const float4* a, float4* z, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) z[i] = a[i];
}
__global__ void triad_kernel(const float4* a, const float4* b, float4* z, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float4 x = a[i], y = b[i];
    z[i] = make_float4(x.x + 2 * y.x, x.y + 2 * y.y, x.z + 2 * y.z, x.w + 2 * y.w);
  }
}

std::string now_utc() {
  char buf[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void write_csv(const std::string& path, const std::vector<Row>& rows, const std::string& header) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "kbench: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::fputs(header.c_str(), f);
  std::fprintf(f, "kind,op,dtype,m,n,k,batch,heads,seq,kv,bytes,flops,median_s,min_s,reps,power_w,sm_clock_mhz\n");
  for (const Row& r : rows) {
    std::fprintf(f, "%s,%s,%s,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%.0f,%.0f,%.9g,%.9g,%d,", r.kind.c_str(), r.op.c_str(), r.dtype.c_str(), r.m, r.n,
                 r.k, r.batch, r.heads, r.seq, r.kv, r.bytes, r.flops, r.median, r.min, r.reps);
    if (std::isnan(r.watts)) std::fprintf(f, ",\n");
    else std::fprintf(f, "%.1f,%.0f\n", r.watts, r.mhz);
  }
  std::fclose(f);
}

// Small-shape dumps for the comparison with einsim's reference executor: inputs and both
// attention kernels' outputs as float32, row-major, after a one-line text shape header.
int check(const std::string& dir) {
  const int b = 1, h = 2, q_len = 64, kv_len = 128;
  const size_t nq = static_cast<size_t>(b) * h * q_len * kD, nk = static_cast<size_t>(b) * h * kv_len * kD;
  __nv_bfloat16 *Q, *K, *V, *O1, *O3;
  CK(cudaMalloc(&Q, nq * 2));
  CK(cudaMalloc(&K, nk * 2));
  CK(cudaMalloc(&V, nk * 2));
  CK(cudaMalloc(&O1, nq * 2));
  CK(cudaMalloc(&O3, nq * 2));
  fill(Q, nq * 2, 1);
  fill(K, nk * 2, 2);
  fill(V, nk * 2, 3);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));
  attention_1pass<<<dim3((q_len + kWarps * kQPerWarp - 1) / (kWarps * kQPerWarp), b * h), kWarps * 32>>>(Q, K, V, O1, q_len, kv_len, scale);
  CK(cudaGetLastError());
  ThreePass tp;
  CK(cudaMalloc(&tp.qf, nq * 4));
  CK(cudaMalloc(&tp.kf, nk * 4));
  CK(cudaMalloc(&tp.vf, nk * 4));
  CK(cudaMalloc(&tp.of, nq * 4));
  CK(cudaMalloc(&tp.s, static_cast<size_t>(b) * h * q_len * kv_len * 4));
  tp.run(Q, K, V, O3, b * h, q_len, kv_len, scale);
  CK(cudaDeviceSynchronize());
  auto dump = [&](const char* name, const __nv_bfloat16* p, size_t n, int rows) {
    std::vector<__nv_bfloat16> host(n);
    CK(cudaMemcpy(host.data(), p, n * 2, cudaMemcpyDeviceToHost));
    const std::string path = dir + "/attention-" + name + ".bin";
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) {
      std::fprintf(stderr, "kbench: cannot write %s\n", path.c_str());
      std::exit(1);
    }
    std::fprintf(f, "%d %d %d %d\n", b, h, rows, kD);
    for (const __nv_bfloat16& x : host) {
      const float v = __bfloat162float(x);
      std::fwrite(&v, 4, 1, f);
    }
    std::fclose(f);
  };
  dump("q", Q, nq, q_len);
  dump("k", K, nk, kv_len);
  dump("v", V, nk, kv_len);
  dump("out-1pass", O1, nq, q_len);
  dump("out-3pass", O3, nq, q_len);
  std::printf("kbench: attention dumps written to %s\n", dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool checking = !args.empty() && args[0] == "--check";
  if (checking) args.erase(args.begin());
  const bool quick = std::find(args.begin(), args.end(), "--quick") != args.end();
  args.erase(std::remove(args.begin(), args.end(), "--quick"), args.end());
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: kbench OUTDIR [--quick] | kbench --check OUTDIR\n");
    return 1;
  }
  const std::string dir = args[0];
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "kbench: no CUDA GPU available (%s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    return 77;
  }
  if (std::system(("mkdir -p '" + dir + "'").c_str()) != 0) {
    std::fprintf(stderr, "kbench: cannot create %s\n", dir.c_str());
    return 1;
  }
  if (checking) return check(dir);

  cudaDeviceProp p{};
  CK(cudaGetDeviceProperties(&p, 0));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::string header;
  header += "# device: " + std::string(p.name) + "; sm " + std::to_string(p.major) + "." + std::to_string(p.minor) + ", " +
            std::to_string(p.multiProcessorCount) + " SMs, " + std::to_string(p.totalGlobalMem) + " bytes\n";
  header += "# driver " + std::to_string(driver) + ", runtime " + std::to_string(runtime) + "\n";
  header += "# date: " + now_utc() + "\n# command: kbench OUTDIR" + std::string(quick ? " --quick" : "") + "\n";
  {
    FILE* smi = popen("nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>/dev/null", "r");
    char line[512] = {};
    if (smi && std::fgets(line, sizeof line, smi)) header += "# nvidia-smi: " + std::string(line);
    if (smi) pclose(smi);
  }
  Sampler power;
  std::vector<Row> rows;

  // GEMMs.
  Lt lt;
  const size_t max_elems = static_cast<size_t>(8192) * 57344;  // the largest operand: Llama-3-70B gate+up weights
  void *A, *B, *D;
  CK(cudaMalloc(&A, max_elems * 2));
  CK(cudaMalloc(&B, max_elems * 2));
  CK(cudaMalloc(&D, max_elems * 4));
  fill(A, max_elems * 2, 11);
  fill(B, max_elems * 2, 12);
  struct Shape {
    long long m, n, k;
  };
  std::vector<Shape> shapes;
  for (long long s : {512, 1024, 2048, 4096, 8192}) shapes.push_back({s, s, s});
  const std::vector<std::pair<long long, long long>> proj = {
      {4096, 12288}, {4096, 4096}, {4096, 22016}, {11008, 4096},   // Llama-2-7B: QKV, output, gate+up, down
      {8192, 10240}, {8192, 8192}, {8192, 57344}, {28672, 8192}};  // Llama-3-70B
  const std::vector<long long> tokens = quick ? std::vector<long long>{1, 64, 1024} : std::vector<long long>{1, 4, 16, 64, 256, 1024, 4096};
  for (long long t : tokens)
    for (auto [k, n] : proj) shapes.push_back({t, n, k});
  struct Type {
    const char* name;
    cudaDataType_t in, out;
    double bytes;
  };
  std::vector<Type> types = {{"bf16", CUDA_R_16BF, CUDA_R_16BF, 2}, {"fp16", CUDA_R_16F, CUDA_R_16F, 2}};
#if CUDART_VERSION >= 11080
  if (p.major > 8 || (p.major == 8 && p.minor >= 9)) types.push_back({"fp8", CUDA_R_8F_E4M3, CUDA_R_16BF, 1});
#endif
  for (const Type& ty : types)
    for (const Shape& s : shapes) {
      Row r;
      r.kind = "gemm", r.op = "matmul", r.dtype = ty.name, r.m = s.m, r.n = s.n, r.k = s.k;
      r.flops = 2.0 * s.m * s.n * s.k;
      r.bytes = ty.bytes * (s.m * s.k + s.k * s.n) + (ty.out == CUDA_R_16BF || ty.out == CUDA_R_16F ? 2.0 : 4.0) * s.m * s.n;
      if (gemm(lt, power, r, ty.in, ty.out, s.m, s.n, s.k, A, B, D)) rows.push_back(r);
      else std::fprintf(stderr, "kbench: no cuBLASLt algorithm for %s %lldx%lldx%lld; skipped\n", ty.name, s.m, s.n, s.k);
    }
  CK(cudaFree(A));
  CK(cudaFree(B));
  CK(cudaFree(D));
  write_csv(dir + "/kbench.csv", rows, header);  // after each part: a run cut short keeps what it measured

  // Attention, prefill (1-pass and 3-pass) and decode.
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));
  struct Att {
    long long b, h, q, kv;
  };
  const std::vector<Att> prefill = quick ? std::vector<Att>{{1, 32, 1024, 1024}, {1, 32, 4096, 4096}}
                                         : std::vector<Att>{{1, 32, 1024, 1024}, {1, 32, 4096, 4096}, {4, 32, 2048, 2048}, {1, 32, 8192, 8192}};
  const std::vector<Att> decode = quick ? std::vector<Att>{{1, 32, 1, 4096}, {16, 32, 1, 32768}}
                                        : std::vector<Att>{{1, 32, 1, 4096}, {1, 32, 1, 32768}, {16, 32, 1, 4096}, {16, 32, 1, 32768}, {64, 32, 1, 8192}};
  for (const Att& a : prefill) {
    const size_t nq = a.b * a.h * a.q * kD, nk = a.b * a.h * a.kv * kD;
    __nv_bfloat16 *Q, *K, *V, *O;
    CK(cudaMalloc(&Q, nq * 2));
    CK(cudaMalloc(&K, nk * 2));
    CK(cudaMalloc(&V, nk * 2));
    CK(cudaMalloc(&O, nq * 2));
    fill(Q, nq * 2, 21), fill(K, nk * 2, 22), fill(V, nk * 2, 23);
    Row r;
    r.kind = "attention", r.op = "prefill-1pass", r.dtype = "bf16", r.k = kD, r.batch = a.b, r.heads = a.h, r.seq = a.q, r.kv = a.kv;
    r.flops = 4.0 * a.b * a.h * a.q * a.kv * kD;
    r.bytes = 2.0 * (2 * nq + 2 * nk);
    const dim3 grid((a.q + kWarps * kQPerWarp - 1) / (kWarps * kQPerWarp), a.b * a.h);
    timed(r, power, [&] { attention_1pass<<<grid, kWarps * 32>>>(Q, K, V, O, a.q, a.kv, scale); }, 10);
    rows.push_back(r);
    const size_t scores = static_cast<size_t>(a.b * a.h) * a.q * a.kv;
    if (scores * 4 <= (8ull << 30)) {
      ThreePass tp;
      CK(cudaMalloc(&tp.qf, nq * 4));
      CK(cudaMalloc(&tp.kf, nk * 4));
      CK(cudaMalloc(&tp.vf, nk * 4));
      CK(cudaMalloc(&tp.of, nq * 4));
      CK(cudaMalloc(&tp.s, scores * 4));
      Row t = r;
      t.op = "prefill-3pass";
      t.dtype = "fp32";  // its GEMMs and softmax compute in fp32 (SGEMM, no tensor cores)
      t.bytes = r.bytes + 4.0 * scores * 4;  // scores written, read by each softmax pass, read again by the last GEMM
      timed(t, power, [&] { tp.run(Q, K, V, O, static_cast<int>(a.b * a.h), static_cast<int>(a.q), static_cast<int>(a.kv), scale); }, 10);
      rows.push_back(t);
      cudaFree(tp.qf), cudaFree(tp.kf), cudaFree(tp.vf), cudaFree(tp.of), cudaFree(tp.s);
    }
    cudaFree(Q), cudaFree(K), cudaFree(V), cudaFree(O);
  }
  for (const Att& a : decode) {
    const size_t nq = a.b * a.h * kD, nk = a.b * a.h * a.kv * kD;
    __nv_bfloat16 *Q, *K, *V, *O;
    CK(cudaMalloc(&Q, nq * 2));
    CK(cudaMalloc(&K, nk * 2));
    CK(cudaMalloc(&V, nk * 2));
    CK(cudaMalloc(&O, nq * 2));
    fill(Q, nq * 2, 31), fill(K, nk * 2, 32), fill(V, nk * 2, 33);
    Row r;
    r.kind = "attention", r.op = "decode", r.dtype = "bf16", r.k = kD, r.batch = a.b, r.heads = a.h, r.seq = 1, r.kv = a.kv;
    r.flops = 4.0 * a.b * a.h * a.kv * kD;
    r.bytes = 2.0 * (2 * nq + 2 * nk);
    timed(r, power, [&] { attention_decode<<<static_cast<unsigned>(a.b * a.h), kWarps * 32>>>(Q, K, V, O, static_cast<int>(a.kv), scale); });
    rows.push_back(r);
    cudaFree(Q), cudaFree(K), cudaFree(V), cudaFree(O);
  }

  write_csv(dir + "/kbench.csv", rows, header);

  // HBM copy and triad.
  for (size_t mib : {64, 256, 1024, 4096}) {
    const size_t n = mib << 18;  // fp32 elements in `mib` MiB
    float *a, *b, *z;
    CK(cudaMalloc(&a, n * 4));
    CK(cudaMalloc(&b, n * 4));
    CK(cudaMalloc(&z, n * 4));
    CK(cudaMemset(a, 0, n * 4));
    CK(cudaMemset(b, 0, n * 4));
    const int blocks = p.multiProcessorCount * 8;
    Row r;
    r.kind = "memory", r.op = "copy", r.dtype = "fp32", r.m = static_cast<long long>(n), r.bytes = 8.0 * n;
    timed(r, power, [&] { copy_kernel<<<blocks, 256>>>(reinterpret_cast<float4*>(a), reinterpret_cast<float4*>(z), n / 4); });
    rows.push_back(r);
    Row t = r;
    t.op = "triad", t.bytes = 12.0 * n, t.flops = 2.0 * n;
    timed(t, power, [&] {
      triad_kernel<<<blocks, 256>>>(reinterpret_cast<float4*>(a), reinterpret_cast<float4*>(b), reinterpret_cast<float4*>(z), n / 4);
    });
    rows.push_back(t);
    cudaFree(a), cudaFree(b), cudaFree(z);
  }

  write_csv(dir + "/kbench.csv", rows, header);

  // Pinned host <-> device.
  for (size_t mib : {256, 1024}) {
    const size_t n = mib << 20;
    void *host, *dev;
    CK(cudaMallocHost(&host, n));
    CK(cudaMalloc(&dev, n));
    Row r;
    r.kind = "pcie", r.op = "h2d", r.dtype = "u8", r.m = static_cast<long long>(n), r.bytes = static_cast<double>(n);
    timed(r, power, [&] { CK(cudaMemcpyAsync(dev, host, n, cudaMemcpyHostToDevice)); }, 10);
    rows.push_back(r);
    Row t = r;
    t.op = "d2h";
    timed(t, power, [&] { CK(cudaMemcpyAsync(host, dev, n, cudaMemcpyDeviceToHost)); }, 10);
    rows.push_back(t);
    cudaFreeHost(host), cudaFree(dev);
  }

  write_csv(dir + "/kbench.csv", rows, header);
  std::printf("kbench: %zu measurements in %s/kbench.csv\n", rows.size(), dir.c_str());
  return 0;
}
