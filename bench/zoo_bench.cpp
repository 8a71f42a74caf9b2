// Times the library of every model in examples/zoo (built with -DCONVGEN_BUILD_ZOO=ON) on the same
// workloads as bench/pytorch_peer.py's zoo rows; measure.h has the measuring scheme and the CLI.
//   convgen_zoo_bench --workload resnet20_infer_b64 [--warmup-seconds S] [--seconds T] [--repeats R]
//   convgen_zoo_bench --list
#include "alexnet.hpp"
#include "measure.h"
#include "mnist_cnn.hpp"
#include "mobilenet_v1.hpp"
#include "mobilenet_v2.hpp"
#include "mobilenet_v2_cifar.hpp"
#include "plain34.hpp"
#include "resnet18.hpp"
#include "resnet20.hpp"
#include "resnet34.hpp"
#include "resnet50.hpp"
#include "resnet56.hpp"
#include "vgg11.hpp"
#include "vgg11_cifar.hpp"
#include "vgg16.hpp"
#include "vgg16_cifar.hpp"
#include "vgg19.hpp"
#include "vgg19_cifar.hpp"

namespace {

// A zoo model's two workloads: latency of one image, and throughput at batch 64.
template <typename Model>
void add_model(bench::Workloads& workloads, const std::string& name) {
    workloads.emplace(name + "_infer_b1",
                      bench::Workload{"latency", "ms", 1, [] { return bench::infer_step<Model>(1); }});
    workloads.emplace(name + "_infer_b64",
                      bench::Workload{"infer_throughput", "images/s", 64, [] { return bench::infer_step<Model>(64); }});
}

}  // namespace

int main(int argc, char** argv) {
    bench::Workloads workloads;
    add_model<mnist_cnn::Model>(workloads, "mnist_cnn");
    add_model<alexnet::Model>(workloads, "alexnet");
    add_model<vgg11::Model>(workloads, "vgg11");
    add_model<vgg16::Model>(workloads, "vgg16");
    add_model<vgg19::Model>(workloads, "vgg19");
    add_model<vgg11_cifar::Model>(workloads, "vgg11_cifar");
    add_model<vgg16_cifar::Model>(workloads, "vgg16_cifar");
    add_model<vgg19_cifar::Model>(workloads, "vgg19_cifar");
    add_model<resnet20::Model>(workloads, "resnet20");
    add_model<resnet56::Model>(workloads, "resnet56");
    add_model<resnet18::Model>(workloads, "resnet18");
    add_model<resnet34::Model>(workloads, "resnet34");
    add_model<resnet50::Model>(workloads, "resnet50");
    add_model<plain34::Model>(workloads, "plain34");
    add_model<mobilenet_v1::Model>(workloads, "mobilenet_v1");
    add_model<mobilenet_v2::Model>(workloads, "mobilenet_v2");
    add_model<mobilenet_v2_cifar::Model>(workloads, "mobilenet_v2_cifar");
    return bench::run_command_line(argc, argv, "convgen_zoo_bench", workloads);
}
