// Prints the properties of each visible GPU as CSV, the header that every einsim measurement
// file carries (device, clocks, memory). Exits 1 with a clear message where no GPU is present.
#include <cuda_runtime.h>

#include <cstdio>

int main() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    std::fprintf(stderr, "einsim-gpuinfo: no CUDA GPU available (%s)\n",
                 err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    return 1;
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("index,name,sm_major,sm_minor,sms,memory_bytes,l2_bytes,smem_per_sm_bytes,bus_width_bits,driver,runtime\n");
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    std::printf("%d,%s,%d,%d,%d,%zu,%d,%zu,%d,%d,%d\n", i, p.name, p.major, p.minor, p.multiProcessorCount,
                p.totalGlobalMem, p.l2CacheSize, p.sharedMemPerMultiprocessor, p.memoryBusWidth, driver, runtime);
  }
  return 0;
}
