// Softmax cross-entropy, mean over the batch, with the max-subtracted log-sum-exp:
//   loss = 1/N sum_n (log sum_k exp(l(k, n) - m(n)) + m(n) - l(label(n), n)),  m(n) = max_k l(k, n)
//   dl(k, n) = (softmax(k, n) - [k == label(n)]) / N
#include "../layers.h"

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;

schedules::LossStages softmax_cross_entropy(const std::string& name, const Value& logits, const Func& labels,
                                            const Expr& batch, bool training) {
    const auto& [k, n] = std::tie(Dims::k, Dims::n);
    const int classes = static_cast<int>(logits.extents.at(0));
    schedules::LossStages stages;
    stages.classes = classes;

    RDom over_classes(0, classes, name + "_classes");
    stages.row_max = Func(name + "_row_max");
    stages.row_max(n) = Halide::maximum(logits.func(over_classes, n));
    stages.row_sum = Func(name + "_row_sum");
    stages.row_sum(n) = Halide::sum(Halide::exp(logits.func(over_classes, n) - stages.row_max(n)));

    Expr softmax = Halide::exp(logits.func(k, n) - stages.row_max(n)) / stages.row_sum(n);
    stages.probabilities = Func(name + "_probabilities");
    stages.probabilities(k, n) = softmax;
    if (!training) return stages;

    Expr label = Halide::clamp(labels(n), 0, classes - 1);
    stages.batch = RDom(0, batch, name + "_batch");
    const auto& rn = stages.batch;
    Expr sample_loss = Halide::log(stages.row_sum(rn)) + stages.row_max(rn) -
                       logits.func(Halide::clamp(labels(rn), 0, classes - 1), rn);
    stages.loss = Func(name + "_loss");
    stages.loss() = Halide::sum(sample_loss) / Halide::cast<float>(batch);

    // The first maximum is the prediction, as torch.argmax.
    Expr predicted = Halide::argmax(over_classes, logits.func(over_classes, rn))[0];
    stages.correct = Func(name + "_correct");
    stages.correct() = Halide::sum(Halide::select(predicted == labels(rn), 1, 0));

    stages.logits_grad = Func(name + "_logits_grad");
    stages.logits_grad(k, n) = (softmax - Halide::select(k == label, 1.0f, 0.0f)) / Halide::cast<float>(batch);
    return stages;
}

}  // namespace convgen::codegen
