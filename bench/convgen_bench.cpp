// Times the generated libraries of the benchmark's own models (LeNet-5 and a single conv layer) on
// the workloads of bench/pytorch_peer.py; measure.h has the measuring scheme and the CLI.
//   convgen_bench --workload NAME [--warmup-seconds S] [--seconds T] [--repeats R]
//   convgen_bench --list
#include "conv3x3_layer.hpp"
#include "lenet5.hpp"
#include "measure.h"

int main(int argc, char** argv) {
    using bench::infer_step, bench::train_step;
    const bench::Workloads workloads = {
        {"lenet5_train_b64", {"train_throughput", "images/s", 64, [] { return train_step<lenet5::Model>(64); }}},
        {"lenet5_infer_b1", {"latency", "ms", 1, [] { return infer_step<lenet5::Model>(1); }}},
        {"lenet5_infer_b256", {"infer_throughput", "images/s", 256, [] { return infer_step<lenet5::Model>(256); }}},
        {"conv3x3_layer_infer_b64",
         {"infer_throughput", "images/s", 64, [] { return infer_step<conv3x3_layer::Model>(64); }}},
    };
    return bench::run_command_line(argc, argv, "convgen_bench", workloads);
}
