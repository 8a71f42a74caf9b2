// A counter-based random generator in Halide expressions: a value is a hash of what it is for (a
// key made from the step's seed and a purpose) and where it is (a counter, such as an element's
// index). Nothing is stored, the backward pass can recompute what the forward pass drew, and a
// step is reproducible from its seed.
#pragma once

#include <Halide.h>

#include <cstdint>
#include <string>

namespace convgen::codegen::random {

Halide::Expr u32(uint32_t value);
// A 32-bit integer hash with good avalanche (the "lowbias32" constants).
Halide::Expr mix(Halide::Expr value);
// FNV-1a of a name, so each layer or augmentation step draws its own numbers.
uint32_t name_hash(const std::string& name);
// The key of one purpose within a step: the seed (uint32) mixed with a constant.
Halide::Expr key(const Halide::Expr& seed, uint32_t purpose);
// Uniform in [0, 1), 24 bits.
Halide::Expr uniform(const Halide::Expr& key, const Halide::Expr& counter);
// Standard normal (Box-Muller from two uniforms drawn at counter * 2 and counter * 2 + 1).
Halide::Expr normal(const Halide::Expr& key, const Halide::Expr& counter);

}  // namespace convgen::codegen::random
