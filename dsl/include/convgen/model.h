// A model: the graph from its input to its output (logits), plus the training loss. Models are
// registered with CONVGEN_MODEL so the generator finds them by name.
#pragma once

#include <convgen/augmentation.h>
#include <convgen/tensor.h>

#include <map>
#include <set>
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

    // Transfer learning: which layers train, and how fast. Each throws ModelError naming the
    // layer when the model has no layer of that name.
    //
    // A frozen layer keeps its parameters: the training step computes no gradient for them and
    // updates nothing, and backpropagates no further down than the lowest layer that still trains.
    // A frozen layer also runs as at inference, as Keras does: batch norm normalises with its
    // running statistics and leaves them as they are, dropout passes its input through. So a
    // frozen backbone is a fixed function of the image, and training a head on its cached
    // features is the same as fine-tuning with the backbone frozen.
    Model& freeze(const std::string& layer);
    // The layer and every layer it depends on: "everything up to here".
    Model& freeze_through(const std::string& layer);
    // The layer's parameters train at learning_rate * scale (scale > 0), as when the top of a
    // pretrained backbone is fine-tuned more gently than a new head.
    Model& set_learning_rate_scale(const std::string& layer, double scale);

    // Gradient clipping by global norm, as PyTorch's clip_grad_norm_: when the L2 norm of all
    // trained parameters' gradients together exceeds max_norm, every gradient is scaled by
    // max_norm / (norm + 1e-6) before the update (weight decay is added after, as SGD does).
    // The step then updates parameters in a kernel of its own, after the whole backward pass.
    Model& clip_gradient_norm(double max_norm);
    double gradient_clip_norm() const { return gradient_clip_norm_; }  // 0: no clipping

    bool is_frozen(const std::string& layer) const { return frozen_.count(layer) != 0; }
    double learning_rate_scale(const std::string& layer) const;

  private:
    int layer_id(const std::string& layer, const char* what) const;

    std::string name_;
    std::shared_ptr<Graph> graph_;
    int input_node_ = -1;
    int output_node_ = -1;
    Loss loss_;
    Augmentation augmentation_;
    std::set<std::string> frozen_;
    std::map<std::string, double> learning_rate_scales_;
    double gradient_clip_norm_ = 0;
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
