// The machine's fp32 FMA peak: every core runs a loop of independent fused multiply-adds on the
// widest vectors it has (AVX-512 or AVX2), enough accumulators to hide the FMA latency, no memory
// traffic. Prints one JSON line for bench/run:
//   {"limit": "fma_peak", "gflops": ..., "isa": "avx2", "threads": 2, "seconds": ...}
//   convgen_peak [--seconds S] [--threads N]
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr long chunk = 1 << 20;  // FMA steps between looks at the clock

// Returns the FMAs done (per lane). Twelve accumulators: two FMA ports of latency 4-5 need 8-10
// in flight.
__attribute__((target("avx2,fma"))) long fma_loop_avx2(double seconds, float* sink) {
    __m256 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(1.0f + 1e-7f * static_cast<float>(i));
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    long steps = 0;
    const auto start = std::chrono::steady_clock::now();
    do {
        for (long s = 0; s < chunk; s++) {
            // Unrolled whole, so the accumulators live in registers. Left as a loop, GCC interchanged it
            // with the step loop and kept them in memory, a chain of dependent FMAs per store.
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
        }
        steps += chunk;
    } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds);
    __m256 sum = a[0];
    for (int i = 1; i < 12; i++) sum = _mm256_add_ps(sum, a[i]);
    *sink = _mm256_cvtss_f32(sum);  // keeps the loop alive
    return steps * 12 * 8;
}

__attribute__((target("avx512f"))) long fma_loop_avx512(double seconds, float* sink) {
    __m512 a[24];
    for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps(1.0f + 1e-7f * static_cast<float>(i));
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    long steps = 0;
    const auto start = std::chrono::steady_clock::now();
    do {
        for (long s = 0; s < chunk; s++) {
#pragma GCC unroll 24
            for (int i = 0; i < 24; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
        }
        steps += chunk;
    } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds);
    __m512 sum = a[0];
    for (int i = 1; i < 24; i++) sum = _mm512_add_ps(sum, a[i]);
    float lanes[16];
    _mm512_storeu_ps(lanes, sum);
    *sink = lanes[0];  // keeps the loop alive
    return steps * 24 * 16;
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = 2;
    int threads = static_cast<int>(std::thread::hardware_concurrency());
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        if (arg == "--seconds") {
            seconds = std::atof(argv[i + 1]);
        } else if (arg == "--threads") {
            threads = std::atoi(argv[i + 1]);
        } else {
            std::fprintf(stderr, "usage: convgen_peak [--seconds S] [--threads N]\n");
            return 2;
        }
    }
    if (argc % 2 == 0 || seconds <= 0 || threads < 1) {
        std::fprintf(stderr, "usage: convgen_peak [--seconds S] [--threads N]\n");
        return 2;
    }
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f");
    if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        std::fprintf(stderr, "convgen_peak: this CPU has neither AVX-512 nor AVX2 with FMA\n");
        return 1;
    }
    std::vector<float> sinks(static_cast<size_t>(threads));
    std::atomic<long> lanes{0};
    std::vector<std::thread> workers;
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; t++) {
        workers.emplace_back([&, t] {
            lanes += avx512 ? fma_loop_avx512(seconds, &sinks[static_cast<size_t>(t)])
                            : fma_loop_avx2(seconds, &sinks[static_cast<size_t>(t)]);
        });
    }
    for (std::thread& w : workers) w.join();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("{\"limit\": \"fma_peak\", \"gflops\": %.2f, \"isa\": \"%s\", \"threads\": %d, \"seconds\": %.3f}\n",
                2.0 * static_cast<double>(lanes.load()) / elapsed / 1e9, avx512 ? "avx512" : "avx2", threads, elapsed);
    return 0;
}
