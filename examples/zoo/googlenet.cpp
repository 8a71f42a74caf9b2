// GoogLeNet / Inception-v1 (Szegedy et al. 2015) exactly as torchvision.models.googlenet builds it
// with aux_logits=False (names and shapes): nine Inception modules of four parallel branches
// joined along the channels, batch norm (epsilon 0.001) after every conv as in torchvision, max
// pools rounding their output up (ceil_mode), dropout 0.2 before the classifier. As torchvision,
// the "5x5" branch uses a 3x3 conv.
//
// Left out: the two auxiliary classifiers, used only in training. A convgen model has one output
// and one loss, and their 4x4 adaptive average pooling of a 14x14 map has windows of unequal
// stride that avg_pool cannot express.
#include <convgen/model.h>

#include <string>

using namespace convgen;

namespace {

// torchvision's BasicConv2d: conv without bias ("<name>.conv"), batch norm ("<name>.bn"), ReLU
// ("<name>.relu", so that a shape error at a concat names the branch).
Tensor basic_conv(const Tensor& x, int64_t channels, int64_t kernel, const std::string& name, int64_t stride = 1) {
    const Tensor y = conv2d(x, channels, kernel,
                            {.stride = stride,
                             .padding = kernel / 2,
                             .bias = false,
                             .name = name + ".conv",
                             .weight_init = Initializer::he_normal});
    return relu(batch_norm(y, {.epsilon = 1e-3, .name = name + ".bn"}), name + ".relu");
}

// The Inception module: 1x1; 1x1 then 3x3; 1x1 then 3x3 (the paper's 5x5); 3x3 max pool then 1x1.
Tensor inception(const Tensor& x, int64_t ch1x1, int64_t ch3x3_reduce, int64_t ch3x3, int64_t ch5x5_reduce,
                 int64_t ch5x5, int64_t pool_projection, const std::string& name) {
    const Tensor branch1 = basic_conv(x, ch1x1, 1, name + ".branch1");
    const Tensor branch2 =
        basic_conv(basic_conv(x, ch3x3_reduce, 1, name + ".branch2.0"), ch3x3, 3, name + ".branch2.1");
    const Tensor branch3 =
        basic_conv(basic_conv(x, ch5x5_reduce, 1, name + ".branch3.0"), ch5x5, 3, name + ".branch3.1");
    const Tensor pooled = max_pool(x, 3, {.stride = 1, .padding = 1, .ceil_mode = true, .name = name + ".branch4.0"});
    const Tensor branch4 = basic_conv(pooled, pool_projection, 1, name + ".branch4.1");
    return concat({branch1, branch2, branch3, branch4}, name);
}

PoolOptions ceil_pool(const std::string& name) {
    return {.stride = 2, .ceil_mode = true, .name = name};
}

}  // namespace

Model googlenet() {
    auto x = input("image", Shape{3, 224, 224});
    x = basic_conv(x, 64, 7, "conv1", 2);
    x = max_pool(x, 3, ceil_pool("maxpool1"));
    x = basic_conv(basic_conv(x, 64, 1, "conv2"), 192, 3, "conv3");
    x = max_pool(x, 3, ceil_pool("maxpool2"));
    x = inception(x, 64, 96, 128, 16, 32, 32, "inception3a");
    x = inception(x, 128, 128, 192, 32, 96, 64, "inception3b");
    x = max_pool(x, 3, ceil_pool("maxpool3"));
    x = inception(x, 192, 96, 208, 16, 48, 64, "inception4a");
    x = inception(x, 160, 112, 224, 24, 64, 64, "inception4b");
    x = inception(x, 128, 128, 256, 24, 64, 64, "inception4c");
    x = inception(x, 112, 144, 288, 32, 64, 64, "inception4d");
    x = inception(x, 256, 160, 320, 32, 128, 128, "inception4e");
    x = max_pool(x, 2, ceil_pool("maxpool4"));
    x = inception(x, 256, 160, 320, 32, 128, 128, "inception5a");
    x = inception(x, 384, 192, 384, 48, 128, 128, "inception5b");
    x = global_avg_pool(x, "avgpool") | flatten | dropout(0.2, {.name = "dropout"});
    return Model("googlenet", x | dense(1000, {.name = "fc"}), softmax_cross_entropy());
}
CONVGEN_MODEL(googlenet)
