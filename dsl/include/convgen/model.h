// A model: the graph from its input to its output (logits), plus the training loss. Models are
// registered with CONVGEN_MODEL so the generator finds them by name.
#pragma once

#include <convgen/augmentation.h>
#include <convgen/tensor.h>

#include <string>
#include <vector>

namespace convgen {

enum class LossKind { softmax_cross_entropy };

struct Loss {
    LossKind kind = LossKind::softmax_cross_entropy;
};

// Softmax over the output features, cross-entropy against integer class labels, mean over the batch.
inline Loss softmax_cross_entropy() {
    return Loss{LossKind::softmax_cross_entropy};
}

class Model {
  public:
    // Throws ModelError when the output cannot feed the loss (softmax cross-entropy needs [K] logits)
    // or the augmentation does not fit the input (it needs [C, H, W] images).
    Model(std::string name, const Tensor& output, Loss loss, Augmentation augmentation = {});

    const std::string& name() const { return name_; }
    const Graph& graph() const { return *graph_; }
    int input_node() const { return input_node_; }
    int output_node() const { return output_node_; }
    const Loss& loss() const { return loss_; }
    const Augmentation& augmentation() const { return augmentation_; }
    int64_t classes() const { return graph_->node(output_node_).shape[0]; }

  private:
    std::string name_;
    std::shared_ptr<Graph> graph_;
    int input_node_ = -1;
    int output_node_ = -1;
    Loss loss_;
    Augmentation augmentation_;
};

using ModelFactory = Model (*)();

struct RegisteredModel {
    std::string name;
    ModelFactory factory;
};

const std::vector<RegisteredModel>& registered_models();

struct ModelRegistration {
    ModelRegistration(const char* name, ModelFactory factory);
};

}  // namespace convgen

// Makes `Model function()` known to the generator under the function's name.
#define CONVGEN_MODEL(function) \
    static const ::convgen::ModelRegistration convgen_model_registration_##function(#function, &function);
