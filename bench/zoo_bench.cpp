// Times the library of every model in examples/zoo that the build generated (-DCONVGEN_BUILD_ZOO=ON,
// CONVGEN_ZOO_MODELS) on the same workloads as bench/pytorch_peer.py's zoo rows; measure.h has the
// measuring scheme and the CLI.
//   convgen_zoo_bench --workload resnet20_infer_b64 [--warmup-seconds S] [--seconds T] [--repeats R]
//   convgen_zoo_bench --workload densenet121_train_b16 --peak-memory
//   convgen_zoo_bench --list
#include "measure.h"
#include "zoo_models.h"

namespace {

// The models the benchmark also trains, at the batch it trains them at (pytorch_peer.py's
// ZOO_TRAINING); the batch-16 steps of the ImageNet-size nets and DenseNet-BC-100's batch-64 step
// are where peak memory is compared.
const std::map<std::string, int> training_batches = {{"mnist_cnn", 64},       {"resnet20", 128},
                                                     {"googlenet", 16},       {"densenet121", 16},
                                                     {"efficientnet_b0", 16}, {"densenet_bc100_cifar", 64}};

// A zoo model's workloads: latency of one image and throughput at batch 64 (and 256 for the
// MNIST CNN), and training throughput for the models above.
template <typename Model>
void add_model(bench::Workloads& workloads, const std::string& name) {
    workloads.emplace(name + "_infer_b1",
                      bench::Workload{"latency", "ms", 1, [] { return bench::infer_step<Model>(1); }});
    for (int batch : name == "mnist_cnn" ? std::vector<int>{64, 256} : std::vector<int>{64}) {
        workloads.emplace(name + "_infer_b" + std::to_string(batch),
                          bench::Workload{"infer_throughput", "images/s", batch,
                                          [batch] { return bench::infer_step<Model>(batch); }});
    }
    const auto training = training_batches.find(name);
    if (training != training_batches.end()) {
        const int batch = training->second;
        workloads.emplace(name + "_train_b" + std::to_string(batch),
                          bench::Workload{"train_throughput", "images/s", batch,
                                          [batch] { return bench::train_step<Model>(batch); }});
    }
}

}  // namespace

int main(int argc, char** argv) {
    bench::Workloads workloads;
#define CONVGEN_ADD_ZOO_MODEL(model) add_model<model::Model>(workloads, #model);
    CONVGEN_ZOO_MODELS(CONVGEN_ADD_ZOO_MODEL)
#undef CONVGEN_ADD_ZOO_MODEL
    return bench::run_command_line(argc, argv, "convgen_zoo_bench", workloads);
}
