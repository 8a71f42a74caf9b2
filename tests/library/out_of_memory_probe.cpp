// The out-of-memory case of library.threads, run by it as a process of its own. Spawned, not only
// forked: a forked child of a process whose Halide thread pool is running can inherit the pool's
// lock as a worker held it, and wait on it forever in its first parallel call.
//
// Caps its address space 256 MiB above what it uses, then asks for a batch of 100,000 images,
// whose first conv's pooled output alone needs 470 MB. Exits 0 when the library reported it as it
// should and went on; otherwise with the number of the step that went wrong.
#include "lenet5.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

int main() {
    lenet5::Model model(1);
    const int batch = 100000;
    std::vector<float> images(static_cast<size_t>(batch) * lenet5::Model::input_size, 0.5f);
    std::vector<float> probabilities(static_cast<size_t>(batch) * lenet5::Model::classes);
    // A workspace for batch 4 first: the failed call must not leave it looking ready.
    if (lenet5_predict(model.handle(), images.data(), 4, probabilities.data()) != CONVGEN_OK) return 9;
    std::ifstream status_file("/proc/self/statm");
    long pages = 0;
    status_file >> pages;
    const rlim_t cap = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + (256ull << 20);
    const rlimit limit{cap, cap};
    if (setrlimit(RLIMIT_AS, &limit) != 0) return 10;
    if (lenet5_predict(model.handle(), images.data(), batch, probabilities.data()) != CONVGEN_ERROR_OUT_OF_MEMORY) {
        return 11;
    }
    if (std::string(lenet5_last_error(model.handle())) != "lenet5_predict: out of memory") return 12;
    if (lenet5_predict(model.handle(), images.data(), 4, probabilities.data()) != CONVGEN_OK) return 13;
    return 0;
}
