// Shape inference of the DSL: the output shape of every layer kind, the automatic names, and the
// exact message of every rule that can break (the layer, its input shape, the rule).
#include <convgen/model.h>

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

namespace {

using namespace convgen;

// The message of the ModelError that `build` throws; fails the test when it throws nothing.
std::string error_of(const std::function<void()>& build) {
    try {
        build();
    } catch (const ModelError& error) {
        return error.what();
    }
    FAIL("expected a ModelError, but the model was built");
    return {};
}

std::vector<std::string> layer_names(const Tensor& t) {
    std::vector<std::string> names;
    for (const Node& node : t.graph()->nodes()) names.push_back(node.name);
    return names;
}

}  // namespace

TEST_SUITE("dsl shapes") {
    TEST_CASE("input keeps its shape and name") {
        auto image = input("image", Shape{3, 9, 11});
        CHECK(image.shape() == Shape{3, 9, 11});
        CHECK(image.name() == "image");
        CHECK(input("features", Shape{20}).shape() == Shape{20});
    }

    TEST_CASE("conv2d output size follows PyTorch's floor rule for stride and padding") {
        auto x = input("image", Shape{3, 9, 11});
        CHECK(conv2d(x, 8, 3).shape() == Shape{8, 7, 9});
        CHECK(conv2d(x, 8, 3, {.padding = 1}).shape() == Shape{8, 9, 11});
        CHECK(conv2d(x, 8, 3, {.stride = 2, .padding = 1}).shape() == Shape{8, 5, 6});
        CHECK(conv2d(x, 4, 3, {.stride = 3}).shape() == Shape{4, 3, 3});  // (9-3)/3+1, (11-3)/3+1 = 3 (floor)
        CHECK(conv2d(x, 2, 9).shape() == Shape{2, 1, 3});                 // kernel as tall as the input
        CHECK(conv2d(x, 1, 1).shape() == Shape{1, 9, 11});
        auto digits = input("image", Shape{1, 28, 28});
        CHECK(conv2d(digits, 6, 5, {.padding = 2}).shape() == Shape{6, 28, 28});
        CHECK(conv2d(digits, 16, 5).shape() == Shape{16, 24, 24});
    }

    TEST_CASE("pools keep the channels; stride defaults to the kernel") {
        auto x = input("image", Shape{6, 28, 28});
        CHECK(max_pool(x, 2).shape() == Shape{6, 14, 14});
        CHECK(avg_pool(x, 2).shape() == Shape{6, 14, 14});
        auto odd = input("image", Shape{8, 5, 7});
        CHECK(max_pool(odd, 2).shape() == Shape{8, 2, 3});  // floor: the last row and column are dropped
        CHECK(avg_pool(odd, 2, {.stride = 1}).shape() == Shape{8, 4, 6});
        CHECK(max_pool(odd, 3, {.stride = 2, .padding = 1}).shape() == Shape{8, 3, 4});
        CHECK(avg_pool(odd, 3, {.stride = 1, .padding = 1}).shape() == Shape{8, 5, 7});
        CHECK(max_pool(odd, 2, {.padding = 1}).shape() == Shape{8, 3, 4});
    }

    TEST_CASE("ceil_mode rounds a pool's output up, less a window that would start past the padding") {
        // torch.nn.MaxPool2d(3, 2, ceil_mode=True) on GoogLeNet's 112 and 56 maps, and small cases
        CHECK(max_pool(input("a", Shape{64, 112, 112}), 3, {.stride = 2, .ceil_mode = true}).shape() ==
              Shape{64, 56, 56});
        CHECK(max_pool(input("b", Shape{8, 14, 14}), 3, {.stride = 2, .ceil_mode = true}).shape() == Shape{8, 7, 7});
        CHECK(max_pool(input("c", Shape{8, 14, 14}), 3, {.stride = 2}).shape() == Shape{8, 6, 6});
        CHECK(avg_pool(input("d", Shape{2, 7, 5}), 2, {.ceil_mode = true}).shape() == Shape{2, 4, 3});
        // (5 + 2 - 2) / 2 rounds up to 3 windows, but the third would start at 4 >= 3 + 1: two.
        CHECK(avg_pool(input("e", Shape{1, 3, 3}), 2, {.padding = 1, .ceil_mode = true}).shape() == Shape{1, 2, 2});
        // The attributes live in the graph, which goes with the last tensor holding it.
        const Tensor pooled = avg_pool(input("f", Shape{1, 4, 4}), 2, {.ceil_mode = true, .count_include_pad = false});
        const PoolAttributes a = pooled.node().attributes_as<PoolAttributes>();
        CHECK(a.ceil_mode);
        CHECK(!a.count_include_pad);
    }

    TEST_CASE("pool attributes record the effective stride") {
        auto x = input("image", Shape{6, 8, 8});
        const PoolAttributes defaulted = max_pool(x, 3).node().attributes_as<PoolAttributes>();
        CHECK(defaulted.kernel == 3);
        CHECK(defaulted.stride == 3);
        CHECK(defaulted.padding == 0);
        const PoolAttributes explicit_stride =
            avg_pool(x, 3, {.stride = 1, .padding = 1}).node().attributes_as<PoolAttributes>();
        CHECK(explicit_stride.stride == 1);
        CHECK(explicit_stride.padding == 1);
    }

    TEST_CASE("flatten multiplies out the per-sample shape; dense gives its features") {
        auto x = input("image", Shape{6, 2, 3});
        auto flat = flatten(x);
        CHECK(flat.shape() == Shape{36});
        CHECK(dense(flat, 12).shape() == Shape{12});
        CHECK(flatten(flat).shape() == Shape{36});  // flattening features is the identity
        CHECK(dense(input("features", Shape{20}), 7).shape() == Shape{7});
    }

    TEST_CASE("relu keeps the shape of images and features") {
        auto x = input("image", Shape{3, 9, 11});
        CHECK(relu(x).shape() == Shape{3, 9, 11});
        CHECK(relu(flatten(x)).shape() == Shape{297});
    }

    TEST_CASE("a pipeline of layers gives LeNet-5's shapes") {
        auto x = input("image", Shape{1, 28, 28});
        x = conv2d(x, 6, 5, {.padding = 2}) | relu | max_pool(2);
        CHECK(x.shape() == Shape{6, 14, 14});
        x = conv2d(x, 16, 5) | relu | max_pool(2);
        CHECK(x.shape() == Shape{16, 5, 5});
        x = flatten(x);
        CHECK(x.shape() == Shape{400});
        x = x | dense(120) | relu | dense(84) | relu | dense(10);
        CHECK(x.shape() == Shape{10});
        Model model("lenet5", x, softmax_cross_entropy());
        CHECK(model.classes() == 10);
        CHECK(model.graph().node(model.input_node()).name == "image");
        CHECK(model.graph().node(model.output_node()).name == "dense3");
    }

    TEST_CASE("automatic names count per kind: conv1, conv2, dense1 ...") {
        auto x = input("image", Shape{3, 9, 11});
        x = conv2d(x, 8, 3, {.padding = 1}) | relu | max_pool(2, {.stride = 1});
        x = conv2d(x, 8, 3) | relu | avg_pool(2);
        x = flatten(x) | dense(12) | relu | dense(5);
        CHECK(layer_names(x) == std::vector<std::string>{"image", "conv1", "relu1", "maxpool1", "conv2", "relu2",
                                                         "avgpool1", "flatten1", "dense1", "relu3", "dense2"});
    }

    TEST_CASE("an automatic name skips a name the user already took") {
        auto x = input("image", Shape{3, 9, 11});
        x = conv2d(x, 4, 3, {.name = "conv1"});
        x = conv2d(x, 4, 3);
        CHECK(x.name() == "conv2");
        x = dense(flatten(x, "features"), 3, {.name = "head"});
        CHECK(layer_names(x) == std::vector<std::string>{"image", "conv1", "conv2", "features", "head"});
    }

    TEST_CASE("parameters are named after their layers, in PyTorch layouts, with their initialisers") {
        auto x = input("image", Shape{3, 9, 11});
        x = conv2d(x, 8, 3, {.stride = 2, .padding = 1, .weight_init = Initializer::he_normal}) | relu;
        x = conv2d(x, 6, 3, {.padding = 1, .bias = false}) | relu;
        x = flatten(x) | dense(12, {.bias = false}) | dense(5, {.weight_init = Initializer::he_normal});
        Model model("m", x, softmax_cross_entropy());
        const std::vector<ParameterSpec> parameters = model.graph().parameters();
        REQUIRE(parameters.size() == 6);
        CHECK(parameters[0].name == "conv1.weight");
        CHECK(parameters[0].shape == Shape{8, 3, 3, 3});  // OIHW: the input channels come from the input
        CHECK(parameters[0].initializer == Initializer::he_normal);
        CHECK(parameters[0].fan_in == 3 * 9);
        CHECK(parameters[0].fan_out == 8 * 9);
        CHECK(parameters[1].name == "conv1.bias");
        CHECK(parameters[1].shape == Shape{8});
        CHECK(parameters[1].initializer == Initializer::zeros);
        CHECK(parameters[2].name == "conv2.weight");
        CHECK(parameters[2].shape == Shape{6, 8, 3, 3});
        CHECK(parameters[2].initializer == Initializer::glorot_uniform);  // the default
        CHECK(parameters[3].name == "dense1.weight");
        CHECK(parameters[3].shape == Shape{12, 6 * 5 * 6});
        CHECK(parameters[3].initializer == Initializer::glorot_uniform);
        CHECK(parameters[3].fan_in == 180);
        CHECK(parameters[3].fan_out == 12);
        CHECK(parameters[4].name == "dense2.weight");
        CHECK(parameters[4].shape == Shape{5, 12});
        CHECK(parameters[4].initializer == Initializer::he_normal);
        CHECK(parameters[5].name == "dense2.bias");
        CHECK(parameters[5].initializer == Initializer::zeros);
    }

    TEST_CASE("a conv kernel larger than its (padded) input names the layer, the shape and the rule") {
        auto x = input("image", Shape{1, 4, 6});
        CHECK(error_of([&] { conv2d(x, 2, 5); }) ==
              "layer 'conv1' (conv2d 2@5x5, stride 1, padding 0): input shape [1, 4, 6]: height 4 plus padding 2*0 is "
              "smaller than the kernel 5");
        CHECK(error_of([&] { conv2d(x, 2, 7, {.padding = 1, .name = "wide"}); }) ==
              "layer 'wide' (conv2d 2@7x7, stride 1, padding 1): input shape [1, 4, 6]: height 4 plus padding 2*1 is "
              "smaller than the kernel 7");
        auto tall = input("image", Shape{1, 9, 4});
        CHECK(error_of([&] { conv2d(tall, 2, 5); }) ==
              "layer 'conv1' (conv2d 2@5x5, stride 1, padding 0): input shape [1, 9, 4]: width 4 plus padding 2*0 is "
              "smaller than the kernel 5");
        // Padding that makes the window fit is accepted.
        CHECK(conv2d(x, 2, 5, {.padding = 1}).shape() == Shape{2, 2, 4});
    }

    TEST_CASE("a pool window larger than its input is rejected with the rule") {
        auto x = input("image", Shape{4, 2, 2});
        CHECK(error_of([&] { max_pool(x, 3); }) ==
              "layer 'maxpool1' (max_pool 3x3, stride 3, padding 0): input shape [4, 2, 2]: height 2 plus padding 2*0 "
              "is smaller than the kernel 3");
        CHECK(error_of([&] { avg_pool(x, 3, {.stride = 1}); }) ==
              "layer 'avgpool1' (avg_pool 3x3, stride 1, padding 0): input shape [4, 2, 2]: height 2 plus padding 2*0 "
              "is smaller than the kernel 3");
    }

    TEST_CASE("dense on an image tensor says to add flatten") {
        auto x = input("image", Shape{1, 4, 4});
        const std::string message = error_of([&] { dense(x, 10); });
        CHECK(message ==
              "layer 'dense1' (dense 10): input shape [1, 4, 4]: dense expects features [F]; add flatten before it to "
              "use an image tensor");
        CHECK(message.find("flatten") != std::string::npos);
        auto y = conv2d(x, 3, 3) | relu;
        CHECK(error_of([&] { dense(y, 5, {.name = "classifier"}); }) ==
              "layer 'classifier' (dense 5): input shape [3, 2, 2]: dense expects features [F]; add flatten before it "
              "to use an image tensor");
    }

    TEST_CASE("spatial layers after flatten or dense are rejected naming the rank") {
        auto features = flatten(input("image", Shape{1, 4, 4}));
        CHECK(error_of([&] { conv2d(features, 4, 3); }) ==
              "layer 'conv1' (conv2d 4@3x3, stride 1, padding 0): input shape [16]: expects an image tensor [channels, "
              "height, width] but got rank 1 (features); spatial layers cannot follow flatten or dense");
        CHECK(error_of([&] { max_pool(features, 2); }) ==
              "layer 'maxpool1' (max_pool 2x2, stride 2, padding 0): input shape [16]: expects an image tensor "
              "[channels, height, width] but got rank 1 (features); spatial layers cannot follow flatten or dense");
        auto logits = dense(features, 8);
        CHECK(error_of([&] { avg_pool(logits, 2); }) ==
              "layer 'avgpool1' (avg_pool 2x2, stride 2, padding 0): input shape [8]: expects an image tensor "
              "[channels, height, width] but got rank 1 (features); spatial layers cannot follow flatten or dense");
    }

    TEST_CASE("inputs must be images or features with positive sizes") {
        CHECK(error_of([] {
                  input("image", Shape{28, 28});
              }) == "input 'image': shape [28, 28] must be [channels, height, width] or [features]");
        CHECK(error_of([] {
                  input("image", Shape{1, 1, 28, 28});
              }) == "input 'image': shape [1, 1, 28, 28] must be [channels, height, width] or [features]");
        CHECK(error_of([] {
                  input("image", Shape{0, 28, 28});
              }) == "input 'image': shape [0, 28, 28] has a non-positive size");
        CHECK(error_of([] {
                  input("image", Shape{1, -3, 28});
              }) == "input 'image': shape [1, -3, 28] has a non-positive size");
        CHECK(error_of([] { input("features", Shape{0}); }) == "input 'features': shape [0] has a non-positive size");
    }

    TEST_CASE("zero and negative layer sizes are rejected naming the attribute") {
        // A fresh input for each case: a failed layer still takes its automatic name.
        auto x = [] { return input("image", Shape{3, 8, 8}); };
        CHECK(error_of([&] { conv2d(x(), 0, 3); }) ==
              "layer 'conv1' (conv2d 0@3x3, stride 1, padding 0): input shape [3, 8, 8]: out_channels must be "
              "positive, got 0");
        CHECK(error_of([&] { conv2d(x(), 4, -1); }) ==
              "layer 'conv1' (conv2d 4@-1x-1, stride 1, padding 0): input shape [3, 8, 8]: kernel must be positive, "
              "got -1");
        CHECK(
            error_of([&] { conv2d(x(), 4, 3, {.stride = 0}); }) ==
            "layer 'conv1' (conv2d 4@3x3, stride 0, padding 0): input shape [3, 8, 8]: stride must be positive, got 0");
        CHECK(
            error_of([&] { conv2d(x(), 4, 3, {.padding = -1}); }) ==
            "layer 'conv1' (conv2d 4@3x3, stride 1, padding -1): input shape [3, 8, 8]: padding must be >= 0, got -1");
        CHECK(error_of([&] { max_pool(x(), 0); }) ==
              "layer 'maxpool1' (max_pool 0x0, stride 0, padding 0): input shape [3, 8, 8]: kernel must be positive, "
              "got 0");
        CHECK(error_of([&] { avg_pool(x(), 2, {.stride = -2}); }) ==
              "layer 'avgpool1' (avg_pool 2x2, stride -2, padding 0): input shape [3, 8, 8]: stride must be positive, "
              "got -2");
        CHECK(error_of([&] { max_pool(x(), 3, {.padding = 2}); }) ==
              "layer 'maxpool1' (max_pool 3x3, stride 3, padding 2): input shape [3, 8, 8]: padding must be between 0 "
              "and half the kernel (1), got 2");
        CHECK(error_of([&] { avg_pool(x(), 2, {.padding = -1}); }) ==
              "layer 'avgpool1' (avg_pool 2x2, stride 2, padding -1): input shape [3, 8, 8]: padding must be between 0 "
              "and half the kernel (1), got -1");
        CHECK(error_of([&] { dense(flatten(x()), 0); }) ==
              "layer 'dense1' (dense 0): input shape [192]: out_features must be positive, got 0");
        CHECK(error_of([&] { dense(flatten(x()), -4, {.name = "head"}); }) ==
              "layer 'head' (dense -4): input shape [192]: out_features must be positive, got -4");
    }

    TEST_CASE("a layer name used twice is rejected, whether given or automatic") {
        auto x = input("image", Shape{3, 8, 8});
        auto a = conv2d(x, 4, 3, {.name = "features"});
        CHECK(error_of([&] { conv2d(a, 4, 3, {.name = "features"}); }) ==
              "layer name 'features' is used twice; layer names must be unique because they name the parameters");
        auto b = conv2d(a, 4, 3);  // conv1
        CHECK(error_of([&] { relu(b, "conv1"); }) ==
              "layer name 'conv1' is used twice; layer names must be unique because they name the parameters");
        CHECK(error_of([&] { dense(flatten(b), 3, {.name = "image"}); }) ==
              "layer name 'image' is used twice; layer names must be unique because they name the parameters");
    }

    TEST_CASE("softmax cross-entropy needs a 1-D output of at least two classes") {
        auto x = input("image", Shape{1, 8, 8});
        auto images = conv2d(x, 2, 3) | relu;
        CHECK(error_of([&] { Model("m", images, softmax_cross_entropy()); }) ==
              "model 'm': softmax cross-entropy needs class scores [classes] from layer 'relu1', but its output shape "
              "is [2, 6, 6]; end the model with flatten and dense");
        auto one_class = flatten(images) | dense(1);
        CHECK(error_of([&] { Model("m", one_class, softmax_cross_entropy()); }) ==
              "model 'm': the output layer 'dense1' has 1 class, a classifier needs at least 2");
        auto two_classes = flatten(x) | dense(2);
        Model model("m", two_classes, softmax_cross_entropy());
        CHECK(model.classes() == 2);
        CHECK(model.name() == "m");
    }

    TEST_CASE("groups, dilation and strides shape a conv as PyTorch does, and bad groups are named") {
        auto x = input("image", Shape{8, 16, 16});
        CHECK(conv2d(x, 8, 3, {.padding = 1, .groups = 8}).shape() == Shape{8, 16, 16});
        CHECK(conv2d(x, 4, 3, {.padding = 2, .dilation = 2}).shape() == Shape{4, 16, 16});
        CHECK(conv2d(x, 16, 3, {.stride = 2, .padding = 1, .groups = 4}).shape() == Shape{16, 8, 8});
        CHECK(error_of([&] { conv2d(x, 6, 3, {.groups = 4, .name = "g"}); }) ==
              "layer 'g' (conv2d 6@3x3, stride 1, padding 0, groups 4): input shape [8, 16, 16]: groups 4 must divide "
              "the input channels 8 and the output channels 6");
        CHECK(error_of([&] { conv2d(x, 4, 5, {.dilation = 4, .name = "d"}); }) ==
              "layer 'd' (conv2d 4@5x5, stride 1, padding 0, dilation 4): input shape [8, 16, 16]: height 16 plus "
              "padding 2*0 is smaller than the dilated kernel 17");
    }

    TEST_CASE("batch norm, activations, dropout and global pooling keep or reduce shapes, with their rules") {
        auto x = input("image", Shape{3, 10, 12});
        CHECK((x | batch_norm() | relu6 | tanh | sigmoid | leaky_relu(0.2) | dropout(0.3)).shape() == Shape{3, 10, 12});
        CHECK(global_avg_pool(x).shape() == Shape{3, 1, 1});
        CHECK(error_of([&] { dropout(x, 1.0, {.name = "drop"}); }) ==
              "layer 'drop' (dropout 1): input shape [3, 10, 12]: rate must be in [0, 1), got 1");
        CHECK(error_of([&] { batch_norm(x, {.epsilon = 0, .name = "bn"}); }) ==
              "layer 'bn' (batch_norm): input shape [3, 10, 12]: epsilon must be positive, got 0");
        CHECK(error_of([&] { global_avg_pool(flatten(x), "gap"); }) ==
              "layer 'gap' (global_avg_pool): input shape [360]: expects an image tensor [channels, height, width] "
              "but got rank 1 (features); spatial layers cannot follow flatten or dense");
    }

    TEST_CASE("silu, hard_swish and drop_path keep the shape; scale_channels gates an image by [C, 1, 1]") {
        auto x = input("image", Shape{6, 5, 7});
        CHECK((x | silu | hard_swish | drop_path(0.2)).shape() == Shape{6, 5, 7});
        CHECK(describe(drop_path(x, 0.2, {.name = "path"}).node()) == "drop_path 0.2");
        auto gate = global_avg_pool(x) | conv2d(6, 1) | sigmoid;
        CHECK(scale_channels(x, gate).shape() == Shape{6, 5, 7});
        CHECK(error_of([&] { scale_channels(x, global_avg_pool(conv2d(x, 4, 1)), "gate"); }) ==
              "layer 'gate' (channel_scale): input shapes 'image' [6, 5, 7], 'avgpool2' [4, 1, 1]: scales an image "
              "[C, H, W] by factors [C, 1, 1]");
        CHECK(error_of([&] { scale_channels(x, x, "gate2"); }) ==
              "layer 'gate2' (channel_scale): input shapes 'image' [6, 5, 7], 'image' [6, 5, 7]: scales an image "
              "[C, H, W] by factors [C, 1, 1]");
    }

    TEST_CASE("a shape error inside a residual block names the block's layer and both shapes") {
        // A basic block whose shortcut forgot the projection when the block halves the map.
        auto block = [](const Tensor& x, int64_t channels, int64_t stride, const std::string& name) {
            Tensor y = conv2d(x, channels, 3, {.stride = stride, .padding = 1, .name = name + ".conv1"}) | relu;
            y = conv2d(y, channels, 3, {.padding = 1, .name = name + ".conv2"});
            return relu(add(y, x, name + ".add"));
        };
        auto x = input("image", Shape{16, 32, 32});
        x = block(x, 16, 1, "layer1.0");
        CHECK(error_of([&] { block(x, 32, 2, "layer2.0"); }) ==
              "layer 'layer2.0.add' (add): input shapes 'layer2.0.conv2' [32, 16, 16], 'relu2' [16, 32, 32]: the "
              "tensors added must have one shape");
    }

    TEST_CASE("a shape error in an Inception branch names the branch's layer and every branch's shape") {
        // GoogLeNet's module, its third branch's conv given stride 2 by mistake.
        auto branch = [](const Tensor& x, int64_t channels, int64_t kernel, int64_t stride, const std::string& name) {
            return relu(conv2d(x, channels, kernel, {.stride = stride, .padding = kernel / 2, .name = name + ".conv"}),
                        name + ".relu");
        };
        auto x = input("image", Shape{192, 28, 28});
        const Tensor b1 = branch(x, 64, 1, 1, "inception3a.branch1");
        const Tensor b2 = branch(branch(x, 96, 1, 1, "inception3a.branch2.0"), 128, 3, 1, "inception3a.branch2.1");
        const Tensor b3 = branch(branch(x, 16, 1, 1, "inception3a.branch3.0"), 32, 3, 2, "inception3a.branch3.1");
        const Tensor b4 = branch(max_pool(x, 3, {.stride = 1, .padding = 1, .ceil_mode = true}), 32, 1, 1,
                                 "inception3a.branch4.1");
        CHECK(error_of([&] { concat({b1, b2, b3, b4}, "inception3a"); }) ==
              "layer 'inception3a' (concat): input shapes 'inception3a.branch1.relu' [64, 28, 28], "
              "'inception3a.branch2.1.relu' [128, 28, 28], 'inception3a.branch3.1.relu' [32, 14, 14], "
              "'inception3a.branch4.1.relu' [32, 28, 28]: concat joins images [C, H, W] of one height and width; "
              "'inception3a.branch3.1.relu' breaks it");
    }

    TEST_CASE("concat joins channels of images of one size; softmax only ends a model") {
        auto x = input("image", Shape{4, 8, 8});
        auto a = conv2d(x, 3, 1), b = conv2d(x, 5, 3, {.padding = 1});
        CHECK(concat({a, b, x}).shape() == Shape{12, 8, 8});
        auto small = max_pool(x, 2);
        CHECK(error_of([&] {
                  concat({a, small}, "joined");
              }) ==
              "layer 'joined' (concat): input shapes 'conv1' [3, 8, 8], 'maxpool1' [4, 4, 4]: concat joins images "
              "[C, H, W] of one height and width; 'maxpool1' breaks it");
        auto logits = flatten(x) | dense(3, {.name = "fc"});
        auto probabilities = softmax(logits, "softmax");
        CHECK(Model("m", probabilities, softmax_cross_entropy()).classes() == 3);
        auto other = input("image", Shape{4, 8, 8});
        auto after = dense(softmax(flatten(other), "early"), 2);
        CHECK(error_of([&] { Model("m", after, softmax_cross_entropy()); }) ==
              "model 'm': layer 'early' (softmax) is not the model's output; softmax is an output layer (the loss "
              "applies it to the scores before it)");
    }

    TEST_CASE("an augmentation that does not fit the input is rejected naming the step and the rule") {
        auto image = input("image", Shape{3, 8, 8});
        auto logits = flatten(image) | dense(2);
        const Augmentation crop_too_wide{{random_crop(8)}};
        CHECK(error_of([&] { Model("m", logits, softmax_cross_entropy(), crop_too_wide); }) ==
              "model 'm': augmentation: random_crop(8) is out of range for 8x8 images (crop padding: a whole number of "
              "pixels below the image size; rotation: up to 180 degrees; probabilities up to 1; factor ranges below "
              "1)");
        const Augmentation two_means{{horizontal_flip()}, {0.5, 0.5}, {}};
        CHECK(error_of([&] { Model("m", logits, softmax_cross_entropy(), two_means); }) ==
              "model 'm': augmentation: pixel_mean has 2 values for 3 channels");
        const Augmentation zero_std{{horizontal_flip()}, {}, {0.2, 0.0, 0.2}};
        CHECK(error_of([&] { Model("m", logits, softmax_cross_entropy(), zero_std); }) ==
              "model 'm': augmentation: pixel_std must be positive, got 0");
        auto features = input("features", Shape{6});
        CHECK(error_of([&] {
                  Model("m", dense(features, 2), softmax_cross_entropy(), Augmentation{{gaussian_noise(0.1)}});
              }) == "model 'm': augmentation: needs [C, H, W] images, but the input is [6]");
        const Augmentation fine{{random_crop(2), random_rotation(10), brightness(0.2), contrast(0.2), color_jitter(0.1),
                                 salt_and_pepper(0.01), gaussian_noise(0.05)}};
        Model model("m", logits, softmax_cross_entropy(), fine);
        CHECK(model.augmentation().steps.size() == 7);
        CHECK(describe(fine.steps[1]) == "random_rotation(10)");
    }

    TEST_CASE("freezing and learning-rate scales name the layer they cannot apply to") {
        auto image = input("image", Shape{1, 8, 8});
        auto trunk = conv2d(image, 4, 3, {.name = "conv1"}) | relu;
        auto logits = flatten(conv2d(trunk, 2, 3, {.name = "conv2"})) | dense(2, {.name = "head"});
        Model model("m", logits, softmax_cross_entropy());
        model.freeze_through("conv2");
        CHECK(model.is_frozen("conv1"));
        CHECK(model.is_frozen("relu1"));
        CHECK(model.is_frozen("image"));
        CHECK(!model.is_frozen("head"));
        CHECK(error_of([&] { model.freeze("conv9"); }) == "model 'm': freeze: no layer named 'conv9'");
        CHECK(error_of([&] { model.set_learning_rate_scale("conv1", 0.1); }) ==
              "model 'm': set_learning_rate_scale: layer 'conv1' is frozen");
        CHECK(error_of([&] { model.set_learning_rate_scale("head", 0); }) ==
              "model 'm': set_learning_rate_scale: layer 'head': the scale must be positive and finite, got 0 "
              "(freeze the layer to stop it training)");
        model.set_learning_rate_scale("head", 0.5);
        CHECK(model.learning_rate_scale("head") == 0.5);
        CHECK(model.learning_rate_scale("conv2") == 1);
        CHECK(error_of([&] { model.freeze("head"); }) ==
              "model 'm': freeze: layer 'head' has a learning-rate scale; a frozen layer does not train");
        CHECK(error_of([&] { model.clip_gradient_norm(0); }) ==
              "model 'm': clip_gradient_norm: the norm must be positive and finite, got 0");
        CHECK(model.gradient_clip_norm() == 0);
        model.clip_gradient_norm(5);
        CHECK(model.gradient_clip_norm() == 5);
    }

}  // TEST_SUITE
