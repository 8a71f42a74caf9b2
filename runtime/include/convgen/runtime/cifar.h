// CIFAR-10 and CIFAR-100 in their binary releases (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz).
// CIFAR-10: data_batch_1.bin ... data_batch_5.bin and test_batch.bin, records of 1 label byte and
// 3,072 pixel bytes. CIFAR-100: train.bin and test.bin, records of a coarse label byte, a fine
// label byte and 3,072 pixel bytes. Pixels are stored planar (all red, then green, then blue, each
// 32x32 row-major); the loaders return them NHWC like every other ImageSet.
#pragma once

#include <convgen/runtime/dataset.h>

#include <cstdint>
#include <string>
#include <vector>

namespace convgen::runtime {

constexpr int64_t cifar_side = 32;
constexpr int64_t cifar_channels = 3;
constexpr int64_t cifar_image_bytes = cifar_side * cifar_side * cifar_channels;

// airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck.
const std::vector<std::string>& cifar10_class_names();

// Reads the given CIFAR-10 files in order into one set. Class names come from batches.meta.txt
// beside the first file when it is there, else cifar10_class_names().
ImageSet load_cifar10_binary(const std::vector<std::string>& files);

// data_batch_1.bin ... data_batch_5.bin (train) or test_batch.bin from `dir`.
ImageSet load_cifar10_binary_folder(const std::string& dir, bool train);

// CIFAR-100's 100 fine classes or its 20 coarse superclasses.
enum class Cifar100Labels { fine, coarse };

// Reads train.bin or test.bin with the chosen labels. Class names come from fine_label_names.txt
// or coarse_label_names.txt beside the file when it is there, else "0", "1", ...
ImageSet load_cifar100_binary(const std::string& path, Cifar100Labels labels);

}  // namespace convgen::runtime
