// Times the CUDA libraries on the GPU workloads of bench/pytorch_peer.py --device cuda; measure.h has
// the measuring scheme and the CLI (bench/run --gpu alternates the two). A training step returns
// its loss and a prediction its probabilities to the host, so each timed call ends with the GPU's
// work done: the host clock measures it whole.
//   convgen_gpu_bench --workload NAME [--warmup-seconds S] [--seconds T] [--repeats R]
//   convgen_gpu_bench --list
#include "lenet5_cuda.hpp"
#include "measure.h"
#include "mnist_cnn_cuda.hpp"
#include "resnet18_cuda.hpp"
#include "resnet20_cuda.hpp"

int main(int argc, char** argv) {
    using bench::infer_step, bench::train_step;
    const bench::Workloads workloads = {
        {"lenet5_train_b64", {"train_throughput", "images/s", 64, [] { return train_step<lenet5_cuda::Model>(64); }}},
        {"lenet5_infer_b1", {"latency", "ms", 1, [] { return infer_step<lenet5_cuda::Model>(1); }}},
        {"mnist_cnn_train_b64",
         {"train_throughput", "images/s", 64, [] { return train_step<mnist_cnn_cuda::Model>(64); }}},
        {"mnist_cnn_infer_b1", {"latency", "ms", 1, [] { return infer_step<mnist_cnn_cuda::Model>(1); }}},
        {"resnet20_train_b128",
         {"train_throughput", "images/s", 128, [] { return train_step<resnet20_cuda::Model>(128); }}},
        {"resnet18_infer_b64",
         {"infer_throughput", "images/s", 64, [] { return infer_step<resnet18_cuda::Model>(64); }}},
    };
    return bench::run_command_line(argc, argv, "convgen_gpu_bench", workloads);
}
